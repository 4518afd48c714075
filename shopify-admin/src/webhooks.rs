//! Webhook subscriptions of the shop made through the Admin API: list them
//! (`webhookSubscriptions`, pages of 100) and create one (`webhookSubscriptionCreate`).
//! Shopify deletes such a subscription after a delivery failed every retry, so a reconciler
//! lists them and recreates the missing ones.

use serde::Deserialize;
use serde_json::json;

use crate::{check_user_errors, AdminClient, AdminError, QueryCost, Request, Retry, UserError};

/// One subscription.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Subscription {
    /// `gid://shopify/WebhookSubscription/…`.
    pub id: String,
    /// Shopify's enum name of the topic (`ORDERS_CREATE`; see [`topic_enum`]).
    pub topic: String,
    /// Where deliveries go.
    pub uri: String,
}

/// The GraphQL enum name of a topic as webhooks name it: `orders/create` → `ORDERS_CREATE`.
pub fn topic_enum(topic: &str) -> String {
    topic.replace('/', "_").to_uppercase()
}

/// Subscriptions asked for per page.
const PAGE: u32 = 100;

const LIST: &str = "query WebhookSubscriptions($first: Int!, $after: String) {
  webhookSubscriptions(first: $first, after: $after) {
    nodes { id topic uri }
    pageInfo { hasNextPage endCursor }
  }
}";

const CREATE: &str =
    "mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}";

impl AdminClient {
    /// Every subscription of the shop made through the API, and the cost points it took.
    pub async fn webhook_subscriptions(&self) -> Result<(Vec<Subscription>, u32), AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            webhook_subscriptions: Connection,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Connection {
            nodes: Vec<Subscription>,
            page_info: PageInfo,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PageInfo {
            has_next_page: bool,
            end_cursor: Option<String>,
        }
        let (mut all, mut cost) = (Vec::new(), 0);
        let mut after: Option<String> = None;
        loop {
            let response = self
                .execute::<Data>(&Request {
                    name: "WebhookSubscriptions",
                    query: LIST,
                    variables: json!({"first": PAGE, "after": after}),
                    estimated_cost: 2 + PAGE,
                    retry: Retry::Always,
                })
                .await?;
            cost += points(response.cost.as_ref());
            let page = response.data.webhook_subscriptions;
            all.extend(page.nodes);
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(cursor)) => after = Some(cursor),
                _ => return Ok((all, cost)),
            }
        }
    }

    /// Subscribes `topic` (as webhooks name it, `orders/create`) to `uri` in JSON; the
    /// subscription and the cost points it took. Creating a subscription that exists fails
    /// with Shopify's user error ("Address for this topic has already been taken"), so a retry
    /// after an unknown outcome cannot make two.
    pub async fn create_webhook_subscription(
        &self,
        topic: &str,
        uri: &str,
    ) -> Result<(Subscription, u32), AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            webhook_subscription_create: Payload,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            webhook_subscription: Option<Subscription>,
            user_errors: Vec<UserError>,
        }
        let response = self
            .execute::<Data>(&Request {
                name: "WebhookSubscriptionCreate",
                query: CREATE,
                variables: json!({"topic": topic_enum(topic), "uri": uri}),
                estimated_cost: 10,
                retry: Retry::Always,
            })
            .await?;
        let cost = points(response.cost.as_ref());
        let p = response.data.webhook_subscription_create;
        check_user_errors(p.user_errors)?;
        let created = p.webhook_subscription.ok_or_else(|| {
            AdminError::Decode("webhookSubscriptionCreate returned nothing".into())
        })?;
        Ok((created, cost))
    }
}

/// The points a request cost (its requested cost when Shopify did not say).
fn points(cost: Option<&QueryCost>) -> u32 {
    cost.map_or(0, |c| c.actual_query_cost.unwrap_or(c.requested_query_cost))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_become_shopify_enum_names() {
        assert_eq!(topic_enum("orders/create"), "ORDERS_CREATE");
        assert_eq!(
            topic_enum("inventory_levels/update"),
            "INVENTORY_LEVELS_UPDATE"
        );
        assert_eq!(topic_enum("app/uninstalled"), "APP_UNINSTALLED");
    }
}
