//! Per-product digests of an export, computed while it is read.
//!
//! A product's digest is the wrapping sum of the XXH3-64 hashes of its subtree's lines, as
//! Shopify wrote them: the product, its variants, their inventory levels, and the metafields
//! of the product and of its variants. A sum does not depend on where the lines sit in an
//! ungrouped export (children anywhere after their parent), and any change to any field of any
//! line changes it. Levels and variant metafields name their variant, not the product, so the
//! variants' products are kept in a map while the export is read (~35 MB at a million
//! variants). XXH3's output is fixed by its specification: digests stored by one version
//! compare with those of the next.

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_64;

use super::jsonl::Record;

/// The digests being summed.
#[derive(Default)]
pub struct Digests {
    /// Each variant's product.
    variant_products: FxHashMap<i64, i64>,
    /// Each product's sum so far.
    sums: FxHashMap<i64, u64>,
    /// Lines whose product is unknown: a child read before its variant.
    unattributed: u64,
}

/// The export's digests, by product id (two arrays, as the merge binds them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProductDigests {
    /// Product ids.
    pub products: Vec<i64>,
    /// Their digests, as PostgreSQL `bigint`s.
    pub digests: Vec<i64>,
}

impl Digests {
    /// Adds `line`, read as `record`, to its product's digest.
    pub fn add(&mut self, record: &Record<'_>, line: &[u8]) {
        let product = match record {
            Record::Product(p) => Some(p.id),
            Record::Variant(v) => {
                self.variant_products.insert(v.id, v.product_id);
                Some(v.product_id)
            }
            Record::InventoryLevel(l) => self.variant_products.get(&l.variant_id).copied(),
            Record::Metafield(m) if m.owner_type == "Product" => Some(m.owner_id),
            Record::Metafield(m) => self.variant_products.get(&m.owner_id).copied(),
        };
        match product {
            Some(p) => {
                let sum = self.sums.entry(p).or_default();
                *sum = sum.wrapping_add(xxh3_64(line));
            }
            None => self.unattributed += 1,
        }
    }

    /// The digests, or `None` when some line could not be given to a product (the merge then
    /// compares everything).
    pub fn finish(self) -> Option<ProductDigests> {
        if self.unattributed > 0 {
            tracing::warn!(
                lines = self.unattributed,
                "catalog export: children before their variant; every product is compared"
            );
            return None;
        }
        let mut d = ProductDigests {
            products: Vec::with_capacity(self.sums.len()),
            digests: Vec::with_capacity(self.sums.len()),
        };
        for (product, sum) in self.sums {
            d.products.push(product);
            d.digests.push(sum as i64);
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::super::jsonl;
    use super::*;

    const LINES: [&[u8]; 5] = [
        br#"{"id":"gid://shopify/Product/7","title":"T","updatedAt":"2026-01-01T00:00:00Z"}"#,
        br#"{"id":"gid://shopify/ProductVariant/40","price":"1.50","inventoryItem":{"id":"gid://shopify/InventoryItem/45"},"updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/Product/7"}"#,
        br#"{"id":"gid://shopify/InventoryLevel/600?inventory_item_id=45","location":{"id":"gid://shopify/Location/600"},"quantities":[{"name":"available","quantity":4}],"updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
        br#"{"id":"gid://shopify/Metafield/30","namespace":"wholesail","key":"moq","type":"number_integer","value":"12","__parentId":"gid://shopify/ProductVariant/40"}"#,
        br#"{"id":"gid://shopify/Product/8","title":"U","updatedAt":"2026-01-01T00:00:00Z"}"#,
    ];

    fn digests(lines: &[&[u8]]) -> Option<ProductDigests> {
        let mut d = Digests::default();
        for (n, line) in lines.iter().enumerate() {
            d.add(&jsonl::parse(n as u64 + 1, line).unwrap(), line);
        }
        d.finish().map(|mut d| {
            let mut pairs: Vec<_> = d.products.drain(..).zip(d.digests.drain(..)).collect();
            pairs.sort();
            (d.products, d.digests) = pairs.into_iter().unzip();
            d
        })
    }

    #[test]
    fn a_products_digest_covers_its_subtree_in_any_order_and_nothing_else() {
        let all = digests(&LINES).unwrap();
        assert_eq!(all.products, [7, 8]);
        let sum = LINES[..4]
            .iter()
            .fold(0u64, |s, l| s.wrapping_add(xxh3_64(l)));
        assert_eq!(all.digests[0], sum as i64);
        assert_eq!(all.digests[1], xxh3_64(LINES[4]) as i64);
        // Children anywhere after their variant: the same digests.
        let reordered = digests(&[LINES[0], LINES[4], LINES[1], LINES[3], LINES[2]]).unwrap();
        assert_eq!(reordered, all);
        // One changed quantity changes its product's digest only.
        let changed = String::from_utf8_lossy(LINES[2]).replace(r#"quantity":4"#, r#"quantity":5"#);
        let after = digests(&[LINES[0], LINES[1], changed.as_bytes(), LINES[3], LINES[4]]).unwrap();
        assert_ne!(after.digests[0], all.digests[0]);
        assert_eq!(after.digests[1], all.digests[1]);
    }

    #[test]
    fn a_child_before_its_variant_gives_no_digests() {
        assert_eq!(digests(&[LINES[0], LINES[2], LINES[1]]), None);
    }
}
