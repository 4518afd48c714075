//! Generated catalogs: products → variants → inventory levels per location, plus metafields,
//! deterministic from a seed and of any size, written as the JSONL a Shopify bulk query returns.
//!
//! Every value is a pure function of `(seed, product index, variant index, revision)`, so a
//! catalog of a million variants is never held in memory: [`Rows`] generates one product at a
//! time and [`JsonlStream`] writes the lines into a reusable buffer. The same functions give
//! tests their ground truth ([`CatalogSpec::ground_truth`], [`CatalogSpec::rows`],
//! [`CatalogSpec::variant`]).
//!
//! Line shapes follow Shopify's bulk JSONL: one object per line, connection children carry
//! `__parentId` with the gid of the nearest parent node (inventory levels are children of the
//! variant, because `inventoryItem` is an object, not a connection).
//!
//! Revisions model a catalog changing between two exports: in each revision after 0, about 3%
//! of the existing products are deleted, about 2% new products are added, about 10% of variant
//! prices and 20% of stock levels change (with a newer `updatedAt`).
//!
//! [`CatalogDrift`] layers changes made without webhooks over a revision (products deleted,
//! stock levels set), for reconciliation tests to find exactly.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// What a generated catalog contains. Deterministic: the same spec gives the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogSpec {
    /// Seed of every generated value.
    pub seed: u64,
    /// Products in revision 0 (later revisions add and delete some).
    pub products: u64,
    /// Each product has between 1 and this many variants (uniform; at most 64).
    pub max_variants: u32,
    /// Number of locations; each variant is stocked at between 1 and this many of them.
    pub locations: u32,
    /// Metafields per product (`wholesail.case_pack`, then `wholesail.attr_<n>`).
    pub product_metafields: u32,
    /// Metafields per variant (`wholesail.moq`, then `wholesail.attr_<n>`).
    pub variant_metafields: u32,
    /// Catalog revision: 0 is the original, each later one changes it a little (module docs).
    pub revision: u32,
    /// Changes made over the revision without webhooks.
    pub drift: Arc<CatalogDrift>,
}

/// Changes to a catalog that no webhook announced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogDrift {
    /// Product ids deleted.
    pub deleted: BTreeSet<u64>,
    /// Stock set at `(inventory item id, location id)`: `available` and `updatedAt`.
    pub levels: BTreeMap<(u64, u64), (i64, String)>,
    /// About this percent of products (title), variants (price), inventory levels (stock)
    /// and metafields (value) changed, each with a later `updatedAt` where it has one
    /// (`0..=100`; what a partial resync benchmark changes).
    pub changed_percent: u64,
}

impl CatalogSpec {
    /// A catalog of `products` products (about 8 variants each, up to 3 locations, one
    /// metafield per product and per variant), revision 0.
    pub fn new(seed: u64, products: u64) -> Self {
        CatalogSpec {
            seed,
            products,
            max_variants: 15,
            locations: 3,
            product_metafields: 1,
            variant_metafields: 1,
            revision: 0,
            drift: Arc::default(),
        }
    }

    /// The same catalog at another revision.
    pub fn at_revision(&self, revision: u32) -> Self {
        CatalogSpec {
            revision,
            ..self.clone()
        }
    }

    fn max_variants(&self) -> u64 {
        u64::from(self.max_variants.clamp(1, 64))
    }

    /// Product slots in this revision (indices `0..slots`, some deleted).
    fn product_slots(&self) -> u64 {
        self.products + u64::from(self.revision) * self.products.div_ceil(50)
    }

    /// Whether product `i` exists in this revision.
    fn exists(&self, i: u64) -> bool {
        if i >= self.product_slots() || self.drift.deleted.contains(&Self::product_id(i)) {
            return false;
        }
        // A product added in revision `born` can be deleted only by later revisions.
        !(self.born(i) + 1..=u64::from(self.revision))
            .any(|r| h(self.seed, &[i, r, 0xDE1]) % 100 < 3)
    }

    /// Whether the drift's `changed_percent` picks the entity `key`.
    fn drifted(&self, key: &[u64]) -> bool {
        let mut k = key.to_vec();
        k.push(0xD81F7);
        self.drift.changed_percent > 0 && h(self.seed, &k) % 100 < self.drift.changed_percent
    }

    /// The revision that added product `i`.
    fn born(&self, i: u64) -> u64 {
        if i < self.products {
            0
        } else {
            1 + (i - self.products) / self.products.div_ceil(50).max(1)
        }
    }

    /// The rows of this catalog in `order`, restricted to `selection`.
    pub fn rows(&self, selection: Selection, order: ChildOrder) -> Rows {
        Rows::new(self.clone(), selection, order)
    }

    /// The JSONL of this catalog, streamed.
    pub fn jsonl(&self, selection: Selection, order: ChildOrder) -> JsonlStream {
        JsonlStream {
            rows: self.rows(selection, order),
        }
    }

    /// Counts of each kind of row, without generating the text.
    pub fn counts(&self, selection: Selection) -> RowCounts {
        let mut c = RowCounts::default();
        for i in 0..self.product_slots() {
            if !self.exists(i) {
                continue;
            }
            c.products += 1;
            if selection.product_metafields {
                c.metafields += u64::from(self.product_metafields);
            }
            for j in 0..self.variant_count(i) {
                if selection.variants {
                    c.variants += 1;
                    if selection.inventory_levels {
                        c.inventory_levels += self.level_count(i, j);
                    }
                    if selection.variant_metafields {
                        c.metafields += u64::from(self.variant_metafields);
                    }
                }
            }
        }
        c
    }

    /// Streams the whole JSONL once and returns its counts, size and SHA-256: what an import
    /// of this export must have seen.
    pub fn ground_truth(&self, selection: Selection, order: ChildOrder) -> GroundTruth {
        self.render(selection, order, &mut std::io::sink())
            .expect("writing to io::sink cannot fail")
    }

    /// Streams the whole JSONL once into `out` and returns what [`Self::ground_truth`] does.
    pub fn render(
        &self,
        selection: Selection,
        order: ChildOrder,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<GroundTruth> {
        let mut stream = self.jsonl(selection, order);
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        let mut sha = Sha256::new();
        let mut bytes = 0u64;
        let mut more = true;
        while more {
            more = stream.fill(&mut buf, CHUNK);
            sha.update(&buf);
            out.write_all(&buf)?;
            bytes += buf.len() as u64;
            buf.clear();
        }
        let counts = stream.rows.counts;
        Ok(GroundTruth {
            counts,
            lines: counts.total(),
            bytes,
            sha256: hex::encode(sha.finalize()),
        })
    }

    fn variant_count(&self, i: u64) -> u64 {
        1 + h(self.seed, &[i, 1]) % self.max_variants()
    }

    fn level_count(&self, i: u64, j: u64) -> u64 {
        1 + h(self.seed, &[i, j, 3]) % u64::from(self.locations.max(1))
    }

    /// Numeric id of product `i`.
    pub fn product_id(i: u64) -> u64 {
        7_000_000_000_000 + i
    }

    /// Numeric id of variant `j` of product `i`.
    pub fn variant_id(i: u64, j: u64) -> u64 {
        40_000_000_000_000 + i * 64 + j
    }

    /// Numeric id of location `l`.
    pub fn location_id(l: u64) -> u64 {
        60_000_000_000 + l
    }

    /// The variant with numeric id `id`, if it exists in this revision.
    pub fn variant_by_id(&self, id: u64) -> Option<VariantRow> {
        let n = id.checked_sub(40_000_000_000_000)?;
        let (i, j) = (n / 64, n % 64);
        self.variant(i, j)
    }

    /// Variant `j` of product `i`, if it exists in this revision.
    pub fn variant(&self, i: u64, j: u64) -> Option<VariantRow> {
        (self.exists(i) && j < self.variant_count(i)).then(|| self.make_variant(i, j))
    }

    /// The revision (≤ this one) that last changed `salt` for an entity, or 0.
    fn last_change(&self, key: &[u64], salt: u64, pct: u64) -> u64 {
        (1..=u64::from(self.revision))
            .rev()
            .find(|r| {
                let mut k = key.to_vec();
                k.extend_from_slice(&[*r, salt]);
                h(self.seed, &k) % 100 < pct
            })
            .unwrap_or(0)
    }

    fn make_product(&self, i: u64) -> ProductRow {
        let s = self.seed;
        let adj = ADJECTIVES[(h(s, &[i, 10]) % ADJECTIVES.len() as u64) as usize];
        let noun = NOUNS[(h(s, &[i, 11]) % NOUNS.len() as u64) as usize];
        let material = MATERIALS[(h(s, &[i, 12]) % MATERIALS.len() as u64) as usize];
        let title = format!("{adj} {material} {noun}");
        let handle = format!(
            "{}-{}-{}-{i}",
            adj.to_ascii_lowercase(),
            material.to_ascii_lowercase(),
            noun.to_ascii_lowercase()
        );
        let t = h(s, &[i, 13]);
        let tags = vec![
            TAGS[(t % TAGS.len() as u64) as usize],
            TAGS[((t >> 16) % TAGS.len() as u64) as usize],
        ];
        let born = self.born(i);
        let drifted = self.drifted(&[i]);
        ProductRow {
            id: Self::product_id(i),
            title: if drifted {
                format!("{title} (new)")
            } else {
                title
            },
            handle,
            vendor: VENDORS[(h(s, &[i, 14]) % VENDORS.len() as u64) as usize],
            product_type: noun,
            status: if h(s, &[i, 15]).is_multiple_of(20) {
                "DRAFT"
            } else {
                "ACTIVE"
            },
            tags,
            updated_at: timestamp(born + u64::from(drifted), i),
        }
    }

    fn make_variant(&self, i: u64, j: u64) -> VariantRow {
        let s = self.seed;
        let base = 100 + h(s, &[i, j, 2]) % 50_000;
        let changed = self.last_change(&[i, j], 0x9121CE, 10);
        let mut price_cents = if changed == 0 {
            base
        } else {
            base * (90 + h(s, &[i, j, changed, 0x9122]) % 21) / 100
        };
        let drifted = self.drifted(&[i, j]);
        if drifted {
            price_cents += 1;
        }
        let size = SIZES[(j % SIZES.len() as u64) as usize];
        VariantRow {
            id: Self::variant_id(i, j),
            product_id: Self::product_id(i),
            sku: format!("WS-{i:07}-{j:02}"),
            title: format!("{size} / Case of {}", 6 * (1 + h(s, &[i, j, 4]) % 4)),
            position: j as u32 + 1,
            price_cents,
            compare_at_price_cents: h(s, &[i, j, 5])
                .is_multiple_of(4)
                .then_some(price_cents * 5 / 4),
            barcode: format!("{:013}", h(s, &[i, j, 6]) % 10_000_000_000_000),
            inventory_item_id: 45_000_000_000_000 + i * 64 + j,
            updated_at: timestamp(changed + u64::from(drifted), i * 64 + j),
        }
    }

    fn make_levels(&self, i: u64, j: u64, out: &mut impl Extend<Row>) {
        let n = u64::from(self.locations.max(1));
        for k in 0..self.level_count(i, j) {
            let l = (i + j + k) % n;
            let changed = self.last_change(&[i, j, l], 0x57C, 20);
            let mut level = InventoryLevelRow {
                variant_id: Self::variant_id(i, j),
                inventory_item_id: 45_000_000_000_000 + i * 64 + j,
                location_id: Self::location_id(l),
                available: (h(self.seed, &[i, j, l, changed, 7]) % 500) as i64,
                updated_at: timestamp(changed, (i * 64 + j) * 8 + l),
            };
            if self.drifted(&[i, j, l]) {
                level.available += 1;
                level.updated_at = timestamp(changed + 1, (i * 64 + j) * 8 + l);
            }
            let key = (level.inventory_item_id, level.location_id);
            if let Some((available, at)) = self.drift.levels.get(&key) {
                (level.available, level.updated_at) = (*available, at.clone());
            }
            out.extend([Row::InventoryLevel(level)]);
        }
    }

    fn make_metafields(&self, owner: Owner, count: u32, key: &[u64], out: &mut impl Extend<Row>) {
        for k in 0..u64::from(count) {
            let (first_key, id_base) = match owner {
                Owner::Product(_) => ("case_pack", 30_000_000_000_000 + key[0] * 16),
                Owner::Variant(_) => ("moq", 31_000_000_000_000 + (key[0] * 64 + key[1]) * 16),
            };
            let mut hk = key.to_vec();
            hk.extend_from_slice(&[k, 8]);
            let v = h(self.seed, &hk) + u64::from(self.drifted(&hk));
            let (key, kind, value) = if k == 0 {
                (
                    first_key.to_owned(),
                    "number_integer",
                    (6 * (1 + v % 4)).to_string(),
                )
            } else {
                (
                    format!("attr_{k}"),
                    "single_line_text_field",
                    MATERIALS[(v % MATERIALS.len() as u64) as usize].to_owned(),
                )
            };
            out.extend([Row::Metafield(MetafieldRow {
                id: id_base + k,
                owner,
                namespace: "wholesail",
                key,
                kind,
                value,
            })]);
        }
    }

    /// Appends product `i`'s children (grouped: metafields, then each variant followed by its
    /// levels and metafields).
    fn children(&self, i: u64, sel: Selection, out: &mut impl Extend<Row>) {
        let pid = Self::product_id(i);
        if sel.product_metafields {
            self.make_metafields(Owner::Product(pid), self.product_metafields, &[i], out);
        }
        if !sel.variants {
            return;
        }
        for j in 0..self.variant_count(i) {
            out.extend([Row::Variant(self.make_variant(i, j))]);
            if sel.inventory_levels {
                self.make_levels(i, j, out);
            }
            if sel.variant_metafields {
                let vid = Self::variant_id(i, j);
                self.make_metafields(Owner::Variant(vid), self.variant_metafields, &[i, j], out);
            }
        }
    }
}

/// Which parts of the catalog a bulk query selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// `variants` connection.
    pub variants: bool,
    /// `inventoryItem { inventoryLevels }` under each variant.
    pub inventory_levels: bool,
    /// `metafields` on products.
    pub product_metafields: bool,
    /// `metafields` on variants.
    pub variant_metafields: bool,
}

impl Selection {
    /// Everything: products, variants, inventory levels and both kinds of metafields.
    pub const ALL: Selection = Selection {
        variants: true,
        inventory_levels: true,
        product_metafields: true,
        variant_metafields: true,
    };

    /// What a bulk query's text selects, recognised by its connection names (`variants`,
    /// `inventoryLevels`, `metafields` — the latter counts for products and variants alike).
    pub fn from_query(query: &str) -> Self {
        let has = |w: &str| query.contains(w);
        Selection {
            variants: has("variants"),
            inventory_levels: has("variants") && has("inventoryLevels"),
            product_metafields: has("metafields"),
            variant_metafields: has("variants") && has("metafields"),
        }
    }
}

/// Where children appear relative to their parent in the JSONL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildOrder {
    /// Each parent directly followed by its children (`groupObjects: true`).
    Grouped,
    /// Every product first, then all the children (a legal `groupObjects: false` output).
    ParentsFirst,
    /// Children held back and released at random later, among other products and their
    /// children; at most about `window` rows are held (`groupObjects: false`, the default
    /// from API 2026-01).
    Scattered {
        /// How many rows may be held back at once.
        window: usize,
    },
}

/// Counts of each kind of row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Product lines.
    pub products: u64,
    /// Variant lines.
    pub variants: u64,
    /// Inventory level lines.
    pub inventory_levels: u64,
    /// Metafield lines (product and variant owners).
    pub metafields: u64,
}

impl RowCounts {
    /// All lines.
    pub fn total(&self) -> u64 {
        self.products + self.variants + self.inventory_levels + self.metafields
    }

    fn add(&mut self, row: &Row) {
        match row {
            Row::Product(_) => self.products += 1,
            Row::Variant(_) => self.variants += 1,
            Row::InventoryLevel(_) => self.inventory_levels += 1,
            Row::Metafield(_) => self.metafields += 1,
        }
    }
}

/// What an export contains, for tests of an importer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroundTruth {
    /// Rows by kind.
    pub counts: RowCounts,
    /// Lines in the file (every line ends with `\n`).
    pub lines: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// A product line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductRow {
    /// Numeric id (`gid://shopify/Product/<id>`).
    pub id: u64,
    /// Title.
    pub title: String,
    /// URL handle, unique.
    pub handle: String,
    /// Vendor.
    pub vendor: &'static str,
    /// Product type.
    pub product_type: &'static str,
    /// `ACTIVE` or `DRAFT`.
    pub status: &'static str,
    /// Tags.
    pub tags: Vec<&'static str>,
    /// `updatedAt`, RFC 3339.
    pub updated_at: String,
}

/// A variant line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantRow {
    /// Numeric id (`gid://shopify/ProductVariant/<id>`).
    pub id: u64,
    /// The product's numeric id (`__parentId`).
    pub product_id: u64,
    /// SKU, unique.
    pub sku: String,
    /// Variant title.
    pub title: String,
    /// 1-based position in the product.
    pub position: u32,
    /// Price in cents.
    pub price_cents: u64,
    /// Compare-at price in cents.
    pub compare_at_price_cents: Option<u64>,
    /// Barcode.
    pub barcode: String,
    /// Numeric id of the variant's inventory item.
    pub inventory_item_id: u64,
    /// `updatedAt`, RFC 3339.
    pub updated_at: String,
}

/// An inventory level line: stock of one variant at one location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryLevelRow {
    /// The variant's numeric id (`__parentId`).
    pub variant_id: u64,
    /// The inventory item's numeric id.
    pub inventory_item_id: u64,
    /// The location's numeric id.
    pub location_id: u64,
    /// The `available` quantity.
    pub available: i64,
    /// `updatedAt`, RFC 3339.
    pub updated_at: String,
}

/// The owner of a metafield line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A product (numeric id).
    Product(u64),
    /// A variant (numeric id).
    Variant(u64),
}

/// A metafield line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetafieldRow {
    /// Numeric id (`gid://shopify/Metafield/<id>`).
    pub id: u64,
    /// Owner (`__parentId`).
    pub owner: Owner,
    /// Namespace.
    pub namespace: &'static str,
    /// Key.
    pub key: String,
    /// Metafield type, e.g. `number_integer`.
    pub kind: &'static str,
    /// Value as Shopify serialises it (a string).
    pub value: String,
}

/// One line of the export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// A product.
    Product(ProductRow),
    /// A variant.
    Variant(VariantRow),
    /// An inventory level.
    InventoryLevel(InventoryLevelRow),
    /// A metafield.
    Metafield(MetafieldRow),
}

fn money(out: &mut Vec<u8>, cents: u64) {
    let _ = write!(out, "\"{}.{:02}\"", cents / 100, cents % 100);
}

impl Row {
    /// The row's gid.
    pub fn gid(&self) -> String {
        match self {
            Row::Product(p) => format!("gid://shopify/Product/{}", p.id),
            Row::Variant(v) => format!("gid://shopify/ProductVariant/{}", v.id),
            Row::InventoryLevel(l) => format!(
                "gid://shopify/InventoryLevel/{}?inventory_item_id={}",
                l.location_id, l.inventory_item_id
            ),
            Row::Metafield(m) => format!("gid://shopify/Metafield/{}", m.id),
        }
    }

    /// The gid in `__parentId`, for children.
    pub fn parent_gid(&self) -> Option<String> {
        match self {
            Row::Product(_) => None,
            Row::Variant(v) => Some(format!("gid://shopify/Product/{}", v.product_id)),
            Row::InventoryLevel(l) => {
                Some(format!("gid://shopify/ProductVariant/{}", l.variant_id))
            }
            Row::Metafield(m) => Some(match m.owner {
                Owner::Product(p) => format!("gid://shopify/Product/{p}"),
                Owner::Variant(v) => format!("gid://shopify/ProductVariant/{v}"),
            }),
        }
    }

    /// Appends the row as one JSONL line (ending in `\n`). Generated strings contain no
    /// characters that need escaping.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let _ = match self {
            Row::Product(p) => {
                let _ = write!(
                    out,
                    r#"{{"id":"gid://shopify/Product/{}","title":"{}","handle":"{}","vendor":"{}","productType":"{}","status":"{}","tags":["#,
                    p.id, p.title, p.handle, p.vendor, p.product_type, p.status
                );
                for (n, t) in p.tags.iter().enumerate() {
                    let _ = write!(out, "{}\"{t}\"", if n > 0 { "," } else { "" });
                }
                writeln!(out, r#"],"updatedAt":"{}"}}"#, p.updated_at)
            }
            Row::Variant(v) => {
                let _ = write!(
                    out,
                    r#"{{"id":"gid://shopify/ProductVariant/{}","sku":"{}","title":"{}","position":{},"price":"#,
                    v.id, v.sku, v.title, v.position
                );
                money(out, v.price_cents);
                out.extend_from_slice(b",\"compareAtPrice\":");
                match v.compare_at_price_cents {
                    Some(c) => money(out, c),
                    None => out.extend_from_slice(b"null"),
                }
                writeln!(
                    out,
                    r#","barcode":"{}","inventoryItem":{{"id":"gid://shopify/InventoryItem/{}"}},"updatedAt":"{}","__parentId":"gid://shopify/Product/{}"}}"#,
                    v.barcode, v.inventory_item_id, v.updated_at, v.product_id
                )
            }
            Row::InventoryLevel(l) => writeln!(
                out,
                r#"{{"id":"gid://shopify/InventoryLevel/{}?inventory_item_id={}","location":{{"id":"gid://shopify/Location/{}"}},"quantities":[{{"name":"available","quantity":{}}}],"updatedAt":"{}","__parentId":"gid://shopify/ProductVariant/{}"}}"#,
                l.location_id,
                l.inventory_item_id,
                l.location_id,
                l.available,
                l.updated_at,
                l.variant_id
            ),
            Row::Metafield(m) => {
                let (kind, owner) = match m.owner {
                    Owner::Product(p) => ("Product", p),
                    Owner::Variant(v) => ("ProductVariant", v),
                };
                writeln!(
                    out,
                    r#"{{"id":"gid://shopify/Metafield/{}","namespace":"{}","key":"{}","type":"{}","value":"{}","__parentId":"gid://shopify/{kind}/{owner}"}}"#,
                    m.id, m.namespace, m.key, m.kind, m.value
                )
            }
        };
    }
}

/// The rows of a catalog in a chosen order; generates one product at a time.
pub struct Rows {
    spec: CatalogSpec,
    sel: Selection,
    order: ChildOrder,
    next: u64,
    slots: u64,
    /// Grouped / parents-first: children of the current product, in order.
    queue: VecDeque<Row>,
    /// Scattered: children held back, in units that keep their internal order.
    held: Vec<VecDeque<Row>>,
    held_rows: usize,
    /// Parents-first: whether the children pass has started.
    second_pass: bool,
    rng: u64,
    counts: RowCounts,
}

impl Rows {
    fn new(spec: CatalogSpec, sel: Selection, order: ChildOrder) -> Self {
        Rows {
            slots: spec.product_slots(),
            rng: spec.seed ^ 0x5CA7_7E2E,
            spec,
            sel,
            order,
            next: 0,
            queue: VecDeque::new(),
            held: Vec::new(),
            held_rows: 0,
            second_pass: false,
            counts: RowCounts::default(),
        }
    }

    /// Rows produced so far, by kind.
    pub fn counts(&self) -> RowCounts {
        self.counts
    }

    /// The next existing product index, advancing the cursor.
    fn next_product(&mut self) -> Option<u64> {
        while self.next < self.slots {
            let i = self.next;
            self.next += 1;
            if self.spec.exists(i) {
                return Some(i);
            }
        }
        None
    }

    fn produce(&mut self) -> Option<Row> {
        match self.order {
            ChildOrder::Grouped => {
                if let Some(r) = self.queue.pop_front() {
                    return Some(r);
                }
                let i = self.next_product()?;
                self.spec.children(i, self.sel, &mut self.queue);
                Some(Row::Product(self.spec.make_product(i)))
            }
            ChildOrder::ParentsFirst => {
                if !self.second_pass {
                    if let Some(i) = self.next_product() {
                        return Some(Row::Product(self.spec.make_product(i)));
                    }
                    self.second_pass = true;
                    self.next = 0;
                }
                loop {
                    if let Some(r) = self.queue.pop_front() {
                        return Some(r);
                    }
                    let i = self.next_product()?;
                    self.spec.children(i, self.sel, &mut self.queue);
                }
            }
            ChildOrder::Scattered { window } => {
                let exhausted = self.next >= self.slots;
                self.rng = splitmix(self.rng);
                let release = self.held_rows > 0
                    && (exhausted
                        || self.held_rows >= window.max(1)
                        || !self.rng.is_multiple_of(3));
                if release {
                    return self.release();
                }
                match self.next_product() {
                    Some(i) => {
                        self.hold_children(i);
                        Some(Row::Product(self.spec.make_product(i)))
                    }
                    None => self.release(),
                }
            }
        }
    }

    /// Scattered: holds product `i`'s children back as units — each variant with its own
    /// children behind it, each product metafield alone — so grandchildren still follow
    /// their parent.
    fn hold_children(&mut self, i: u64) {
        let mut rows = Vec::new();
        self.spec.children(i, self.sel, &mut rows);
        self.held_rows += rows.len();
        for row in rows {
            match (&row, self.held.last_mut()) {
                (Row::InventoryLevel(_), Some(unit)) => unit.push_back(row),
                (Row::Metafield(m), Some(unit)) if matches!(m.owner, Owner::Variant(_)) => {
                    unit.push_back(row)
                }
                _ => self.held.push(VecDeque::from([row])),
            }
        }
    }

    /// Scattered: the next row of a randomly chosen held unit.
    fn release(&mut self) -> Option<Row> {
        if self.held.is_empty() {
            return None;
        }
        self.rng = splitmix(self.rng);
        let k = (self.rng % self.held.len() as u64) as usize;
        let row = self.held[k].pop_front();
        if self.held[k].is_empty() {
            self.held.swap_remove(k);
        }
        self.held_rows -= 1;
        row
    }
}

impl Iterator for Rows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let row = self.produce()?;
        self.counts.add(&row);
        Some(row)
    }
}

/// Size of the chunks the JSONL is produced in.
pub const CHUNK: usize = 256 * 1024;

/// The JSONL text of a catalog, produced chunk by chunk.
pub struct JsonlStream {
    rows: Rows,
}

impl JsonlStream {
    /// Appends lines to `buf` until it holds at least `target` bytes; returns false once the
    /// catalog is exhausted (`buf` may still hold the last lines).
    pub fn fill(&mut self, buf: &mut Vec<u8>, target: usize) -> bool {
        while buf.len() < target {
            match self.rows.next() {
                Some(row) => row.write_json(buf),
                None => return false,
            }
        }
        true
    }

    /// Rows written so far, by kind.
    pub fn counts(&self) -> RowCounts {
        self.rows.counts
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A well-mixed hash of the seed and a key path.
fn h(seed: u64, key: &[u64]) -> u64 {
    key.iter().fold(splitmix(seed), |acc, k| {
        splitmix(acc ^ k.wrapping_mul(0xA24B_AED4_963E_E407))
    })
}

/// An RFC 3339 time in 2026: the month is `1 + revision`, the rest spread by `n`.
fn timestamp(revision: u64, n: u64) -> String {
    let s = n % (28 * 86_400);
    format!(
        "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        1 + revision.min(11),
        1 + s / 86_400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

const ADJECTIVES: &[&str] = &[
    "Heavy-Duty",
    "Compact",
    "Industrial",
    "Premium",
    "Classic",
    "Ergonomic",
    "Modular",
    "Reinforced",
    "Lightweight",
    "Stackable",
    "Weatherproof",
    "Commercial",
];
const NOUNS: &[&str] = &[
    "Shelf",
    "Crate",
    "Pallet",
    "Bin",
    "Cart",
    "Ladder",
    "Cabinet",
    "Workbench",
    "Tote",
    "Dolly",
    "Rack",
    "Locker",
];
const MATERIALS: &[&str] = &[
    "Steel",
    "Aluminium",
    "Oak",
    "Polymer",
    "Bamboo",
    "Stainless",
    "Birch",
    "Composite",
];
const VENDORS: &[&str] = &[
    "Northwind Supply",
    "Contoso Industrial",
    "Fabrikam Works",
    "Tailspin Tools",
    "Litware",
];
const TAGS: &[&str] = &[
    "wholesale",
    "bulk",
    "clearance",
    "new",
    "b2b-only",
    "seasonal",
    "heavy",
    "fragile",
];
const SIZES: &[&str] = &["S", "M", "L", "XL", "XXL", "Custom"];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Vec<serde_json::Value> {
        buf.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    fn all_bytes(spec: &CatalogSpec, order: ChildOrder) -> Vec<u8> {
        let mut s = spec.jsonl(Selection::ALL, order);
        let mut buf = Vec::new();
        while s.fill(&mut buf, usize::MAX) {}
        buf
    }

    #[test]
    fn same_seed_gives_same_bytes_and_ground_truth_matches() {
        let spec = CatalogSpec::new(7, 200);
        let a = all_bytes(&spec, ChildOrder::Grouped);
        assert_eq!(a, all_bytes(&spec, ChildOrder::Grouped));
        let truth = spec.ground_truth(Selection::ALL, ChildOrder::Grouped);
        assert_eq!(truth.bytes, a.len() as u64);
        assert_eq!(truth.lines, parse(&a).len() as u64);
        assert_eq!(truth.counts, spec.counts(Selection::ALL));
        assert_eq!(truth.sha256, hex::encode(Sha256::digest(&a)));
    }

    #[test]
    fn every_child_comes_after_its_parent_in_every_order() {
        let spec = CatalogSpec::new(3, 300);
        for order in [
            ChildOrder::Grouped,
            ChildOrder::ParentsFirst,
            ChildOrder::Scattered { window: 50 },
        ] {
            let lines = parse(&all_bytes(&spec, order));
            let mut seen = std::collections::HashSet::new();
            for l in &lines {
                if let Some(p) = l.get("__parentId") {
                    assert!(seen.contains(p.as_str().unwrap()), "{order:?}: orphan {l}");
                }
                seen.insert(l["id"].as_str().unwrap().to_owned());
            }
            assert_eq!(lines.len() as u64, spec.counts(Selection::ALL).total());
        }
    }

    #[test]
    fn scattered_order_separates_children_from_their_parents() {
        let spec = CatalogSpec::new(3, 300);
        let lines = parse(&all_bytes(&spec, ChildOrder::Scattered { window: 50 }));
        let mut last_product = String::new();
        let mut far = 0;
        for l in &lines {
            match l.get("__parentId").and_then(|p| p.as_str()) {
                Some(p) if p.contains("/Product/") && p != last_product => far += 1,
                Some(_) => {}
                None => last_product = l["id"].as_str().unwrap().to_owned(),
            }
        }
        assert!(far > 100, "only {far} children away from their parent");
    }

    #[test]
    fn revisions_delete_add_and_change_rows() {
        let r0 = CatalogSpec::new(11, 1000);
        let r1 = r0.at_revision(1);
        let ids = |s: &CatalogSpec| -> std::collections::HashSet<u64> {
            s.rows(Selection::ALL, ChildOrder::Grouped)
                .filter_map(|r| match r {
                    Row::Product(p) => Some(p.id),
                    _ => None,
                })
                .collect()
        };
        let (a, b) = (ids(&r0), ids(&r1));
        let deleted = a.difference(&b).count();
        let added = b.difference(&a).count();
        assert!((10..=60).contains(&deleted), "deleted {deleted}");
        assert_eq!(added, 20);
        let changed = (0..1000)
            .filter_map(|i| Some((r0.variant(i, 0)?, r1.variant(i, 0)?)))
            .filter(|(x, y)| x.price_cents != y.price_cents)
            .count();
        assert!((40..=160).contains(&changed), "changed {changed}");
        assert_eq!(
            r1.variant_by_id(CatalogSpec::variant_id(5, 0)),
            r1.variant(5, 0)
        );
    }

    #[test]
    fn selection_follows_the_query_text() {
        let q = "{ products { edges { node { id variants { edges { node { id } } } } } } }";
        let sel = Selection::from_query(q);
        assert!(sel.variants && !sel.inventory_levels && !sel.product_metafields);
        let spec = CatalogSpec::new(1, 50);
        let c = spec.counts(sel);
        assert_eq!((c.inventory_levels, c.metafields), (0, 0));
        assert!(c.variants >= 50);
    }
}
