//! Per-product and per-variant digests of an export, computed while it is read.
//!
//! A variant's digest is the wrapping sum of the XXH3-64 hashes of its lines as Shopify wrote
//! them: the variant, its inventory levels and its metafields. A product's *own* digest sums
//! its line and its metafields'; its digest sums its own and its variants' (the whole
//! subtree). A sum does not depend on where the lines sit in an ungrouped export (children
//! anywhere after their parent), and any change to any field of any line changes it. Levels
//! and variant metafields name their variant, not the product, so the variants are kept while
//! the export is read (24 bytes each, plus a 5-byte slot of the index finding them by id: ~41
//! MB at a million variants, less than a `HashMap` holding the same while it grows). XXH3's
//! output is fixed by its specification: digests stored by one version compare with those of
//! the next.

use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_64;

use super::jsonl::Record;

/// A variant as its lines are summed.
struct Variant {
    id: i64,
    /// Its product's place in `Digests::sums`.
    product: u32,
    /// A 32-bit hash of its inventory item.
    item: u32,
    /// Its lines' digest so far.
    sum: u64,
}

/// The digests being summed.
#[derive(Default)]
pub struct Digests {
    /// Each product's place in `sums`.
    products: FxHashMap<i64, u32>,
    /// Each product's id and own sum so far.
    sums: Vec<(i64, u64)>,
    /// The variants, in the order first read.
    variants: Vec<Variant>,
    /// Each variant's place in `variants`, found by the hash of its id.
    index: HashTable<u32>,
    /// Lines whose product is unknown (a child read before its variant), or levels whose
    /// inventory item is not their variant's.
    unattributed: u64,
}

/// The export's digests, by product (arrays, as the merge binds them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProductDigests {
    /// Product ids.
    pub products: Vec<i64>,
    /// Their subtrees' digests, as PostgreSQL `bigint`s.
    pub digests: Vec<i64>,
    /// Their own digests (the product's line and its metafields).
    pub owns: Vec<i64>,
    /// Each product's variants are `variants[firsts[i] - 1 ..= lasts[i] - 1]` (PostgreSQL's
    /// 1-based, inclusive array slice bounds; `lasts[i] < firsts[i]`: none).
    pub firsts: Vec<i32>,
    /// See `firsts`.
    pub lasts: Vec<i32>,
    /// The variants' ids, by product then id.
    pub variants: Vec<i64>,
    /// Their digests.
    pub variant_digests: Vec<i64>,
}

impl ProductDigests {
    /// The variants of the product at `place` in `products`: (ids, digests).
    pub fn variants_of(&self, place: usize) -> (&[i64], &[i64]) {
        let range = self.firsts[place] as usize - 1..self.lasts[place] as usize;
        (&self.variants[range.clone()], &self.variant_digests[range])
    }

    /// The places of the products in consecutive batches of at most `variants` variants each
    /// (a product with more is a batch of its own).
    pub fn batches(&self, variants: usize) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut first = 0;
        while first < self.products.len() {
            let start = self.firsts[first] as usize;
            let mut last = first + 1;
            while last < self.products.len() && self.lasts[last] as usize + 1 - start <= variants {
                last += 1;
            }
            out.push(first..last);
            first = last;
        }
        out
    }

    /// The digests of the products at `places` only.
    pub fn only(&self, places: impl IntoIterator<Item = usize>) -> ProductDigests {
        let mut out = ProductDigests::default();
        for place in places {
            let (ids, sums) = self.variants_of(place);
            out.products.push(self.products[place]);
            out.digests.push(self.digests[place]);
            out.owns.push(self.owns[place]);
            out.firsts.push(out.variants.len() as i32 + 1);
            out.variants.extend_from_slice(ids);
            out.variant_digests.extend_from_slice(sums);
            out.lasts.push(out.variants.len() as i32);
        }
        out
    }
}

/// A 32-bit hash of an inventory item id (`None`: no item).
fn item_hash(item: Option<i64>) -> u32 {
    item.map_or(0, |i| {
        ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
    })
}

/// The index's hash of a variant id.
fn id_hash(id: i64) -> u64 {
    (id as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(26)
}

impl Digests {
    /// Adds `line`, read as `record`, to its variant's or product's digest.
    pub fn add(&mut self, record: &Record<'_>, line: &[u8]) {
        let hash = xxh3_64(line);
        let sum = match record {
            Record::Product(p) => {
                let at = self.place(p.id) as usize;
                Some(&mut self.sums[at].1)
            }
            Record::Variant(v) => {
                let product = self.place(v.product_id);
                let item = item_hash(v.inventory_item_id);
                let variant = match self.variant(v.id) {
                    Some(at) => at,
                    None => self.push_variant(v.id),
                };
                let variant = &mut self.variants[variant];
                (variant.product, variant.item) = (product, item);
                Some(&mut variant.sum)
            }
            // The merge finds a variant's levels through its inventory item, so a level of
            // another item than its variant's leaves the digests unusable.
            Record::InventoryLevel(l) => {
                let item = item_hash(Some(l.inventory_item_id));
                self.variant(l.variant_id)
                    .map(|at| &mut self.variants[at])
                    .filter(|v| v.item == item)
                    .map(|v| &mut v.sum)
            }
            Record::Metafield(m) if m.owner_type == "Product" => {
                let at = self.place(m.owner_id) as usize;
                Some(&mut self.sums[at].1)
            }
            Record::Metafield(m) => self
                .variant(m.owner_id)
                .map(|at| &mut self.variants[at].sum),
        };
        match sum {
            Some(sum) => *sum = sum.wrapping_add(hash),
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

    /// Variant `id`'s place in `variants`, if read.
    fn variant(&self, id: i64) -> Option<usize> {
        self.index
            .find(id_hash(id), |&at| self.variants[at as usize].id == id)
            .map(|&at| at as usize)
    }

    /// Appends variant `id` (not read before); returns its place.
    fn push_variant(&mut self, id: i64) -> usize {
        let at = self.variants.len();
        let variants = &self.variants;
        self.index.insert_unique(id_hash(id), at as u32, |&v| {
            id_hash(variants[v as usize].id)
        });
        self.variants.push(Variant {
            id,
            product: 0,
            item: 0,
            sum: 0,
        });
        at
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
        let Digests {
            sums,
            mut variants,
            index,
            products,
            ..
        } = self;
        drop((index, products));
        variants.sort_unstable_by_key(|v| (v.product, v.id));
        let mut out = ProductDigests {
            products: Vec::with_capacity(sums.len()),
            digests: Vec::with_capacity(sums.len()),
            owns: Vec::with_capacity(sums.len()),
            firsts: Vec::with_capacity(sums.len()),
            lasts: Vec::with_capacity(sums.len()),
            variants: variants.iter().map(|v| v.id).collect(),
            variant_digests: variants.iter().map(|v| v.sum as i64).collect(),
        };
        let mut at = 0;
        for (place, (id, own)) in sums.into_iter().enumerate() {
            let mut sum = own;
            out.firsts.push(at as i32 + 1);
            while let Some(v) = variants.get(at).filter(|v| v.product as usize == place) {
                sum = sum.wrapping_add(v.sum);
                at += 1;
            }
            out.lasts.push(at as i32);
            out.products.push(id);
            out.digests.push(sum as i64);
            out.owns.push(own as i64);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::jsonl;
    use super::*;

    const LINES: [&[u8]; 6] = [
        br#"{"id":"gid://shopify/Product/7","title":"T","updatedAt":"2026-01-01T00:00:00Z"}"#,
        br#"{"id":"gid://shopify/ProductVariant/40","price":"1.50","inventoryItem":{"id":"gid://shopify/InventoryItem/45"},"updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/Product/7"}"#,
        br#"{"id":"gid://shopify/InventoryLevel/600?inventory_item_id=45","location":{"id":"gid://shopify/Location/600"},"quantities":[{"name":"available","quantity":4}],"updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
        br#"{"id":"gid://shopify/Metafield/30","namespace":"wholesail","key":"moq","type":"number_integer","value":"12","__parentId":"gid://shopify/ProductVariant/40"}"#,
        br#"{"id":"gid://shopify/Product/8","title":"U","updatedAt":"2026-01-01T00:00:00Z"}"#,
        br#"{"id":"gid://shopify/ProductVariant/39","price":"2.00","updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/Product/7"}"#,
    ];

    /// Each product's (digest, own digest, [(variant, digest)]).
    type ByProduct = BTreeMap<i64, (i64, i64, Vec<(i64, i64)>)>;

    fn digests(lines: &[&[u8]]) -> Option<ByProduct> {
        let mut d = Digests::default();
        for (n, line) in lines.iter().enumerate() {
            d.add(&jsonl::parse(n as u64 + 1, line).unwrap(), line);
        }
        let d = d.finish()?;
        Some(
            (0..d.products.len())
                .map(|i| {
                    let (ids, sums) = d.variants_of(i);
                    let variants = ids.iter().copied().zip(sums.iter().copied()).collect();
                    (d.products[i], (d.digests[i], d.owns[i], variants))
                })
                .collect(),
        )
    }

    fn sum(lines: &[&[u8]]) -> i64 {
        lines.iter().fold(0u64, |s, l| s.wrapping_add(xxh3_64(l))) as i64
    }

    #[test]
    fn digests_cover_each_subtree_in_any_order_and_nothing_else() {
        let all = digests(&LINES).unwrap();
        let variant_40 = sum(&LINES[1..4]);
        let variant_39 = sum(&[LINES[5]]);
        assert_eq!(
            all[&7],
            (
                sum(&[LINES[0], LINES[1], LINES[2], LINES[3], LINES[5]]),
                sum(&[LINES[0]]),
                vec![(39, variant_39), (40, variant_40)]
            )
        );
        assert_eq!(all[&8], (sum(&[LINES[4]]), sum(&[LINES[4]]), vec![]));
        // Children anywhere after their variant: the same digests.
        let reordered =
            digests(&[LINES[5], LINES[0], LINES[4], LINES[1], LINES[3], LINES[2]]).unwrap();
        assert_eq!(reordered, all);
        // One changed quantity changes its variant's digest and its product's, nothing else.
        let changed = String::from_utf8_lossy(LINES[2]).replace(r#"quantity":4"#, r#"quantity":5"#);
        let lines = [
            LINES[0],
            LINES[1],
            changed.as_bytes(),
            LINES[3],
            LINES[4],
            LINES[5],
        ];
        let after = digests(&lines).unwrap();
        assert_ne!(after[&7].0, all[&7].0);
        assert_eq!(after[&7].1, all[&7].1, "the product's own digest");
        assert_ne!(after[&7].2[1], all[&7].2[1]);
        assert_eq!(after[&7].2[0], all[&7].2[0], "the other variant");
        assert_eq!(after[&8], all[&8]);
    }

    #[test]
    fn batches_hold_at_most_so_many_variants_and_every_product_once() {
        // Products with 3, 0, 2, 5 and 1 variants.
        let d = ProductDigests {
            products: vec![1, 2, 3, 4, 5],
            firsts: vec![1, 4, 4, 6, 11],
            lasts: vec![3, 3, 5, 10, 11],
            ..Default::default()
        };
        assert_eq!(d.batches(5), [0..3, 3..4, 4..5]);
        assert_eq!(d.batches(4), [0..2, 2..3, 3..4, 4..5]);
        assert_eq!(d.batches(100), vec![0..d.products.len()]);
        assert_eq!(ProductDigests::default().batches(5), []);
    }

    #[test]
    fn a_child_before_its_variant_or_a_level_of_another_item_gives_no_digests() {
        assert_eq!(digests(&[LINES[0], LINES[2], LINES[1]]), None);
        let other = String::from_utf8_lossy(LINES[2]).replace("=45", "=46");
        assert_eq!(digests(&[LINES[0], LINES[1], other.as_bytes()]), None);
        assert!(digests(&[LINES[0], LINES[1], LINES[2]]).is_some());
    }
}
