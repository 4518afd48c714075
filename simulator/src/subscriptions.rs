//! Webhook subscriptions, per shop: listed, created and deleted through the Admin API
//! (`webhookSubscriptions`, `webhookSubscription`, `webhookSubscriptionCreate`,
//! `webhookSubscriptionDelete`) or by a test, and deleted by the simulator — as by Shopify —
//! once a delivery to one has failed every attempt.
//!
//! Topics are stored as Shopify's GraphQL enum names (`ORDERS_CREATE`); webhooks carry the
//! REST names (`orders/create`) in `X-Shopify-Topic`. [`topic_enum`] and [`topic_name`]
//! convert.

use serde_json::{json, Value};

/// Topics a subscription can be created for through the API (the `WebhookSubscriptionTopic`
/// values the simulator knows), as webhooks name them. The compliance topics
/// (`customers/data_request`, `customers/redact`, `shop/redact`) are not among them: Shopify
/// subscribes those in the app's configuration only.
pub const TOPICS: &[&str] = &[
    "app/scopes_update",
    "app/uninstalled",
    "app_purchases_one_time/update",
    "app_subscriptions/approaching_capped_amount",
    "app_subscriptions/update",
    "bulk_operations/finish",
    "carts/create",
    "carts/update",
    "checkouts/create",
    "checkouts/delete",
    "checkouts/update",
    "collections/create",
    "collections/delete",
    "collections/update",
    "companies/create",
    "companies/delete",
    "companies/update",
    "company_contact_roles/assign",
    "company_contact_roles/revoke",
    "company_contacts/create",
    "company_contacts/delete",
    "company_contacts/update",
    "company_locations/create",
    "company_locations/delete",
    "company_locations/update",
    "customers/create",
    "customers/delete",
    "customers/disable",
    "customers/enable",
    "customers/merge",
    "customers/update",
    "customers_email_marketing_consent/update",
    "customers_marketing_consent/update",
    "disputes/create",
    "disputes/update",
    "domains/create",
    "domains/destroy",
    "domains/update",
    "draft_orders/create",
    "draft_orders/delete",
    "draft_orders/update",
    "fulfillments/create",
    "fulfillments/update",
    "inventory_items/create",
    "inventory_items/delete",
    "inventory_items/update",
    "inventory_levels/connect",
    "inventory_levels/disconnect",
    "inventory_levels/update",
    "locations/activate",
    "locations/create",
    "locations/deactivate",
    "locations/delete",
    "locations/update",
    "markets/create",
    "markets/delete",
    "markets/update",
    "metaobjects/create",
    "metaobjects/delete",
    "metaobjects/update",
    "order_transactions/create",
    "orders/cancelled",
    "orders/create",
    "orders/delete",
    "orders/edited",
    "orders/fulfilled",
    "orders/paid",
    "orders/partially_fulfilled",
    "orders/risk_assessment_changed",
    "orders/updated",
    "payment_terms/create",
    "payment_terms/delete",
    "payment_terms/update",
    "product_listings/add",
    "product_listings/remove",
    "product_listings/update",
    "products/create",
    "products/delete",
    "products/update",
    "refunds/create",
    "returns/approve",
    "returns/cancel",
    "returns/close",
    "returns/decline",
    "returns/reopen",
    "returns/request",
    "selling_plan_groups/create",
    "selling_plan_groups/delete",
    "selling_plan_groups/update",
    "shop/update",
    "subscription_contracts/create",
    "subscription_contracts/update",
    "tender_transactions/create",
    "themes/create",
    "themes/delete",
    "themes/publish",
    "themes/update",
    "variants/in_stock",
    "variants/out_of_stock",
];

/// Most records one connection page may request.
pub const MAX_PAGE_SIZE: u64 = 250;

/// The GraphQL enum name of a topic: `orders/create` → `ORDERS_CREATE` (an enum name stays
/// as it is).
pub fn topic_enum(topic: &str) -> String {
    topic.replace('/', "_").to_ascii_uppercase()
}

/// The name webhooks carry (`X-Shopify-Topic`): `ORDERS_CREATE` → `orders/create` (a name
/// with a `/` stays as it is; an enum name the simulator does not know is lowercased).
pub fn topic_name(topic: &str) -> String {
    if topic.contains('/') {
        return topic.to_owned();
    }
    TOPICS
        .iter()
        .find(|t| topic_enum(t) == topic)
        .map_or_else(|| topic.to_ascii_lowercase(), |t| (*t).to_owned())
}

/// Whether `name` is a `WebhookSubscriptionTopic` value the simulator accepts.
pub fn is_topic_enum(name: &str) -> bool {
    TOPICS.iter().any(|t| topic_enum(t) == name)
}

/// One webhook subscription of a shop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// `gid://shopify/WebhookSubscription/<n>`.
    pub id: String,
    /// The shop it belongs to.
    pub shop: String,
    /// The topic's GraphQL enum name, e.g. `ORDERS_CREATE`.
    pub topic: String,
    /// Where deliveries go.
    pub uri: String,
    /// `JSON` (or `XML` if asked for; deliveries are JSON regardless).
    pub format: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Last update time, RFC 3339.
    pub updated_at: String,
}

impl WebhookSubscription {
    /// A new subscription with numeric id `id`, created now (`now`, RFC 3339).
    pub fn new(id: u64, shop: &str, topic: &str, uri: &str, format: &str, now: &str) -> Self {
        WebhookSubscription {
            id: format!("gid://shopify/WebhookSubscription/{id}"),
            shop: shop.to_owned(),
            topic: topic_enum(topic),
            uri: uri.to_owned(),
            format: format.to_owned(),
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
        }
    }

    /// The numeric part of the id.
    pub fn legacy_id(&self) -> u64 {
        self.id
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The topic as webhooks name it (`orders/create`).
    pub fn topic_name(&self) -> String {
        topic_name(&self.topic)
    }

    /// Whether deliveries to it are simulated (an `http://` or `https://` address).
    pub fn is_http(&self) -> bool {
        self.uri.starts_with("https://") || self.uri.starts_with("http://")
    }

    /// The subscription as the simulator answers it (webhooks of API version `api_version`).
    pub fn to_json(&self, api_version: &str) -> Value {
        let endpoint = if self.is_http() {
            json!({"__typename": "WebhookHttpEndpoint", "callbackUrl": self.uri})
        } else if let Some(rest) = self.uri.strip_prefix("pubsub://") {
            let (project, topic) = rest.split_once(':').unwrap_or((rest, ""));
            json!({"__typename": "WebhookPubSubEndpoint", "pubSubProject": project, "pubSubTopic": topic})
        } else {
            json!({"__typename": "WebhookEventBridgeEndpoint", "arn": self.uri})
        };
        json!({
            "id": self.id,
            "legacyResourceId": self.legacy_id().to_string(),
            "topic": self.topic,
            "uri": self.uri,
            "callbackUrl": self.is_http().then_some(&self.uri),
            "endpoint": endpoint,
            "format": self.format,
            "includeFields": [],
            "metafieldNamespaces": [],
            "filter": null,
            "apiVersion": {"handle": api_version, "displayName": api_version, "supported": true},
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }
}

/// A subscription the simulator deleted because a delivery to it failed every attempt.
#[derive(Clone, Debug)]
pub struct RemovedSubscription {
    /// The subscription as it was.
    pub subscription: WebhookSubscription,
    /// The webhook whose delivery failed every attempt.
    pub webhook_id: String,
    /// How many attempts that delivery made.
    pub attempts: usize,
    /// When it was deleted, RFC 3339.
    pub removed_at: String,
}

/// A shop's subscriptions, in creation order, and those deleted after failed deliveries.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionStore {
    pub(crate) live: Vec<WebhookSubscription>,
    pub(crate) removed: Vec<RemovedSubscription>,
}

/// A `userErrors` entry.
fn user_error(field: &[&str], message: &str) -> Value {
    json!({"field": field, "message": message})
}

impl SubscriptionStore {
    /// Validates a `webhookSubscriptionCreate` and stores the subscription, or returns the
    /// user errors. `input` is the `WebhookSubscriptionInput`.
    pub(crate) fn create(
        &mut self,
        id: impl FnOnce() -> u64,
        shop: &str,
        topic: &str,
        input: &Value,
        now: &str,
    ) -> Result<&WebhookSubscription, Vec<Value>> {
        let s = |k: &str| input.get(k).and_then(Value::as_str);
        let uri = s("uri")
            .or_else(|| s("callbackUrl"))
            .or_else(|| s("arn"))
            .unwrap_or("")
            .trim();
        let field = ["webhookSubscription", "callbackUrl"];
        let supported = ["https://", "http://", "pubsub://", "arn:aws:events:"];
        if uri.is_empty() {
            return Err(vec![user_error(&field, "Address can't be blank")]);
        }
        if !supported.iter().any(|p| uri.starts_with(p)) || uri.contains(char::is_whitespace) {
            return Err(vec![user_error(&field, "Address is invalid")]);
        }
        let topic = topic_enum(topic);
        if self.live.iter().any(|x| x.topic == topic && x.uri == uri) {
            return Err(vec![user_error(
                &field,
                "Address for this topic has already been taken",
            )]);
        }
        let format = s("format").unwrap_or("JSON");
        self.live.push(WebhookSubscription::new(
            id(),
            shop,
            &topic,
            uri,
            format,
            now,
        ));
        Ok(self.live.last().expect("just pushed"))
    }

    /// Deletes the subscription `id`; whether it existed.
    pub(crate) fn delete(&mut self, id: &str) -> bool {
        let before = self.live.len();
        self.live.retain(|x| x.id != id);
        self.live.len() != before
    }

    /// Deletes every subscription of `topic` (either form); whether there was one.
    pub(crate) fn delete_topic(&mut self, topic: &str) -> bool {
        let topic = topic_enum(topic);
        let before = self.live.len();
        self.live.retain(|x| x.topic != topic);
        self.live.len() != before
    }

    /// Deletes `id` after the delivery of `webhook_id` failed all its `attempts`, and records
    /// it; nothing if it is already gone.
    pub(crate) fn remove_failed(&mut self, id: &str, webhook_id: &str, attempts: usize, now: &str) {
        if let Some(at) = self.live.iter().position(|x| x.id == id) {
            let subscription = self.live.remove(at);
            tracing::warn!(id, topic = %subscription.topic, uri = %subscription.uri,
                "webhook subscription deleted: a delivery failed every attempt");
            self.removed.push(RemovedSubscription {
                subscription,
                webhook_id: webhook_id.to_owned(),
                attempts,
                removed_at: now.to_owned(),
            });
        }
    }

    /// The subscriptions matching the `webhookSubscriptions` filters in `args` (`topics`,
    /// `uri` / `callbackUrl`, `format`) with an id above the cursor `after`.
    pub(crate) fn matching(
        &self,
        args: &serde_json::Map<String, Value>,
        after: u64,
    ) -> Vec<&WebhookSubscription> {
        let topics: Option<Vec<String>> = args
            .get("topics")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(topic_enum).collect());
        let uri = args
            .get("uri")
            .or_else(|| args.get("callbackUrl"))
            .and_then(Value::as_str);
        let format = args.get("format").and_then(Value::as_str);
        self.live
            .iter()
            .filter(|x| x.legacy_id() > after)
            .filter(|x| topics.as_ref().is_none_or(|t| t.contains(&x.topic)))
            .filter(|x| uri.is_none_or(|u| x.uri == u))
            .filter(|x| format.is_none_or(|f| x.format == f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_convert_between_webhook_and_enum_names() {
        assert_eq!(topic_enum("orders/create"), "ORDERS_CREATE");
        assert_eq!(
            topic_enum("inventory_levels/update"),
            "INVENTORY_LEVELS_UPDATE"
        );
        assert_eq!(topic_enum("ORDERS_CREATE"), "ORDERS_CREATE");
        assert_eq!(
            topic_name("INVENTORY_LEVELS_UPDATE"),
            "inventory_levels/update"
        );
        assert_eq!(
            topic_name("BULK_OPERATIONS_FINISH"),
            "bulk_operations/finish"
        );
        assert_eq!(topic_name("orders/paid"), "orders/paid");
        assert!(is_topic_enum("APP_UNINSTALLED"));
        assert!(
            !is_topic_enum("SHOP_REDACT"),
            "compliance topics are not subscribable"
        );
        assert!(!is_topic_enum("orders/create"));
        // Every name converts back to itself.
        for t in TOPICS {
            assert_eq!(topic_name(&topic_enum(t)), *t);
        }
    }

    #[test]
    fn every_topic_wholesail_knows_is_subscribable_but_the_compliance_ones() {
        use wholesail_webhook::topics::{Family, KnownTopic};
        for t in KnownTopic::ALL {
            let compliance = matches!(t.family(), Family::Compliance);
            assert_eq!(is_topic_enum(&topic_enum(t.as_str())), !compliance, "{t:?}");
        }
    }

    #[test]
    fn create_refuses_blank_invalid_and_duplicate_addresses() {
        let mut store = SubscriptionStore::default();
        let mut n = 0;
        let mut id = || {
            n += 1;
            n
        };
        let now = "2026-01-01T00:00:00Z";
        let ok = store
            .create(
                &mut id,
                "s",
                "ORDERS_CREATE",
                &json!({"uri": "https://e/h"}),
                now,
            )
            .unwrap();
        assert_eq!(ok.id, "gid://shopify/WebhookSubscription/1");
        assert_eq!(ok.format, "JSON");
        let dup = store
            .create(
                &mut id,
                "s",
                "ORDERS_CREATE",
                &json!({"callbackUrl": "https://e/h"}),
                now,
            )
            .unwrap_err();
        assert_eq!(
            dup[0]["message"],
            "Address for this topic has already been taken"
        );
        assert!(store
            .create(
                &mut id,
                "s",
                "ORDERS_PAID",
                &json!({"uri": "https://e/h"}),
                now
            )
            .is_ok());
        let blank = store
            .create(&mut id, "s", "ORDERS_PAID", &json!({}), now)
            .unwrap_err();
        assert_eq!(blank[0]["message"], "Address can't be blank");
        let invalid = store
            .create(&mut id, "s", "ORDERS_PAID", &json!({"uri": "ftp://x"}), now)
            .unwrap_err();
        assert_eq!(invalid[0]["message"], "Address is invalid");
        assert!(store.delete_topic("orders/create"));
        assert!(!store.delete_topic("orders/create"));
        assert_eq!(store.live.len(), 1);
    }
}
