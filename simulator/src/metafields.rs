//! Metafields and `metafieldsSet`: at most 25 per call, atomic (nothing is written when any
//! input is rejected), value size limits (json 128 KiB, other types 64 KiB), `$app`
//! namespaces resolved to `app--<app id>--…`, and `compareDigest` compare-and-set: a digest
//! must match the stored value's, and an explicit `null` requires that the metafield does not
//! exist yet; a mismatch is a `STALE_OBJECT` user error.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Most metafields one `metafieldsSet` call may set.
pub const MAX_PER_CALL: usize = 25;
/// Largest `json` value in bytes (writes from API 2026-04).
pub const MAX_JSON_BYTES: usize = 128 * 1024;
/// Largest value of the other types in bytes.
pub const MAX_OTHER_BYTES: usize = 64 * 1024;

/// A stored metafield.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMetafield {
    /// Numeric id (`gid://shopify/Metafield/<id>`).
    pub id: u64,
    /// The owner's gid.
    pub owner_id: String,
    /// Namespace, with `$app` resolved.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// Type, e.g. `json`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Value.
    pub value: String,
    /// Digest of the value, for `compareDigest`.
    pub compare_digest: String,
    /// How many times it was written.
    pub writes: u32,
}

/// The metafields of one shop, keyed by (owner gid, namespace, key).
#[derive(Debug, Default)]
pub struct MetafieldStore {
    by_key: BTreeMap<(String, String, String), StoredMetafield>,
    next_id: u64,
}

/// The digest Shopify exposes as `compareDigest` (opaque to clients; here SHA-256 of the
/// value, hex).
pub fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn user_error(field: Vec<String>, message: String, code: &str, index: Option<usize>) -> Value {
    json!({"field": field, "message": message, "code": code, "elementIndex": index})
}

impl MetafieldStore {
    /// The metafield `owner`/`namespace`/`key` (namespace as stored, `$app` resolved).
    pub fn get(&self, owner: &str, namespace: &str, key: &str) -> Option<&StoredMetafield> {
        self.by_key
            .get(&(owner.to_owned(), namespace.to_owned(), key.to_owned()))
    }

    /// Every metafield, in key order.
    pub fn all(&self) -> Vec<StoredMetafield> {
        self.by_key.values().cloned().collect()
    }

    /// Runs `metafieldsSet(metafields:)`: returns the payload (`metafields`, `userErrors`).
    pub fn set(&mut self, input: &Value, app_id: u64, now: &str) -> Value {
        let Some(items) = input.as_array() else {
            return json!({"metafields": null, "userErrors": [user_error(
                vec!["metafields".into()], "metafields must be a list".into(), "INVALID", None)]});
        };
        if items.len() > MAX_PER_CALL {
            return json!({"metafields": null, "userErrors": [user_error(
                vec!["metafields".into()],
                format!("Exceeded the maximum metafields input limit of {MAX_PER_CALL}."),
                "LESS_THAN_OR_EQUAL_TO", None)]});
        }
        let mut errors = Vec::new();
        let mut writes = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let field = |name: &str| vec!["metafields".to_owned(), i.to_string(), name.to_owned()];
            let s = |name: &str| item.get(name).and_then(Value::as_str).unwrap_or("");
            let owner = s("ownerId");
            let key = s("key");
            let namespace = resolve_namespace(
                item.get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("$app"),
                app_id,
            );
            let Some(value) = item.get("value").and_then(Value::as_str) else {
                errors.push(user_error(
                    field("value"),
                    "Value can't be blank.".into(),
                    "BLANK",
                    Some(i),
                ));
                continue;
            };
            if !owner.starts_with("gid://shopify/") {
                errors.push(user_error(
                    field("ownerId"),
                    "Owner does not exist.".into(),
                    "INVALID",
                    Some(i),
                ));
                continue;
            }
            if key.len() < 2 || key.len() > 64 {
                errors.push(user_error(
                    field("key"),
                    "Key must be 2 to 64 characters.".into(),
                    if key.is_empty() { "BLANK" } else { "TOO_SHORT" },
                    Some(i),
                ));
                continue;
            }
            let existing = self.get(owner, &namespace, key);
            let kind = match (item.get("type").and_then(Value::as_str), existing) {
                (Some(t), _) => t.to_owned(),
                (None, Some(e)) => e.kind.clone(),
                (None, None) => {
                    errors.push(user_error(
                        field("type"),
                        "Type can't be blank.".into(),
                        "BLANK",
                        Some(i),
                    ));
                    continue;
                }
            };
            let limit = if kind == "json" {
                MAX_JSON_BYTES
            } else {
                MAX_OTHER_BYTES
            };
            if value.len() > limit {
                errors.push(user_error(
                    field("value"),
                    format!("Value is too long (maximum is {limit} bytes for type {kind})."),
                    "TOO_LONG",
                    Some(i),
                ));
                continue;
            }
            if kind == "json" && serde_json::from_str::<Value>(value).is_err() {
                errors.push(user_error(
                    field("value"),
                    "Value must be valid JSON.".into(),
                    "INVALID_VALUE",
                    Some(i),
                ));
                continue;
            }
            // `compareDigest` absent: no guarantee; null: must not exist; a digest: must match.
            match item.get("compareDigest") {
                None => {}
                Some(Value::Null) if existing.is_some() => {
                    errors.push(user_error(field("compareDigest"),
                        "The resource has been updated since it was loaded. Try again with an updated `compareDigest` value.".into(),
                        "STALE_OBJECT", Some(i)));
                    continue;
                }
                Some(Value::Null) => {}
                Some(Value::String(d)) if existing.is_some_and(|e| &e.compare_digest == d) => {}
                Some(Value::String(_)) => {
                    errors.push(user_error(field("compareDigest"),
                        "The resource has been updated since it was loaded. Try again with an updated `compareDigest` value.".into(),
                        "STALE_OBJECT", Some(i)));
                    continue;
                }
                Some(_) => {
                    errors.push(user_error(
                        field("compareDigest"),
                        "The compareDigest is invalid.".into(),
                        "INVALID_COMPARE_DIGEST",
                        Some(i),
                    ));
                    continue;
                }
            }
            writes.push((
                owner.to_owned(),
                namespace,
                key.to_owned(),
                kind,
                value.to_owned(),
            ));
        }
        if !errors.is_empty() {
            return json!({"metafields": null, "userErrors": errors});
        }
        let mut out = Vec::new();
        for (owner, namespace, key, kind, value) in writes {
            let k = (owner.clone(), namespace.clone(), key.clone());
            let next_id = &mut self.next_id;
            let m = self.by_key.entry(k).or_insert_with(|| {
                *next_id += 1;
                StoredMetafield {
                    id: 25_000_000_000_000 + *next_id,
                    owner_id: owner,
                    namespace,
                    key,
                    kind: String::new(),
                    value: String::new(),
                    compare_digest: String::new(),
                    writes: 0,
                }
            });
            m.compare_digest = digest(&value);
            m.kind = kind;
            m.value = value;
            m.writes += 1;
            out.push(json!({
                "id": format!("gid://shopify/Metafield/{}", m.id),
                "namespace": m.namespace, "key": m.key, "type": m.kind, "value": m.value,
                "compareDigest": m.compare_digest, "ownerType": owner_type(&m.owner_id),
                "createdAt": now, "updatedAt": now,
            }));
        }
        json!({"metafields": out, "userErrors": []})
    }
}

/// `$app` and `$app:ns` are the app's reserved namespaces, stored as `app--<id>` and
/// `app--<id>--ns`.
pub fn resolve_namespace(ns: &str, app_id: u64) -> String {
    match ns.strip_prefix("$app") {
        Some("") => format!("app--{app_id}"),
        Some(rest) if rest.starts_with(':') => format!("app--{app_id}--{}", &rest[1..]),
        _ => ns.to_owned(),
    }
}

fn owner_type(gid: &str) -> String {
    let t = gid
        .trim_start_matches("gid://shopify/")
        .split('/')
        .next()
        .unwrap_or("");
    match t {
        "ProductVariant" => "PRODUCTVARIANT".into(),
        "CompanyLocation" => "COMPANY_LOCATION".into(),
        "DraftOrder" => "DRAFTORDER".into(),
        other => other.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mf(owner: &str, value: &str) -> Value {
        json!({"ownerId": owner, "namespace": "$app:rules", "key": "buyer", "type": "json", "value": value})
    }

    #[test]
    fn more_than_25_is_a_user_error_and_nothing_is_written() {
        let mut s = MetafieldStore::default();
        let items: Vec<Value> = (0..26)
            .map(|i| mf(&format!("gid://shopify/Product/{i}"), "{}"))
            .collect();
        let r = s.set(&json!(items), 7, "t");
        assert_eq!(r["userErrors"][0]["code"], "LESS_THAN_OR_EQUAL_TO");
        assert!(s.all().is_empty());
    }

    #[test]
    fn one_bad_input_rejects_the_whole_call() {
        let mut s = MetafieldStore::default();
        let r = s.set(
            &json!([
                mf("gid://shopify/Product/1", "{}"),
                mf("gid://shopify/Product/2", "{not json")
            ]),
            7,
            "t",
        );
        assert_eq!(r["userErrors"][0]["code"], "INVALID_VALUE");
        assert_eq!(r["userErrors"][0]["elementIndex"], 1);
        assert!(s.all().is_empty());
    }

    #[test]
    fn compare_digest_is_compare_and_set() {
        let mut s = MetafieldStore::default();
        let owner = "gid://shopify/CompanyLocation/9";
        let mut first = mf(owner, r#"{"v":1}"#);
        first["compareDigest"] = Value::Null; // create only
        let r = s.set(&json!([first.clone()]), 7, "t");
        let d1 = r["metafields"][0]["compareDigest"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(r["metafields"][0]["namespace"], "app--7--rules");
        // Creating again with null fails: it exists now.
        assert_eq!(
            s.set(&json!([first]), 7, "t")["userErrors"][0]["code"],
            "STALE_OBJECT"
        );
        // Update with the right digest succeeds, then the old digest is stale.
        let mut upd = mf(owner, r#"{"v":2}"#);
        upd["compareDigest"] = json!(d1);
        assert_eq!(
            s.set(&json!([upd.clone()]), 7, "t")["userErrors"],
            json!([])
        );
        assert_eq!(
            s.set(&json!([upd]), 7, "t")["userErrors"][0]["code"],
            "STALE_OBJECT"
        );
        assert_eq!(
            s.get(owner, "app--7--rules", "buyer").unwrap().value,
            r#"{"v":2}"#
        );
    }

    #[test]
    fn value_size_limits_depend_on_the_type() {
        let mut s = MetafieldStore::default();
        let big_json = format!("\"{}\"", "x".repeat(MAX_JSON_BYTES - 2));
        assert_eq!(
            s.set(&json!([mf("gid://shopify/Product/1", &big_json)]), 7, "t")["userErrors"],
            json!([])
        );
        let too_big = format!("\"{}\"", "x".repeat(MAX_JSON_BYTES - 1));
        assert_eq!(
            s.set(&json!([mf("gid://shopify/Product/1", &too_big)]), 7, "t")["userErrors"][0]
                ["code"],
            "TOO_LONG"
        );
        let mut text = mf("gid://shopify/Product/1", &"y".repeat(MAX_OTHER_BYTES + 1));
        text["type"] = json!("multi_line_text_field");
        text["key"] = json!("note");
        assert_eq!(
            s.set(&json!([text]), 7, "t")["userErrors"][0]["code"],
            "TOO_LONG"
        );
    }
}
