//! Per-product digests of an export, computed while it is read.
//!
//! A product's digest is the wrapping sum of the XXH3-64 hashes of its subtree's lines, as
//! Shopify wrote them: the product, its variants, their inventory levels, and the metafields
//! of the product and of its variants. A sum does not depend on where the lines sit in an
//! ungrouped export (children anywhere after their parent), and any change to any field of any
//! line changes it. Levels and variant metafields name their variant, not the product, so the
//! variants' products are kept in a map while the export is read (16 bytes a variant, ~34 MB
//! at a million once grown). XXH3's output is fixed by its specification: digests stored by
//! one version compare with those of the next.

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_64;

use super::jsonl::Record;

/// The digests being summed.
#[derive(Default)]
pub struct Digests {
    /// Each product's place in `sums`.
    products: FxHashMap<i64, u32>,
    /// Each product's id and sum so far.
    sums: Vec<(i64, u64)>,
    /// Each variant's product (its place in `sums`) and a 32-bit hash of its inventory item.
    variants: FxHashMap<i64, (u32, u32)>,
    /// Lines whose product is unknown (a child read before its variant), or levels whose
    /// inventory item is not their variant's.
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

/// A 32-bit hash of an inventory item id (`None`: no item).
fn item_hash(item: Option<i64>) -> u32 {
    item.map_or(0, |i| {
        ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
    })
}

impl Digests {
    /// Adds `line`, read as `record`, to its product's digest.
    pub fn add(&mut self, record: &Record<'_>, line: &[u8]) {
        let place = match record {
            Record::Product(p) => Some(self.place(p.id)),
            Record::Variant(v) => {
                let place = self.place(v.product_id);
                self.variants
                    .insert(v.id, (place, item_hash(v.inventory_item_id)));
                Some(place)
            }
            // The merge finds a product's levels through its variants' items, so a level of
            // another item than its variant's leaves the digests unusable.
            Record::InventoryLevel(l) => match self.variants.get(&l.variant_id) {
                Some(&(place, item)) if item == item_hash(Some(l.inventory_item_id)) => Some(place),
                _ => None,
            },
            Record::Metafield(m) if m.owner_type == "Product" => Some(self.place(m.owner_id)),
            Record::Metafield(m) => self.variants.get(&m.owner_id).map(|&(place, _)| place),
        };
        match place {
            Some(p) => {
                let sum = &mut self.sums[p as usize].1;
                *sum = sum.wrapping_add(xxh3_64(line));
            }
            None => self.unattributed += 1,
        }
    }

    /// Product `id`'s place in `sums`, given one when first seen.
    fn place(&mut self, id: i64) -> u32 {
        let next = self.sums.len() as u32;
        let place = *self.products.entry(id).or_insert(next);
        if place == next {
            self.sums.push((id, 0));
        }
        place
    }

    /// The digests, or `None` when some line could not be given to a product (the merge then
    /// compares everything).
    pub fn finish(self) -> Option<ProductDigests> {
        if self.unattributed > 0 {
            tracing::warn!(
                lines = self.unattributed,
                "catalog export: children before their variant, or levels of another item than \
                 their variant's; every product is compared"
            );
            return None;
        }
        let (products, digests) = self.sums.into_iter().map(|(p, s)| (p, s as i64)).unzip();
        Some(ProductDigests { products, digests })
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
    fn a_child_before_its_variant_or_a_level_of_another_item_gives_no_digests() {
        assert_eq!(digests(&[LINES[0], LINES[2], LINES[1]]), None);
        let other = String::from_utf8_lossy(LINES[2]).replace("=45", "=46");
        assert_eq!(digests(&[LINES[0], LINES[1], other.as_bytes()]), None);
        assert!(digests(&[LINES[0], LINES[1], LINES[2]]).is_some());
    }
}
