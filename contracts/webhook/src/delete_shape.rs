//! What a genuine delete payload looks like, per delete topic.
//!
//! Shopify's HMAC covers only the body; the topic, shop and webhook id are unsigned headers.
//! A captured signed body of an update could therefore be re-sent under a delete topic with a
//! new webhook id, and a tombstone is final. A delete topic is applied only when its body has
//! the shape Shopify documents for that topic's payload (Shopify's webhook reference,
//! `shopify.dev/docs/api/webhooks`):
//!
//! | topic | documented payload |
//! |---|---|
//! | `orders/delete`, `products/delete`, `collections/delete`, `locations/delete` | `{"id": N}` |
//! | `customers/delete` | `id`, `admin_graphql_api_id`, and the emptied `phone`, `addresses`, `tax_exemptions`, `email_marketing_consent`, `sms_marketing_consent` |
//! | `inventory_items/delete` | `id`, `admin_graphql_api_id`, and the emptied `country_code_of_origin`, `province_code_of_origin`, `harmonized_system_code`, `country_harmonized_system_codes` |
//! | `companies/delete`, `company_locations/delete` | the resource's `admin_graphql_api_id` (these webhooks carry no numeric id) |
//! | `inventory_levels/disconnect` | `inventory_item_id`, `location_id` |
//!
//! Every required key must be present with the right type and no other key may appear, so an
//! order, product or customer body (which always carries `updated_at`, `created_at`, names…)
//! never passes for a delete. The check runs on the raw body (edge and origin's direct mode,
//! through [`crate::strip`]) and again on the stripped payload at origin's intake; stripping
//! only removes keys, so a raw body that passes yields a stripped payload that passes.

use serde_json::value::RawValue;
use serde_json::Value;
use thiserror::Error;

use crate::topics::KnownTopic;

/// Why a body under a delete topic is not a delete payload.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("body under {topic} does not have the delete shape: {reason}")]
pub struct DeleteShapeError {
    /// The delete topic.
    pub topic: String,
    /// What is wrong.
    pub reason: String,
}

/// The JSON type a key must have.
#[derive(Clone, Copy)]
enum Kind {
    /// A positive integer id.
    Id,
    /// A Shopify GID string (`gid://shopify/...`).
    Gid,
    /// Anything (fields Shopify sends emptied on a delete).
    Any,
}

/// One key of a delete payload.
struct Key {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        kind,
        required: false,
    }
}

const ID_ONLY: &[Key] = &[req("id", Kind::Id)];

const CUSTOMER: &[Key] = &[
    req("id", Kind::Id),
    opt("admin_graphql_api_id", Kind::Gid),
    opt("phone", Kind::Any),
    opt("addresses", Kind::Any),
    opt("tax_exemptions", Kind::Any),
    opt("email_marketing_consent", Kind::Any),
    opt("sms_marketing_consent", Kind::Any),
];

const INVENTORY_ITEM: &[Key] = &[
    req("id", Kind::Id),
    opt("admin_graphql_api_id", Kind::Gid),
    opt("country_code_of_origin", Kind::Any),
    opt("province_code_of_origin", Kind::Any),
    opt("harmonized_system_code", Kind::Any),
    opt("country_harmonized_system_codes", Kind::Any),
];

const BY_GID: &[Key] = &[req("admin_graphql_api_id", Kind::Gid), opt("id", Kind::Id)];

const INVENTORY_LEVEL: &[Key] = &[
    req("inventory_item_id", Kind::Id),
    req("location_id", Kind::Id),
];

/// The delete shape of `topic`, if it removes a resource.
fn shape(topic: KnownTopic) -> Option<&'static [Key]> {
    use KnownTopic as T;
    match topic {
        T::OrdersDelete | T::ProductsDelete | T::CollectionsDelete | T::LocationsDelete => {
            Some(ID_ONLY)
        }
        T::CustomersDelete => Some(CUSTOMER),
        T::InventoryItemsDelete => Some(INVENTORY_ITEM),
        T::CompaniesDelete | T::CompanyLocationsDelete => Some(BY_GID),
        T::InventoryLevelsDisconnect => Some(INVENTORY_LEVEL),
        _ => None,
    }
}

/// The delete shape of the topic named `topic`, if it is a known delete topic.
fn shape_of(topic: &str) -> Option<&'static [Key]> {
    KnownTopic::parse(topic).and_then(shape)
}

/// Whether `topic` removes a resource (its body must pass [`check`]).
pub fn is_delete_topic(topic: &str) -> bool {
    shape_of(topic).is_some()
}

/// Checks that `json` (a parsed JSON document's text) has the delete shape of `topic`; any
/// body passes for a topic that is not a delete topic.
pub fn check(topic: &str, json: &str) -> Result<(), DeleteShapeError> {
    let Some(keys) = shape_of(topic) else {
        return Ok(());
    };
    let err = |reason: String| DeleteShapeError {
        topic: topic.to_owned(),
        reason,
    };
    // Top-level keys only; values stay raw (an order body's line items are never built).
    let fields: std::collections::BTreeMap<String, &RawValue> =
        serde_json::from_str(json).map_err(|e| err(format!("not a JSON object of fields: {e}")))?;
    for (name, raw) in &fields {
        let key = keys
            .iter()
            .find(|k| k.name == *name)
            .ok_or_else(|| err(format!("unexpected field {name:?}")))?;
        let ok = match key.kind {
            Kind::Any => true,
            Kind::Id => matches!(
                serde_json::from_str::<Value>(raw.get()),
                Ok(Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0)
            ),
            Kind::Gid => matches!(
                serde_json::from_str::<Value>(raw.get()),
                Ok(Value::String(s)) if crate::Gid::parse(&s).is_ok()
            ),
        };
        if !ok {
            return Err(err(format!("field {name:?} has the wrong type")));
        }
    }
    if let Some(missing) = keys
        .iter()
        .find(|k| k.required && !fields.contains_key(k.name))
    {
        return Err(err(format!("missing field {:?}", missing.name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_delete_payloads_pass() {
        for (topic, body) in [
            ("orders/delete", r#"{"id":450789469}"#),
            ("products/delete", r#"{"id":788032119674292922}"#),
            (
                "customers/delete",
                r#"{"id":706405506930370084,"phone":null,"addresses":[],"tax_exemptions":[],
                    "email_marketing_consent":null,"sms_marketing_consent":null,
                    "admin_graphql_api_id":"gid://shopify/Customer/706405506930370084"}"#,
            ),
            (
                "companies/delete",
                r#"{"admin_graphql_api_id":"gid://shopify/Company/1"}"#,
            ),
            (
                "company_locations/delete",
                r#"{"admin_graphql_api_id":"gid://shopify/CompanyLocation/2"}"#,
            ),
            (
                "inventory_levels/disconnect",
                r#"{"inventory_item_id":271878346596884015,"location_id":24826418}"#,
            ),
        ] {
            assert_eq!(check(topic, body), Ok(()), "{topic}");
        }
    }

    #[test]
    fn an_update_body_under_a_delete_topic_is_refused_with_the_reason() {
        let order = r#"{"id":1,"updated_at":"2026-11-23T10:00:00-05:00","line_items":[]}"#;
        let e = check("orders/delete", order).unwrap_err();
        assert!(e.to_string().contains("unexpected field"), "{e}");
        let company = r#"{"admin_graphql_api_id":"gid://shopify/Company/1","name":"Acme",
                          "updated_at":"2026-11-23T10:00:00-05:00"}"#;
        assert!(check("companies/delete", company).is_err());
        assert_eq!(check("orders/updated", order), Ok(()));
    }

    #[test]
    fn wrong_types_missing_ids_and_non_objects_are_refused() {
        for (topic, body) in [
            ("orders/delete", r#"{"id":"1"}"#),
            ("orders/delete", r#"{"id":0}"#),
            ("orders/delete", r#"{"id":-5}"#),
            ("orders/delete", r#"{}"#),
            ("orders/delete", r#"[{"id":1}]"#),
            (
                "companies/delete",
                r#"{"admin_graphql_api_id":"Company/1"}"#,
            ),
            ("inventory_levels/disconnect", r#"{"inventory_item_id":1}"#),
        ] {
            assert!(check(topic, body).is_err(), "{topic} {body}");
        }
    }
}
