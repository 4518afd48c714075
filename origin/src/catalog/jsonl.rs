//! One line of a bulk export → one typed [`Record`], routed by the gid type of its `id`.
//!
//! Only the fields the catalog tables hold are deserialised (unknown fields are skipped, never
//! materialised); strings borrow from the line unless they contain escapes. Children carry
//! their parent's numeric id from `__parentId`, so each kind can be staged on its own and
//! joined in the database: no parent map is kept in memory, whatever the order of the lines.

use std::borrow::Cow;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// A product line.
#[derive(Debug, PartialEq)]
pub struct Product<'a> {
    /// Numeric id.
    pub id: i64,
    /// Its gid.
    pub gid: &'a str,
    /// Title.
    pub title: Option<Cow<'a, str>>,
    /// Handle.
    pub handle: Option<Cow<'a, str>>,
    /// Status, lower case like the webhooks (`active`, `draft`, `archived`).
    pub status: Option<String>,
    /// Vendor.
    pub vendor: Option<Cow<'a, str>>,
    /// Product type.
    pub product_type: Option<Cow<'a, str>>,
    /// Tags joined with `", "` like the webhooks.
    pub tags: Option<String>,
    /// `updatedAt`.
    pub updated_at: OffsetDateTime,
}

/// A variant line.
#[derive(Debug, PartialEq)]
pub struct Variant<'a> {
    /// Numeric id.
    pub id: i64,
    /// The product's numeric id (`__parentId`).
    pub product_id: i64,
    /// SKU.
    pub sku: Option<Cow<'a, str>>,
    /// Barcode.
    pub barcode: Option<Cow<'a, str>>,
    /// Title.
    pub title: Option<Cow<'a, str>>,
    /// Price as checked decimal text.
    pub price: Option<&'a str>,
    /// Compare-at price as checked decimal text.
    pub compare_at_price: Option<&'a str>,
    /// 1-based position.
    pub position: Option<i32>,
    /// The inventory item's numeric id.
    pub inventory_item_id: Option<i64>,
    /// `updatedAt`.
    pub updated_at: OffsetDateTime,
}

/// An inventory level line (stock of one item at one location).
#[derive(Debug, PartialEq)]
pub struct InventoryLevel {
    /// The variant's numeric id (`__parentId`).
    pub variant_id: i64,
    /// The inventory item's numeric id (from the level's gid).
    pub inventory_item_id: i64,
    /// The location's numeric id.
    pub location_id: i64,
    /// The `available` quantity, if reported.
    pub available: Option<i32>,
    /// `updatedAt`.
    pub updated_at: OffsetDateTime,
}

/// A metafield line of a product or a variant.
#[derive(Debug, PartialEq)]
pub struct Metafield<'a> {
    /// Numeric id.
    pub id: i64,
    /// `Product` or `ProductVariant`.
    pub owner_type: &'a str,
    /// The owner's numeric id.
    pub owner_id: i64,
    /// Namespace.
    pub namespace: Cow<'a, str>,
    /// Key.
    pub key: Cow<'a, str>,
    /// Type, e.g. `number_integer`.
    pub kind: Cow<'a, str>,
    /// Value, as Shopify serialises it.
    pub value: Cow<'a, str>,
}

/// One routed line.
#[derive(Debug, PartialEq)]
pub enum Record<'a> {
    /// A product.
    Product(Product<'a>),
    /// A variant.
    Variant(Variant<'a>),
    /// An inventory level.
    InventoryLevel(InventoryLevel),
    /// A metafield.
    Metafield(Metafield<'a>),
}

#[derive(Deserialize)]
struct Gid<'a> {
    #[serde(borrow)]
    id: &'a str,
}

#[derive(Deserialize)]
struct Quantity<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    quantity: Option<i32>,
}

/// Every field any exported kind has; which ones must be present depends on the kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(rename = "__parentId", borrow)]
    parent_id: Option<&'a str>,
    #[serde(borrow)]
    updated_at: Option<&'a str>,
    #[serde(borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow)]
    handle: Option<Cow<'a, str>>,
    #[serde(borrow)]
    vendor: Option<Cow<'a, str>>,
    #[serde(borrow)]
    product_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<&'a str>,
    #[serde(borrow)]
    tags: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    sku: Option<Cow<'a, str>>,
    #[serde(borrow)]
    barcode: Option<Cow<'a, str>>,
    #[serde(borrow)]
    price: Option<&'a str>,
    #[serde(borrow)]
    compare_at_price: Option<&'a str>,
    position: Option<i32>,
    #[serde(borrow)]
    inventory_item: Option<Gid<'a>>,
    #[serde(borrow)]
    location: Option<Gid<'a>>,
    #[serde(borrow)]
    quantities: Option<Vec<Quantity<'a>>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
}

/// Parses line `number` of an export.
pub fn parse(number: u64, bytes: &[u8]) -> Result<Record<'_>, LineError> {
    let fail = |reason: String| LineError {
        line: number,
        reason,
    };
    let line: Line =
        serde_json::from_slice(bytes).map_err(|e| fail(format!("invalid JSON: {e}")))?;
    route(line).map_err(fail)
}

fn route(l: Line<'_>) -> Result<Record<'_>, String> {
    let (kind, rest) = split_gid(l.id)?;
    match kind {
        "Product" => Ok(Record::Product(Product {
            id: numeric(rest, l.id)?,
            gid: l.id,
            title: l.title,
            handle: l.handle,
            status: l.status.map(str::to_ascii_lowercase),
            vendor: l.vendor,
            product_type: l.product_type,
            tags: l.tags.map(|t| t.join(", ")),
            updated_at: timestamp(l.updated_at)?,
        })),
        "ProductVariant" => Ok(Record::Variant(Variant {
            id: numeric(rest, l.id)?,
            product_id: parent(l.parent_id, "Product")?,
            sku: l.sku,
            barcode: l.barcode,
            title: l.title,
            price: l.price.map(decimal).transpose()?,
            compare_at_price: l.compare_at_price.map(decimal).transpose()?,
            position: l.position,
            inventory_item_id: l
                .inventory_item
                .map(|g| gid_number(g.id, "InventoryItem"))
                .transpose()?,
            updated_at: timestamp(l.updated_at)?,
        })),
        "InventoryLevel" => {
            // gid://shopify/InventoryLevel/<location>?inventory_item_id=<item>
            let item = rest
                .split_once("?inventory_item_id=")
                .map(|(_, item)| item)
                .ok_or_else(|| format!("inventory level id {:?} names no inventory item", l.id))?;
            let location = l.location.ok_or("inventory level without location")?;
            Ok(Record::InventoryLevel(InventoryLevel {
                variant_id: parent(l.parent_id, "ProductVariant")?,
                inventory_item_id: numeric(item, l.id)?,
                location_id: gid_number(location.id, "Location")?,
                available: l
                    .quantities
                    .unwrap_or_default()
                    .into_iter()
                    .find(|q| q.name == "available")
                    .and_then(|q| q.quantity),
                updated_at: timestamp(l.updated_at)?,
            }))
        }
        "Metafield" => {
            let owner = l.parent_id.ok_or("metafield without __parentId")?;
            let (owner_type, owner_rest) = split_gid(owner)?;
            if owner_type != "Product" && owner_type != "ProductVariant" {
                return Err(format!(
                    "metafield owner {owner:?} is not a product or variant"
                ));
            }
            Ok(Record::Metafield(Metafield {
                id: numeric(rest, l.id)?,
                owner_type,
                owner_id: numeric(owner_rest, owner)?,
                namespace: l.namespace.ok_or("metafield without namespace")?,
                key: l.key.ok_or("metafield without key")?,
                kind: l.kind.ok_or("metafield without type")?,
                value: l.value.ok_or("metafield without value")?,
            }))
        }
        other => Err(format!("unexpected object type {other:?} in {:?}", l.id)),
    }
}

/// `gid://shopify/<Type>/<rest>` → (`Type`, `rest`).
fn split_gid(gid: &str) -> Result<(&str, &str), String> {
    gid.strip_prefix("gid://shopify/")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(|| format!("{gid:?} is not a Shopify gid"))
}

fn numeric(digits: &str, gid: &str) -> Result<i64, String> {
    digits
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{gid:?} has no numeric id"))
}

/// The numeric id of a gid of type `kind`.
fn gid_number(gid: &str, kind: &str) -> Result<i64, String> {
    match split_gid(gid)? {
        (k, rest) if k == kind => numeric(rest, gid),
        _ => Err(format!("{gid:?} is not a {kind} gid")),
    }
}

fn parent(parent: Option<&str>, kind: &str) -> Result<i64, String> {
    gid_number(parent.ok_or("child row without __parentId")?, kind)
}

fn timestamp(t: Option<&str>) -> Result<OffsetDateTime, String> {
    let t = t.ok_or("missing updatedAt")?;
    OffsetDateTime::parse(t, &Rfc3339).map_err(|e| format!("updatedAt {t:?}: {e}"))
}

/// A money amount as Shopify sends it: digits, optionally a point and up to 4 decimals.
fn decimal(s: &str) -> Result<&str, String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let int = int.strip_prefix('-').unwrap_or(int);
    if !int.is_empty() && int.len() <= 15 && digits(int) && frac.len() <= 4 && digits(frac) {
        Ok(s)
    } else {
        Err(format!(
            "invalid amount {s:?}, expected a decimal such as \"19.99\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_each_kind_by_its_gid_type() {
        let p = br#"{"id":"gid://shopify/Product/7","title":"A \"B\"","handle":"a","vendor":"V","productType":"T","status":"ACTIVE","tags":["x","y"],"updatedAt":"2026-01-01T00:00:01Z","extra":{"a":[1,2]}}"#;
        let Record::Product(p) = parse(1, p).unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                p.id,
                p.title.as_deref(),
                p.status.as_deref(),
                p.tags.as_deref()
            ),
            (7, Some("A \"B\""), Some("active"), Some("x, y"))
        );
        let v = br#"{"id":"gid://shopify/ProductVariant/40","sku":"S","title":"t","position":1,"price":"123.45","compareAtPrice":null,"barcode":"1","inventoryItem":{"id":"gid://shopify/InventoryItem/45"},"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/Product/7"}"#;
        let Record::Variant(v) = parse(2, v).unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                v.id,
                v.product_id,
                v.price,
                v.compare_at_price,
                v.inventory_item_id
            ),
            (40, 7, Some("123.45"), None, Some(45))
        );
        let l = br#"{"id":"gid://shopify/InventoryLevel/600?inventory_item_id=45","location":{"id":"gid://shopify/Location/600"},"quantities":[{"name":"available","quantity":42}],"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/ProductVariant/40"}"#;
        let Record::InventoryLevel(l) = parse(3, l).unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                l.variant_id,
                l.inventory_item_id,
                l.location_id,
                l.available
            ),
            (40, 45, 600, Some(42))
        );
        let m = br#"{"id":"gid://shopify/Metafield/30","namespace":"wholesail","key":"moq","type":"number_integer","value":"12","__parentId":"gid://shopify/ProductVariant/40"}"#;
        let Record::Metafield(m) = parse(4, m).unwrap() else {
            panic!()
        };
        assert_eq!(
            (m.owner_type, m.owner_id, &*m.key, &*m.value),
            ("ProductVariant", 40, "moq", "12")
        );
    }

    #[test]
    fn bad_lines_name_their_number_and_reason() {
        let e = parse(17, b"{\"id\":\"gid://shopify/Product/\x01\",\"title\":").unwrap_err();
        assert_eq!(e.line, 17);
        assert!(e.reason.starts_with("invalid JSON"), "{e}");
        let e = parse(3, br#"{"id":"gid://shopify/ProductVariant/1","price":"12,50","updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/Product/7"}"#).unwrap_err();
        assert!(e.reason.contains("12,50"), "{e}");
        let e = parse(
            4,
            br#"{"id":"gid://shopify/ProductVariant/1","updatedAt":"2026-01-01T00:00:01Z"}"#,
        )
        .unwrap_err();
        assert!(e.reason.contains("__parentId"), "{e}");
        let e = parse(5, br#"{"id":"gid://shopify/Order/1"}"#).unwrap_err();
        assert!(e.reason.contains("Order"), "{e}");
    }
}
