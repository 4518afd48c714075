//! One line of a bulk export → one typed [`Record`], routed by the gid type of its `id`.
//!
//! Only the fields the catalog tables hold are deserialised (unknown fields are skipped, never
//! materialised); strings borrow from the line unless they contain escapes. Lines of the usual
//! shape (known keys, strings without escapes) are read by a small scanner ([`scan`]) that
//! allocates nothing; any other line goes through `serde_json`, which accepts every valid line
//! and words the errors. Children carry
//! their parent's numeric id from `__parentId`, so each kind can be staged on its own and
//! joined in the database: no parent map is kept in memory, whatever the order of the lines.

use std::borrow::Cow;

use serde::de::{SeqAccess, Visitor};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};
use wholesail_webhook::gid::{numeric_id, Gid as ShopifyGid};

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
#[cfg_attr(feature = "fuzzing", derive(Debug, PartialEq))]
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

/// The `quantity` of the first `available` entry of `quantities`, read without collecting
/// the list.
#[derive(Default)]
#[cfg_attr(feature = "fuzzing", derive(Debug, PartialEq))]
struct Available(Option<i32>);

impl<'de> Deserialize<'de> for Available {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct First;
        impl<'de> Visitor<'de> for First {
            type Value = Available;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of quantities")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Available, A::Error> {
                let mut found = None;
                while let Some(q) = seq.next_element::<Quantity<'de>>()? {
                    if found.is_none() && q.name == "available" {
                        found = Some(q.quantity);
                    }
                }
                Ok(Available(found.flatten()))
            }
        }
        d.deserialize_seq(First)
    }
}

/// Every field any exported kind has; which ones must be present depends on the kind.
#[derive(Deserialize)]
#[cfg_attr(feature = "fuzzing", derive(Debug, PartialEq))]
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
    quantities: Option<Available>,
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
    // Every text staged is at most as long as the line: a COPY field length (i32) holds it.
    if bytes.len() > i32::MAX as usize {
        return Err(fail(format!("{} bytes long, over 2 GiB", bytes.len())));
    }
    let line = match scan::line(bytes) {
        Some(line) => line,
        None => serde_json::from_slice(bytes).map_err(|e| fail(format!("invalid JSON: {e}")))?,
    };
    route(line).map_err(fail)
}

/// Where the scanner and `serde_json` disagree on `bytes`: the scanner accepts a line serde
/// refuses, or reads it differently (`None` when they agree, or when the scanner defers to serde).
/// The differential check of the `jsonl_scanner` fuzz target.
#[cfg(feature = "fuzzing")]
pub fn scanner_disagreement(bytes: &[u8]) -> Option<String> {
    let scanned = scan::line(bytes)?;
    match serde_json::from_slice::<Line<'_>>(bytes) {
        Err(e) => Some(format!("the scanner accepts a line serde refuses ({e})")),
        Ok(serde) if serde != scanned => {
            Some(format!("the scanner reads {scanned:?}, serde {serde:?}"))
        }
        Ok(_) => None,
    }
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
            // Usually the first `?` starts the parameter (then it is the first match).
            let item = rest
                .split_once('?')
                .and_then(|(_, q)| q.strip_prefix("inventory_item_id="))
                .or_else(|| rest.split_once("?inventory_item_id=").map(|(_, item)| item))
                .ok_or_else(|| format!("inventory level id {:?} names no inventory item", l.id))?;
            let location = l.location.ok_or("inventory level without location")?;
            Ok(Record::InventoryLevel(InventoryLevel {
                variant_id: parent(l.parent_id, "ProductVariant")?,
                inventory_item_id: numeric(item, l.id)?,
                location_id: gid_number(location.id, "Location")?,
                available: l.quantities.unwrap_or_default().0,
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
    ShopifyGid::parse(gid)
        .map(|g| (g.kind(), g.rest()))
        .map_err(|e| e.to_string())
}

fn numeric(digits: &str, gid: &str) -> Result<i64, String> {
    numeric_id(digits).ok_or_else(|| format!("{gid:?} has no numeric id"))
}

/// The numeric id of a gid of type `kind`.
fn gid_number(gid: &str, kind: &str) -> Result<i64, String> {
    ShopifyGid::number_of(gid, kind).map_err(|e| e.to_string())
}

fn parent(parent: Option<&str>, kind: &str) -> Result<i64, String> {
    gid_number(parent.ok_or("child row without __parentId")?, kind)
}

fn timestamp(t: Option<&str>) -> Result<OffsetDateTime, String> {
    let t = t.ok_or("missing updatedAt")?;
    if let Some(utc) = utc_seconds(t) {
        return Ok(utc);
    }
    OffsetDateTime::parse(t, &Rfc3339).map_err(|e| format!("updatedAt {t:?}: {e}"))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form Shopify writes, read without the general RFC 3339
/// parser; `None` for any other form (or an invalid date), which the general parser judges.
fn utc_seconds(t: &str) -> Option<OffsetDateTime> {
    let b = t.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let n = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u16, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
        })
    };
    let month = Month::try_from(n(5, 7)? as u8).ok()?;
    let date = Date::from_calendar_date(i32::from(n(0, 4)?), month, n(8, 10)? as u8).ok()?;
    let time = Time::from_hms(n(11, 13)? as u8, n(14, 16)? as u8, n(17, 19)? as u8).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
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

/// The usual export line read without serde: one object of known keys (each at most once)
/// whose strings hold no escapes, integers, `null`, and the nested `{"id": …}`, tags and
/// quantities shapes. Whatever it does not recognise — an escape, an unknown key, a float where
/// an integer goes, invalid JSON — makes it return `None`, and the line goes through
/// `serde_json`; so it never accepts a line serde would refuse, nor reads one differently.
mod scan {
    use std::borrow::Cow;

    use super::{Available, Gid, Line};

    struct Cursor<'a> {
        s: &'a str,
        i: usize,
    }

    impl<'a> Cursor<'a> {
        /// The next byte after whitespace, consumed.
        fn next(&mut self) -> Option<u8> {
            loop {
                let b = *self.s.as_bytes().get(self.i)?;
                self.i += 1;
                if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                    return Some(b);
                }
            }
        }

        /// The next byte after whitespace, not consumed.
        fn peek(&mut self) -> Option<u8> {
            let b = self.next()?;
            self.i -= 1;
            Some(b)
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.next()? == c).then_some(())
        }

        /// A string without escapes or control characters.
        fn string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let b = self.s.as_bytes();
            let start = self.i;
            let end = start + stop(&b[start..])?;
            if b[end] != b'"' {
                return None;
            }
            self.i = end + 1;
            // Both ends are ASCII quotes: char boundaries of the (valid UTF-8) line.
            Some(&self.s[start..end])
        }

        /// `null` (true), or nothing consumed (false).
        fn null(&mut self) -> bool {
            if self.peek() == Some(b'n') && self.s[self.i..].starts_with("null") {
                self.i += 4;
                true
            } else {
                false
            }
        }

        fn opt_string(&mut self) -> Option<Option<&'a str>> {
            if self.null() {
                return Some(None);
            }
            self.string().map(Some)
        }

        fn opt_cow(&mut self) -> Option<Option<Cow<'a, str>>> {
            Some(self.opt_string()?.map(Cow::Borrowed))
        }

        /// An integer in `i32` range written as JSON writes integers (no fraction, exponent,
        /// leading zero or `-0`).
        fn int(&mut self) -> Option<i32> {
            let b = self.s.as_bytes();
            let negative = self.peek()? == b'-';
            if negative {
                self.i += 1;
            }
            let start = self.i;
            let mut n: i64 = 0;
            while let Some(d) = b.get(self.i).filter(|d| d.is_ascii_digit()) {
                if self.i - start == 10 {
                    return None;
                }
                n = n * 10 + i64::from(d - b'0');
                self.i += 1;
            }
            let len = self.i - start;
            // serde_json reads `-0` as a float.
            if len == 0 || (len > 1 && b[start] == b'0') || (negative && n == 0) {
                return None;
            }
            if matches!(b.get(self.i), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            i32::try_from(if negative { -n } else { n }).ok()
        }

        fn opt_int(&mut self) -> Option<Option<i32>> {
            if self.null() {
                return Some(None);
            }
            self.int().map(Some)
        }

        /// After a member or an element: `,` (true) or the closing `close` (false).
        fn more(&mut self, close: u8) -> Option<bool> {
            match self.next()? {
                b',' => Some(true),
                c if c == close => Some(false),
                _ => None,
            }
        }

        /// `{"id": "…"}` or `null`.
        fn opt_gid(&mut self) -> Option<Option<Gid<'a>>> {
            if self.null() {
                return Some(None);
            }
            self.eat(b'{')?;
            if self.string()? != "id" {
                return None;
            }
            self.eat(b':')?;
            let id = self.string()?;
            self.eat(b'}')?;
            Some(Some(Gid { id }))
        }

        /// An array of strings, or `null`.
        fn opt_tags(&mut self) -> Option<Option<Vec<Cow<'a, str>>>> {
            if self.null() {
                return Some(None);
            }
            self.eat(b'[')?;
            let mut tags = Vec::new();
            if self.peek()? == b']' {
                self.i += 1;
                return Some(Some(tags));
            }
            loop {
                tags.push(Cow::Borrowed(self.string()?));
                if !self.more(b']')? {
                    return Some(Some(tags));
                }
            }
        }

        /// `[{"name": …, "quantity": …}, …]` or `null`.
        fn opt_quantities(&mut self) -> Option<Option<Available>> {
            if self.null() {
                return Some(None);
            }
            self.eat(b'[')?;
            let mut found = None;
            if self.peek()? == b']' {
                self.i += 1;
                return Some(Some(Available(None)));
            }
            loop {
                self.eat(b'{')?;
                let (mut name, mut quantity) = (None, None);
                loop {
                    match self.string()? {
                        "name" if name.is_none() => {
                            self.eat(b':')?;
                            name = Some(self.string()?);
                        }
                        "quantity" if quantity.is_none() => {
                            self.eat(b':')?;
                            quantity = Some(self.opt_int()?);
                        }
                        _ => return None,
                    }
                    if !self.more(b'}')? {
                        break;
                    }
                }
                // serde requires a name in every entry, not only up to the first match.
                if name? == "available" && found.is_none() {
                    found = Some(quantity.flatten());
                }
                if !self.more(b']')? {
                    return Some(Some(Available(found.flatten())));
                }
            }
        }
    }

    /// The offset of the first `"`, `\\` or control character (< 0x20) in `b`, eight bytes at
    /// a time: a byte-wise zero test on the word XORed with the quote or the backslash, and a
    /// less-than-0x20 test; the lowest flagged byte is always a true match (a false flag
    /// needs a borrow from a true one below it).
    pub(super) fn stop(b: &[u8]) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = ONES * 0x80;
        let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
        let mut i = 0;
        while let Some(word) = b.get(i..i + 8) {
            let x = u64::from_le_bytes(word.try_into().ok()?);
            let flags = below(x ^ (ONES * u64::from(b'"')), 1)
                | below(x ^ (ONES * u64::from(b'\\')), 1)
                | below(x, 0x20);
            if flags != 0 {
                return Some(i + (flags.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        b[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|k| i + k)
    }

    /// Reads `bytes` as a [`Line`], or `None` when serde must judge it.
    pub(super) fn line(bytes: &[u8]) -> Option<Line<'_>> {
        let s = std::str::from_utf8(bytes).ok()?;
        let mut c = Cursor { s, i: 0 };
        let mut l = Line {
            id: "",
            parent_id: None,
            updated_at: None,
            title: None,
            handle: None,
            vendor: None,
            product_type: None,
            status: None,
            tags: None,
            sku: None,
            barcode: None,
            price: None,
            compare_at_price: None,
            position: None,
            inventory_item: None,
            location: None,
            quantities: None,
            namespace: None,
            key: None,
            kind: None,
            value: None,
        };
        let mut seen = 0u32;
        c.eat(b'{')?;
        loop {
            let key = c.string()?;
            c.eat(b':')?;
            let bit = match key {
                "id" => {
                    l.id = c.string()?;
                    0
                }
                "__parentId" => {
                    l.parent_id = c.opt_string()?;
                    1
                }
                "updatedAt" => {
                    l.updated_at = c.opt_string()?;
                    2
                }
                "title" => {
                    l.title = c.opt_cow()?;
                    3
                }
                "handle" => {
                    l.handle = c.opt_cow()?;
                    4
                }
                "vendor" => {
                    l.vendor = c.opt_cow()?;
                    5
                }
                "productType" => {
                    l.product_type = c.opt_cow()?;
                    6
                }
                "status" => {
                    l.status = c.opt_string()?;
                    7
                }
                "tags" => {
                    l.tags = c.opt_tags()?;
                    8
                }
                "sku" => {
                    l.sku = c.opt_cow()?;
                    9
                }
                "barcode" => {
                    l.barcode = c.opt_cow()?;
                    10
                }
                "price" => {
                    l.price = c.opt_string()?;
                    11
                }
                "compareAtPrice" => {
                    l.compare_at_price = c.opt_string()?;
                    12
                }
                "position" => {
                    l.position = c.opt_int()?;
                    13
                }
                "inventoryItem" => {
                    l.inventory_item = c.opt_gid()?;
                    14
                }
                "location" => {
                    l.location = c.opt_gid()?;
                    15
                }
                "quantities" => {
                    l.quantities = c.opt_quantities()?;
                    16
                }
                "namespace" => {
                    l.namespace = c.opt_cow()?;
                    17
                }
                "key" => {
                    l.key = c.opt_cow()?;
                    18
                }
                "type" => {
                    l.kind = c.opt_cow()?;
                    19
                }
                "value" => {
                    l.value = c.opt_cow()?;
                    20
                }
                _ => return None,
            };
            if seen & (1 << bit) != 0 {
                return None;
            }
            seen |= 1 << bit;
            if !c.more(b'}')? {
                break;
            }
        }
        // `id` is required; only whitespace may follow the object.
        (seen & 1 == 1 && c.next().is_none()).then_some(l)
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

    /// What `parse` gives with the scanner left out.
    fn via_serde(number: u64, bytes: &[u8]) -> Result<Record<'_>, LineError> {
        let line: Line = serde_json::from_slice(bytes).map_err(|e| LineError {
            line: number,
            reason: format!("invalid JSON: {e}"),
        })?;
        route(line).map_err(|reason| LineError {
            line: number,
            reason,
        })
    }

    const USUAL: [&[u8]; 4] = [
        br#"{"id":"gid://shopify/Product/7","title":"Compact Shelf","handle":"compact-shelf-7","vendor":"Acme","productType":"Shelving","status":"ACTIVE","tags":["b2b","steel"],"updatedAt":"2026-01-03T04:05:06Z"}"#,
        br#"{"id":"gid://shopify/ProductVariant/40","sku":"S-40","title":"Large","position":2,"price":"123.45","compareAtPrice":null,"barcode":"0123","inventoryItem":{"id":"gid://shopify/InventoryItem/45"},"updatedAt":"2026-02-28T23:59:59Z","__parentId":"gid://shopify/Product/7"}"#,
        br#"{"id":"gid://shopify/InventoryLevel/600?inventory_item_id=45","location":{"id":"gid://shopify/Location/600"},"quantities":[{"name":"available","quantity":-3}],"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
        br#"{"id":"gid://shopify/Metafield/30","namespace":"wholesail","key":"moq","type":"number_integer","value":"12","__parentId":"gid://shopify/ProductVariant/40"}"#,
    ];

    #[test]
    fn usual_lines_are_read_by_the_scanner_exactly_as_serde_reads_them() {
        for (n, line) in USUAL.iter().enumerate() {
            assert!(scan::line(line).is_some(), "scanner skipped line {n}");
            assert_eq!(parse(1, line), via_serde(1, line), "line {n}");
            assert!(parse(1, line).is_ok());
        }
    }

    #[test]
    fn unusual_and_invalid_lines_read_or_fail_the_same_as_through_serde() {
        let lines: &[&[u8]] = &[
            // Valid, but not for the scanner: escapes, unknown keys, whitespace, nulls.
            br#"{"id":"gid://shopify/Product/7","title":"12\" \u00e9tag\u00e8re","updatedAt":"2026-01-01T00:00:01Z"}"#,
            br#"{"id":"gid://shopify/Product/7","legacyResourceId":"7","extra":{"a":[1,2.5,true]},"updatedAt":"2026-01-01T00:00:01Z"}"#,
            b" { \"id\" : \"gid://shopify/Product/7\" , \"tags\" : [ \"a\" , \"b\" ] , \"updatedAt\" : \"2026-01-01T00:00:01Z\" } \r",
            br#"{"id":"gid://shopify/Product/7","title":null,"tags":[],"status":null,"updatedAt":"2026-01-01T00:00:01Z"}"#,
            br#"{"id":"gid://shopify/InventoryLevel/6?inventory_item_id=45","location":{"id":"gid://shopify/Location/6"},"quantities":[{"quantity":1,"name":"on_hand"},{"name":"available","quantity":null},{"name":"available","quantity":9}],"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
            br#"{"id":"gid://shopify/InventoryLevel/6?inventory_item_id=45","location":{"id":"gid://shopify/Location/6"},"quantities":[],"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
            br#"{"id":"gid://shopify/InventoryLevel/6?x=1?inventory_item_id=45","location":{"id":"gid://shopify/Location/6"},"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
            br#"{"id":"gid://shopify/ProductVariant/40","position":-0,"updatedAt":"2026-01-01T00:00:01+02:00","__parentId":"gid://shopify/Product/7"}"#,
            br#"{"id":"gid://shopify/ProductVariant/40","position":2147483647,"updatedAt":"2026-01-01T00:00:01.123456Z","__parentId":"gid://shopify/Product/7"}"#,
            // Invalid.
            br#"{"id":"gid://shopify/Product/7","id":"gid://shopify/Product/8","updatedAt":"2026-01-01T00:00:01Z"}"#,
            br#"{"id":"gid://shopify/ProductVariant/40","position":1.0,"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/Product/7"}"#,
            br#"{"id":"gid://shopify/ProductVariant/40","position":01,"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/Product/7"}"#,
            br#"{"id":"gid://shopify/ProductVariant/40","position":2147483648,"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/Product/7"}"#,
            br#"{"id":"gid://shopify/ProductVariant/40","position":-,"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/Product/7"}"#,
            br#"{"id":"gid://shopify/Product/7","updatedAt":"2026-02-30T00:00:01Z"}"#,
            br#"{"id":"gid://shopify/Product/7","updatedAt":"2026-01-01T24:00:00Z"}"#,
            br#"{"id":"gid://shopify/Product/7","updatedAt":"2026-01-01 00:00:01Z"}"#,
            br#"{"id":"gid://shopify/Product/7","title":"tab	inside","updatedAt":"2026-01-01T00:00:01Z"}"#,
            br#"{"id":"gid://shopify/Product/7","updatedAt":"2026-01-01T00:00:01Z",}"#,
            br#"{"id":"gid://shopify/Product/7","updatedAt":"2026-01-01T00:00:01Z"} x"#,
            br#"{"id":"gid://shopify/Product/7","updatedAt":"2026-01-01T00:00:01Z"}{}"#,
            br#"{"id":"gid://shopify/Product/7","updatedAt":nul}"#,
            br#"{"id":"gid://shopify/Product/7","tags":["a",null],"updatedAt":"2026-01-01T00:00:01Z"}"#,
            br#"{"id":"gid://shopify/InventoryLevel/6?inventory_item_id=45","location":{"id":"gid://shopify/Location/6"},"quantities":[{"quantity":1}],"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
            br#"{"id":"gid://shopify/InventoryLevel/6?inventory_item_id=45","location":{"id":"gid://shopify/Location/6"},"quantities":[{"name":"available","quantity":1},{"quantity":2}],"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
            br#"{"id":"gid://shopify/ProductVariant/40","inventoryItem":{"id":"gid://shopify/InventoryItem/45","id":"x"},"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/Product/7"}"#,
            br#"{"id":null}"#,
            b"{}",
            b"",
            b"{\"id\":\"gid://shopify/Product/7\xff\"}",
        ];
        for (n, line) in lines.iter().enumerate() {
            assert_eq!(
                parse(n as u64, line),
                via_serde(n as u64, line),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // Every prefix of a usual line (a cut download) fails as through serde.
        for line in USUAL {
            for cut in 0..line.len() {
                assert_eq!(parse(9, &line[..cut]), via_serde(9, &line[..cut]));
                assert!(parse(9, &line[..cut]).is_err());
            }
        }
    }

    #[test]
    fn the_usual_timestamp_form_reads_as_rfc_3339_does() {
        for t in [
            "2026-01-01T00:00:00Z",
            "2026-12-31T23:59:59Z",
            "2024-02-29T12:34:56Z",
            "1999-07-15T08:09:10Z",
        ] {
            assert_eq!(
                utc_seconds(t),
                Some(OffsetDateTime::parse(t, &Rfc3339).unwrap())
            );
        }
        for t in [
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T00:00:00z",
            "2026-01-01T00:00:00+00:00",
            "+026-01-01T00:00:00Z",
        ] {
            assert_eq!(utc_seconds(t), None, "{t}");
        }
    }

    #[test]
    fn numeric_ids_read_as_the_integer_parser_reads_them() {
        for digits in [
            "7",
            "007",
            "+7",
            "0",
            "-5",
            "",
            "1a",
            "999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "123456789012345678901",
        ] {
            let reference = digits.parse::<i64>().ok().filter(|n| *n > 0);
            assert_eq!(numeric(digits, "g").ok(), reference, "{digits:?}");
        }
    }

    #[test]
    fn string_stops_are_found_at_the_first_quote_backslash_or_control_byte() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let fillers = [b'a', b' ', 0x7f, 0x80, 0xc3, 0xff, b'!', b'#', b'[', b']'];
        let stops = [b'"', b'\\', 0x00, 0x1f, b'\n', b'\t'];
        for len in 0..40 {
            for f in fillers {
                let plain = vec![f; len];
                assert_eq!(scan::stop(&plain), naive(&plain));
                for at in 0..len {
                    for s in stops {
                        let mut b = plain.clone();
                        b[at] = s;
                        // A second stop later must not hide the first.
                        if at + 3 < len {
                            b[at + 3] = b'"';
                        }
                        assert_eq!(scan::stop(&b), Some(at), "{b:?}");
                        assert_eq!(scan::stop(&b), naive(&b));
                    }
                }
            }
        }
    }

    #[test]
    fn every_line_the_simulator_exports_takes_the_scanner_and_reads_as_through_serde() {
        use shopify_simulator::{CatalogSpec, ChildOrder, Selection};
        let mut stream = CatalogSpec::new(7, 300).jsonl(Selection::ALL, ChildOrder::Grouped);
        let mut text = Vec::new();
        // `fill` stops at a size, not an amount: ask for 1 MiB more each time.
        loop {
            let target = text.len() + (1 << 20);
            if !stream.fill(&mut text, target) {
                break;
            }
        }
        let mut lines = 0;
        for (n, line) in text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            assert!(
                scan::line(line).is_some(),
                "scanner skipped {}",
                String::from_utf8_lossy(line)
            );
            let n = n as u64 + 1;
            assert_eq!(parse(n, line), via_serde(n, line));
            assert!(parse(n, line).is_ok());
            lines += 1;
        }
        assert!(lines > 1000, "{lines} lines");
    }
}
