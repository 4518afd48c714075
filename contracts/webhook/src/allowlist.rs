//! Per-topic field allowlists and the streaming stripper.
//!
//! Operations need a small fraction of what Shopify sends (a 500-line order is ~600 kB). The
//! stripper walks the JSON once, guided by the topic's [`Spec`]: kept scalar fields are copied
//! as raw text, nested objects and arrays are filtered by their own allowlist, and everything
//! else is skipped by the parser without being materialised.
//!
//! Rules applied to every topic with an allowlist:
//! - at the top level, `id`, `admin_graphql_api_id` and `updated_at` always survive (Shopify's
//!   `include_fields` de-duplication depends on `updated_at`; the ids are the join keys);
//! - at every level, `id` and any `*_id` key survive;
//! - unknown topics pass through unstripped, flagged [`Stripping::UnknownTopic`].

use std::fmt::{self, Write};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::delete_shape::DeleteShapeError;
use crate::topics::{Family, KnownTopic};

/// What to do with one field of an object.
#[derive(Debug)]
pub enum Field {
    /// Keep the value as it is, whatever its shape.
    Keep,
    /// Filter the value by a nested allowlist: an object keeps the listed fields; an array
    /// applies the allowlist to each element.
    Nested(Spec),
}

/// An allowlist: the fields of one object level.
pub type Spec = &'static [(&'static str, Field)];

/// How a payload was reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stripping {
    /// Reduced by the topic's allowlist.
    Allowlist,
    /// No allowlist for this topic: forwarded whole, so origin can store it and someone can
    /// write an allowlist.
    UnknownTopic,
}

/// A payload after stripping.
#[derive(Debug)]
pub struct Stripped {
    /// The reduced JSON document.
    pub json: String,
    /// How it was reduced.
    pub stripping: Stripping,
}

/// Why a payload could not be stripped.
#[derive(Debug, Error)]
pub enum StripError {
    /// The body is not valid UTF-8 somewhere, kept field or dropped one.
    #[error("payload is not valid UTF-8: {0}")]
    InvalidUtf8(#[from] std::str::Utf8Error),
    /// The body is not a JSON document; the parser's message says where.
    #[error("payload is not valid JSON: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A delete topic whose body is not the delete payload Shopify documents for it.
    #[error(transparent)]
    NotDeleteShape(#[from] DeleteShapeError),
}

/// Strips `body` by the allowlist of `topic`.
///
/// The whole body must be UTF-8 (JSON requires it): the parser skips dropped fields without
/// decoding them, so invalid bytes there would otherwise pass while the same bytes in a kept
/// field fail. Under a delete topic the body must also have the delete shape
/// ([`crate::delete_shape`]).
pub fn strip(topic: &str, body: &[u8]) -> Result<Stripped, StripError> {
    let mut json = String::with_capacity(body.len() / 4);
    let stripping = strip_into(topic, body, &mut json)?;
    Ok(Stripped { json, stripping })
}

/// [`strip`], appending the reduced document to `out` (the edge writes it straight into its
/// queue message). On an error `out` may hold part of the document: the caller truncates it.
/// The stripping is [`stripping_for`] of `topic`.
pub fn strip_into(topic: &str, body: &[u8], out: &mut String) -> Result<Stripping, StripError> {
    let text = std::str::from_utf8(body)?;
    crate::delete_shape::check(topic, text)?;
    let body = text.as_bytes();
    match spec_for(topic) {
        Some(spec) => {
            let mut de = serde_json::Deserializer::from_slice(body);
            Filter {
                spec,
                out,
                top: true,
            }
            .deserialize(&mut de)?;
            de.end()?;
            Ok(Stripping::Allowlist)
        }
        None => {
            let raw: &RawValue = serde_json::from_slice(body)?;
            out.push_str(raw.get());
            Ok(Stripping::UnknownTopic)
        }
    }
}

/// How [`strip`] reduces a payload of `topic`, known before stripping it.
pub fn stripping_for(topic: &str) -> Stripping {
    match spec_for(topic) {
        Some(_) => Stripping::Allowlist,
        None => Stripping::UnknownTopic,
    }
}

/// The topics that have an allowlist.
pub fn known_topics() -> impl Iterator<Item = &'static str> {
    KnownTopic::ALL
        .iter()
        .filter(|t| spec_of(t.family()).is_some())
        .map(|t| t.as_str())
}

/// The allowlist of `topic`, if it has one.
pub fn spec_for(topic: &str) -> Option<Spec> {
    KnownTopic::parse(topic).and_then(|t| spec_of(t.family()))
}

use Field::{Keep, Nested};

const ADDRESS: Spec = &[
    ("country_code", Keep),
    ("province_code", Keep),
    ("zip", Keep),
    ("city", Keep),
];

/// Order line items: what fulfilment, quotas and reporting need. The line's
/// `admin_graphql_api_id` is dropped: it is `gid://shopify/LineItem/{id}`, derivable from `id`,
/// and keeping it would push a 500-line order over the 128 KB queue message limit.
const LINE_ITEM: Spec = &[
    ("sku", Keep),
    ("quantity", Keep),
    ("current_quantity", Keep),
    ("price", Keep),
    ("total_discount", Keep),
];

const ORDER: Spec = &[
    ("name", Keep),
    ("order_number", Keep),
    ("email", Keep),
    ("created_at", Keep),
    ("processed_at", Keep),
    ("cancelled_at", Keep),
    ("cancel_reason", Keep),
    ("closed_at", Keep),
    ("financial_status", Keep),
    ("fulfillment_status", Keep),
    ("currency", Keep),
    ("total_price", Keep),
    ("subtotal_price", Keep),
    ("total_tax", Keep),
    ("total_discounts", Keep),
    ("taxes_included", Keep),
    ("tags", Keep),
    ("po_number", Keep),
    ("source_name", Keep),
    ("test", Keep),
    ("customer", Nested(&[("email", Keep)])),
    ("company", Nested(&[])),
    ("shipping_address", Nested(ADDRESS)),
    ("shipping_lines", Nested(&[("code", Keep), ("price", Keep)])),
    ("line_items", Nested(LINE_ITEM)),
];

const VARIANT: Spec = &[
    ("sku", Keep),
    ("barcode", Keep),
    ("title", Keep),
    ("price", Keep),
    ("compare_at_price", Keep),
    ("position", Keep),
    ("inventory_quantity", Keep),
    ("updated_at", Keep),
];

const PRODUCT: Spec = &[
    ("title", Keep),
    ("handle", Keep),
    ("status", Keep),
    ("vendor", Keep),
    ("product_type", Keep),
    ("tags", Keep),
    ("created_at", Keep),
    ("published_at", Keep),
    ("variants", Nested(VARIANT)),
];

const INVENTORY_LEVEL: Spec = &[("available", Keep)];

const CUSTOMER: Spec = &[
    ("email", Keep),
    ("first_name", Keep),
    ("last_name", Keep),
    ("phone", Keep),
    ("state", Keep),
    ("tags", Keep),
    ("tax_exempt", Keep),
    ("created_at", Keep),
];

const COMPANY: Spec = &[
    ("name", Keep),
    ("external_id", Keep),
    ("note", Keep),
    ("customer_since", Keep),
    ("created_at", Keep),
    ("main_contact_admin_graphql_api_id", Keep),
];

const COMPANY_LOCATION: Spec = &[
    ("name", Keep),
    ("external_id", Keep),
    ("created_at", Keep),
    (
        "company",
        Nested(&[
            ("admin_graphql_api_id", Keep),
            ("name", Keep),
            ("external_id", Keep),
        ]),
    ),
    ("shipping_address", Nested(ADDRESS)),
];

const BULK_OPERATION: Spec = &[
    ("status", Keep),
    ("error_code", Keep),
    ("type", Keep),
    ("created_at", Keep),
    ("completed_at", Keep),
];

const SHOP: Spec = &[
    ("domain", Keep),
    ("myshopify_domain", Keep),
    ("name", Keep),
    ("plan_name", Keep),
];

/// Compliance payloads are small and every field matters to the redaction.
const COMPLIANCE: Spec = &[
    ("shop_domain", Keep),
    ("customer", Keep),
    ("orders_requested", Keep),
    ("orders_to_redact", Keep),
    ("data_request", Keep),
];

/// The allowlist of each family of topics (topics without one are stored as sent).
const fn spec_of(family: Family) -> Option<Spec> {
    match family {
        Family::Order => Some(ORDER),
        Family::Product => Some(PRODUCT),
        Family::InventoryLevel => Some(INVENTORY_LEVEL),
        Family::Customer => Some(CUSTOMER),
        Family::Company => Some(COMPANY),
        Family::CompanyLocation => Some(COMPANY_LOCATION),
        Family::BulkOperation => Some(BULK_OPERATION),
        Family::Shop => Some(SHOP),
        Family::Compliance => Some(COMPLIANCE),
        Family::Untracked => None,
    }
}

/// Whether `key` survives at any level whatever the allowlist says.
fn always_kept(key: &str, top: bool) -> bool {
    match key {
        "admin_graphql_api_id" | "updated_at" => top,
        _ => key == "id" || key.ends_with("_id"),
    }
}

/// Writes `s` as a JSON string literal.
fn write_str(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::to_string(s).expect("strings always serialise"));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// An object key, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key::Owned(v.to_owned()))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Filters one value by `spec`, appending the result to `out`.
struct Filter<'o> {
    spec: Spec,
    out: &'o mut String,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Filter<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Filter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push('{');
        let mut first = true;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let k = key.as_str();
            let field = self
                .spec
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, f)| f);
            let field = match field {
                Some(f) => f,
                None if always_kept(k, self.top) => &Keep,
                None => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if !first {
                self.out.push(',');
            }
            first = false;
            write_str(self.out, k);
            self.out.push(':');
            match field {
                Keep => {
                    let raw: &'de RawValue = map.next_value()?;
                    self.out.push_str(raw.get());
                }
                Nested(spec) => map.next_value_seed(Filter {
                    spec,
                    out: &mut *self.out,
                    top: false,
                })?,
            }
        }
        self.out.push('}');
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push('[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(',');
            }
            let seed = Filter {
                spec: self.spec,
                out: &mut *self.out,
                top: false,
            };
            if seq.next_element_seed(seed)?.is_none() {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(']');
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.push_str("null");
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.out.push_str("null");
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        write!(self.out, "{v}").expect("writing to a String cannot fail");
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        write!(self.out, "{v}").expect("writing to a String cannot fail");
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.out
            .push_str(&serde_json::to_string(&v).expect("finite JSON numbers serialise"));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_str(self.out, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn stripped(topic: &str, v: Value) -> Value {
        let s = strip(topic, v.to_string().as_bytes()).unwrap();
        assert_eq!(s.stripping, Stripping::Allowlist);
        serde_json::from_str(&s.json).unwrap()
    }

    #[test]
    fn order_keeps_allowlisted_fields_and_drops_the_rest() {
        let order = json!({
            "id": 820982911946154508u64,
            "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
            "updated_at": "2026-11-23T10:00:00-05:00",
            "name": "#9999",
            "browser_ip": "10.0.0.1",
            "note_attributes": [{"name": "gift", "value": "yes"}],
            "customer": {"id": 115310627314723954u64, "email": "buyer@example.com",
                          "first_name": "Ann", "default_address": {"address1": "1 Main"}},
            "company": {"id": 7, "location_id": 8},
            "line_items": [
                {"id": 1, "admin_graphql_api_id": "gid://shopify/LineItem/1",
                 "variant_id": 11, "product_id": 21, "sku": "A-1", "quantity": 3,
                 "price": "9.99", "title": "Widget", "tax_lines": [{"rate": 0.2}],
                 "price_set": {"shop_money": {"amount": "9.99"}}},
                {"id": 2, "variant_id": null, "sku": "B\"2", "quantity": 1, "price": "1.00"}
            ]
        });
        let out = stripped("orders/create", order);
        assert_eq!(
            out,
            json!({
                "id": 820982911946154508u64,
                "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
                "updated_at": "2026-11-23T10:00:00-05:00",
                "name": "#9999",
                "customer": {"id": 115310627314723954u64, "email": "buyer@example.com"},
                "company": {"id": 7, "location_id": 8},
                "line_items": [
                    {"id": 1, "variant_id": 11, "product_id": 21, "sku": "A-1", "quantity": 3,
                     "price": "9.99"},
                    {"id": 2, "variant_id": null, "sku": "B\"2", "quantity": 1, "price": "1.00"}
                ]
            })
        );
    }

    #[test]
    fn nested_nulls_and_empty_arrays_survive() {
        let out = stripped(
            "orders/updated",
            json!({"id": 1, "customer": null, "line_items": [], "shipping_address": null}),
        );
        assert_eq!(
            out,
            json!({"id": 1, "customer": null, "line_items": [], "shipping_address": null})
        );
    }

    #[test]
    fn products_keep_variant_allowlist() {
        let out = stripped(
            "products/update",
            json!({"id": 5, "title": "T", "body_html": "<p>long</p>", "updated_at": "u",
                   "variants": [{"id": 6, "product_id": 5, "sku": "S", "price": "2.00",
                                 "inventory_item_id": 9, "weight": 1.5, "updated_at": "v"}],
                   "images": [{"src": "x"}]}),
        );
        assert_eq!(
            out,
            json!({"id": 5, "title": "T", "updated_at": "u",
                   "variants": [{"id": 6, "product_id": 5, "sku": "S", "price": "2.00",
                                 "inventory_item_id": 9, "updated_at": "v"}]})
        );
    }

    #[test]
    fn unknown_topic_passes_through_flagged() {
        let body = br#"{"id": 1, "anything": {"deep": [1, 2.5e3, "x"]}}"#;
        let s = strip("carts/update", body).unwrap();
        assert_eq!(s.stripping, Stripping::UnknownTopic);
        assert_eq!(s.json.as_bytes(), body);
    }

    #[test]
    fn malformed_json_is_an_error_not_a_drop() {
        for body in [
            &b"{\"id\": 1,"[..],
            b"not json",
            b"{\"id\":1} trailing",
            b"\xff",
        ] {
            assert!(matches!(
                strip("orders/create", body),
                Err(StripError::Malformed(_) | StripError::InvalidUtf8(_))
            ));
            assert!(strip("unknown/topic", body).is_err());
        }
    }

    #[test]
    fn invalid_utf8_is_refused_in_dropped_and_kept_fields_alike() {
        // Fails before the fix: the parser skipped the dropped `note` without decoding it.
        let dropped = b"{\"id\":1,\"note\":\"\xff\xfe\",\"name\":\"#1\"}";
        let kept = b"{\"id\":1,\"name\":\"\xff\xfe\"}";
        for body in [&dropped[..], &kept[..]] {
            let e = strip("orders/create", body).unwrap_err();
            assert!(matches!(e, StripError::InvalidUtf8(_)), "{e}");
            assert!(e.to_string().contains("UTF-8"), "{e}");
        }
    }

    #[test]
    fn delete_topics_take_only_the_delete_shape() {
        let update = json!({"id": 1, "updated_at": "2026-11-23T10:00:00-05:00", "name": "#1",
                            "line_items": []});
        let e = strip("orders/delete", update.to_string().as_bytes()).unwrap_err();
        assert!(matches!(e, StripError::NotDeleteShape(_)), "{e}");
        let s = strip("orders/delete", br#"{"id":1}"#).unwrap();
        assert_eq!(s.json, r#"{"id":1}"#);
        let level = br#"{"inventory_item_id":5,"location_id":6}"#;
        assert_eq!(
            strip("inventory_levels/disconnect", level).unwrap().json,
            std::str::from_utf8(level).unwrap()
        );
    }

    #[test]
    fn escaped_keys_and_scalars_round_trip() {
        let body = br#"{"id":1,"na\u006de":"a\nb","test":false,"total_price":1.5e2,"tags":-3}"#;
        let s = strip("orders/create", body).unwrap();
        let v: Value = serde_json::from_str(&s.json).unwrap();
        assert_eq!(
            v,
            json!({"id": 1, "name": "a\nb", "test": false, "total_price": 150.0, "tags": -3})
        );
    }

    #[test]
    fn every_required_topic_has_an_allowlist() {
        for t in [
            "orders/create",
            "orders/updated",
            "orders/paid",
            "orders/cancelled",
            "products/create",
            "products/update",
            "products/delete",
            "inventory_levels/update",
            "customers/create",
            "customers/update",
            "customers/enable",
            "customers/disable",
            "companies/create",
            "company_locations/update",
            "bulk_operations/finish",
            "app/uninstalled",
            "customers/data_request",
            "customers/redact",
            "shop/redact",
        ] {
            assert!(spec_for(t).is_some(), "{t}");
        }
        assert!(known_topics().count() >= 17);
    }

    #[test]
    fn compliance_payload_keeps_what_redaction_needs() {
        let body = json!({"shop_id": 954889, "shop_domain": "s.myshopify.com",
                          "customer": {"id": 191167, "email": "j@e.com", "phone": "555"},
                          "orders_to_redact": [299938, 280263]});
        assert_eq!(stripped("customers/redact", body.clone()), body);
    }
}
