//! Which rows a resync's merge compares with the export, from the export's digests
//! ([`super::digest`]) and the marks of what was written since the last resync
//! (`catalog_dirty`, `migrations/0074_catalog_digests.sql`).
//!
//! Two levels. A product whose digest (its whole subtree) equals the one stored at the last
//! merge is left out whole. For a product whose digest differs (or either side is missing:
//! new, gone, never merged), its own row and metafields are compared when its own digest
//! differs, and each of its variants (with its inventory item's levels and its metafields)
//! when the variant's digest differs or only one side has it; a product stored without
//! variant digests has all its live variants compared. Marked products (their row and
//! metafields), marked variants and marked items (a variant a webhook deleted leaves its
//! levels behind) are compared whatever the digests say. Everything else is known equal: its
//! lines are the ones the last merge made live, and nothing has written its rows since. So a
//! resync of an unchanged catalog compares 125,000 digests instead of 4 million rows, and one
//! with 1% of its rows changed compares ~4% of the variants instead of the ~28% of products
//! those rows touch.
//!
//! After the writes ([`settle`]) the digests of the products whose digest differed are
//! replaced with this export's, the marks the merge saw are deleted, and the rows of a table
//! whose differences were not all written (a newer webhook kept, a tombstone, a delete past the
//! snapshot) are marked again, so the next merge compares them whatever the digests say.
//! Marks written by webhooks while the merge ran were not seen and stay. A linked
//! reconciliation, or an export whose lines could not all be given a product, compares
//! everything (and stores what it can).

use rustc_hash::FxHashMap;
use sqlx::PgConnection;
use wholesail_webhook::ShopDomain;

use super::digest::ProductDigests;

/// The widest scope, as a share of the export's products or variants, still compared
/// narrowed: a narrowed comparison still reads each staging table whole, so a scope of 28% of
/// the products (session 15) cost more than comparing everything (merge 16.2 s against
/// 9–11 s, `BENCHMARKS.md`).
const WIDEST: f64 = 0.2;

/// The temp table of the staged variants a narrowed merge compares.
const SCOPED_VARIANTS: &str = "catalog_scope_variants";

/// What the merge compares.
pub(super) struct Scope {
    /// False: every row.
    narrowed: bool,
    /// Exported products whose whole subtree is known equal and left out (0 when not
    /// narrowed).
    pub unchanged: u64,
    /// Exported variants known equal and left out (0 when not narrowed).
    pub unchanged_variants: u64,
    /// The ids of the products, variants and inventory items compared (when narrowed).
    keys: [Vec<i64>; 3],
    /// The exported products whose digest differed (places in the export's digests).
    differing: Vec<usize>,
    /// The products whose digest differed and that the export no longer has.
    gone: Vec<i64>,
}

impl Scope {
    /// Whether nothing at all is compared (narrowed to nothing).
    pub(super) fn is_empty(&self) -> bool {
        self.narrowed && self.keys.iter().all(Vec::is_empty)
    }

    /// The condition on the rows of `kind` (a staging or live table, columns unqualified)
    /// that are compared, with [`Scope::keys`] bound as `$2` and `$3`. Arrays, not joins:
    /// a live table is probed by its index, a staging table filtered by a hashed array
    /// (measured 30% faster than semi-joins with scope tables at 1M variants).
    pub(super) fn rows(&self, kind: &str) -> &'static str {
        if !self.narrowed {
            return "TRUE";
        }
        match kind {
            "products" | "variants" => "id = ANY($2)",
            "inventory_levels" => "inventory_item_id = ANY($2)",
            _ => {
                "((owner_type = 'Product' AND owner_id = ANY($2))
                  OR (owner_type = 'ProductVariant' AND owner_id = ANY($3)))"
            }
        }
    }

    /// The staged rows of `kind` compared, from its staging table `staging`: its rows
    /// [`Scope::rows`] keeps, or for the variants when narrowed the temp table [`prepare`]
    /// filled with them.
    pub(super) fn staged(&self, kind: &str, staging: &str) -> String {
        if self.narrowed && kind == "variants" {
            return SCOPED_VARIANTS.to_owned();
        }
        format!("(SELECT * FROM {staging} WHERE {})", self.rows(kind))
    }

    /// The ids [`Scope::rows`] compares for `kind` (`$2`, `$3`; empty when not narrowed).
    pub(super) fn keys(&self, kind: &str) -> (&[i64], &[i64]) {
        let [products, variants, items] = &self.keys;
        match kind {
            "products" => (products, &[]),
            "variants" => (variants, &[]),
            "inventory_levels" => (items, &[]),
            _ => (products, variants),
        }
    }
}

/// Runs `sql` (`$1` = shop) and returns the rows it affected.
async fn run(conn: &mut PgConnection, sql: &str, shop: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sql)
        .bind(shop)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

/// Keeps this transaction's own deletes unmarked and remembers the shop's marks as they are
/// now (`catalog_seen_marks`, dropped at commit): those are the ones [`settle`] or
/// [`forget_seen_marks`] deletes.
/// Returns how many.
pub(super) async fn see_marks(conn: &mut PgConnection, shop: &str) -> Result<u64, sqlx::Error> {
    sqlx::query!("SET LOCAL wholesail.catalog_writer = 'on'")
        .execute(&mut *conn)
        .await?;
    run(
        conn,
        "CREATE TEMPORARY TABLE catalog_seen_marks ON COMMIT DROP AS
         SELECT mark_id, product_id, variant_id, inventory_item_id
         FROM catalog_dirty WHERE shop = $1",
        shop,
    )
    .await
}

/// Deletes the marks [`see_marks`] remembered.
pub(super) async fn forget_seen_marks(
    conn: &mut PgConnection,
    shop: &str,
) -> Result<(), sqlx::Error> {
    run(
        conn,
        "DELETE FROM catalog_dirty
         WHERE shop = $1 AND mark_id IN (SELECT mark_id FROM catalog_seen_marks)",
        shop,
    )
    .await?;
    Ok(())
}

/// Takes `shop`'s digests lock for this transaction: every writer of its digests (a merge, a
/// direct load and the digests it stores after its commit, [`store_loaded`]) holds it while it
/// reads and writes them, so a direct load's late digests never land beside a newer merge's.
/// Webhooks never take it (they mark what they write instead).
pub(super) async fn lock_digests(conn: &mut PgConnection, shop: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('wholesail-catalog-digests:' || $1, 0))",
        shop
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes every digest of `shop` (a load that writes its whole catalog anew).
pub(super) async fn forget_digests(conn: &mut PgConnection, shop: &str) -> Result<(), sqlx::Error> {
    run(conn, "DELETE FROM catalog_digests WHERE shop = $1", shop).await?;
    Ok(())
}

/// What became of the digests a direct load stores after its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedDigests {
    /// Stored: the next resync compares only what they and the marks leave.
    Stored,
    /// Not stored: a newer run of the shop completed first, and its digests stand.
    Superseded,
    /// Not stored: the shop was redacted meanwhile.
    Redacted,
}

/// Stores the digests of the export direct load `run` committed, in a transaction of its
/// own, so the catalog is live before they are written. It holds the shop's lock (shared, so
/// a redaction waits and webhooks do not) and its digests lock, and stores nothing when the
/// shop was redacted or a newer run of the shop completed since (that run's digests describe
/// the catalog now; the older export's would hide its changes). A webhook write since the load
/// is marked, and the next merge compares it whatever the digests say; a crash before this
/// commits leaves no digest, and the next resync compares everything.
pub(super) async fn store_loaded(
    pool: &sqlx::PgPool,
    shop: &ShopDomain,
    run: i64,
    d: &ProductDigests,
) -> Result<LoadedDigests, sqlx::Error> {
    let mut tx = pool.begin().await?;
    crate::shop_lock::shared(&mut tx, shop).await?;
    lock_digests(&mut tx, shop.as_str()).await?;
    if crate::shop_lock::is_redacted(&mut tx, shop).await? {
        return Ok(LoadedDigests::Redacted);
    }
    let newer = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM catalog_runs
                          WHERE shop = $1 AND id > $2 AND status = 'completed') AS "newer!""#,
        shop.as_str(),
        run,
    )
    .fetch_one(&mut *tx)
    .await?;
    if newer {
        return Ok(LoadedDigests::Superseded);
    }
    store_all(&mut tx, shop.as_str(), d).await?;
    tx.commit().await?;
    Ok(LoadedDigests::Stored)
}

/// Variants whose digests are stored by one statement: the arrays bound at once stay under
/// ~10 MB however large the catalog (a 1% resync of 1M variants stores ~280,000 in one).
const STORED_AT_ONCE: usize = 400_000;

/// Stores every product's digests in `d`, about [`STORED_AT_ONCE`] variants a statement.
async fn store_all(
    conn: &mut PgConnection,
    shop: &str,
    d: &ProductDigests,
) -> Result<(), sqlx::Error> {
    for products in d.batches(STORED_AT_ONCE) {
        store_digests(conn, shop, &d.only(products)).await?;
    }
    Ok(())
}

/// Stores `digests` (their products' rows inserted, or replaced where the product's digest
/// changed or its own and variant digests were not stored yet).
async fn store_digests(
    conn: &mut PgConnection,
    shop: &str,
    d: &ProductDigests,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO catalog_digests AS d (shop, product_id, digest, own, variant_ids,
                                           variant_digests)
         SELECT $1, s.product_id, s.digest, s.own, ($7::int8[])[s.first:s.last],
                ($8::int8[])[s.first:s.last]
         FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::int4[], $6::int4[])
              AS s(product_id, digest, own, first, last)
         ON CONFLICT (shop, product_id) DO UPDATE
         SET digest = EXCLUDED.digest, own = EXCLUDED.own, variant_ids = EXCLUDED.variant_ids,
             variant_digests = EXCLUDED.variant_digests
         WHERE d.digest <> EXCLUDED.digest OR d.own IS NULL OR d.variant_ids IS NULL",
        shop,
        &d.products,
        &d.digests,
        &d.owns,
        &d.firsts,
        &d.lasts,
        &d.variants,
        &d.variant_digests,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Analyses the staging tables: the statements joining them are planned from their real
/// sizes (they were filled moments ago, without statistics).
pub(crate) async fn analyze(
    conn: &mut PgConnection,
    staging: [&str; 4],
) -> Result<(), sqlx::Error> {
    for t in staging {
        sqlx::query(&format!("ANALYZE {t}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A product whose digest differs from the stored one (or either is missing), with what was
/// stored for it.
#[derive(sqlx::FromRow)]
struct Differing {
    id: i64,
    own: Option<i64>,
    variant_ids: Option<Vec<i64>>,
    variant_digests: Option<Vec<i64>>,
}

/// The variants whose digest differs between `staged` and `stored` (ids and digests; staged
/// sorted by id), or that only one side has, into `out`; returns how many are staged.
fn differing_variants(
    (ids, sums): (&[i64], &[i64]),
    stored: (&[i64], &[i64]),
    out: &mut Vec<i64>,
) -> u64 {
    let mut old: Vec<(i64, i64)> = stored
        .0
        .iter()
        .copied()
        .zip(stored.1.iter().copied())
        .collect();
    old.sort_unstable();
    let mut old = old.into_iter().peekable();
    let mut staged = 0;
    for (&id, &sum) in ids.iter().zip(sums) {
        while let Some((gone, _)) = old.next_if(|&(o, _)| o < id) {
            out.push(gone);
        }
        if old.next_if(|&(o, _)| o == id).map(|(_, s)| s) != Some(sum) {
            out.push(id);
            staged += 1;
        }
    }
    out.extend(old.map(|(gone, _)| gone));
    staged
}

/// Sees the marks and, unless `full` (or without digests), narrows the comparison to what may
/// differ; `staging`: the run's tables `[products, variants, levels, metafields]`, analysed
/// here (unless `analysed` already) when anything is compared.
pub(super) async fn prepare(
    conn: &mut PgConnection,
    shop: &str,
    digests: Option<&ProductDigests>,
    full: bool,
    analysed: bool,
    staging: [&str; 4],
) -> Result<Scope, sqlx::Error> {
    let sv = staging[1];
    let marks = see_marks(conn, shop).await?;
    let everything = Scope {
        narrowed: false,
        unchanged: 0,
        unchanged_variants: 0,
        keys: Default::default(),
        differing: Vec::new(),
        gone: Vec::new(),
    };
    let Some(d) = digests.filter(|_| !full) else {
        if !analysed {
            analyze(conn, staging).await?;
        }
        return Ok(everything);
    };
    // The products whose subtree differs, then their stored own and variant digests (read
    // by key for those only: the comparison itself joins narrow rows).
    let differing: Vec<Differing> = sqlx::query_as(
        "WITH differing AS (
             SELECT coalesce(s.product_id, t.id) AS id
             FROM unnest($2::int8[], $3::int8[]) AS s(product_id, digest)
             FULL JOIN (SELECT p.id, d.digest
                        FROM products p
                        LEFT JOIN catalog_digests d ON d.shop = p.shop AND d.product_id = p.id
                        WHERE p.shop = $1 AND p.deleted_at IS NULL) t ON t.id = s.product_id
             WHERE s.product_id IS NULL OR t.id IS NULL OR t.digest IS NULL
                OR s.digest <> t.digest)
         SELECT f.id, d.own, d.variant_ids, d.variant_digests
         FROM differing f
         LEFT JOIN catalog_digests d ON d.shop = $1 AND d.product_id = f.id",
    )
    .bind(shop)
    .bind(&d.products)
    .bind(&d.digests)
    .fetch_all(&mut *conn)
    .await?;
    // Within them: the product's own row and metafields when its own digest differs, and
    // each variant whose digest differs; every live variant of a product whose variant
    // digests were not stored (`whole`).
    let places: FxHashMap<i64, usize> = d
        .products
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i))
        .collect();
    let (mut products, mut variants, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    let (mut staged_products, mut staged_variants) = (0u64, 0u64);
    let (mut written, mut gone) = (Vec::new(), Vec::new());
    for p in &differing {
        let place = places.get(&p.id).copied();
        match place {
            Some(i) => written.push(i),
            None => gone.push(p.id),
        }
        staged_products += place.is_some() as u64;
        if p.own.is_none() || place.map(|i| d.owns[i]) != p.own {
            products.push(p.id);
        }
        let staged = place.map_or((&[][..], &[][..]), |i| d.variants_of(i));
        staged_variants += match (&p.variant_ids, &p.variant_digests) {
            (Some(ids), Some(sums)) => differing_variants(staged, (ids, sums), &mut variants),
            _ => {
                whole.push(p.id);
                variants.extend_from_slice(staged.0);
                staged.0.len() as u64
            }
        };
    }
    let scope = Scope {
        narrowed: true,
        unchanged: d.products.len() as u64 - staged_products,
        unchanged_variants: d.variants.len() as u64 - staged_variants,
        keys: Default::default(),
        differing: written,
        gone,
    };
    // Nothing differs and nothing was marked: nothing is compared.
    if products.is_empty() && variants.is_empty() && whole.is_empty() && marks == 0 {
        return Ok(scope);
    }
    // A scope this wide saves less than narrowing costs: compare everything.
    let wide = |n: usize, of: usize| n as f64 > WIDEST * of.max(1) as f64;
    if wide(products.len(), d.products.len()) || wide(variants.len(), d.variants.len()) {
        analyze(conn, staging).await?;
        return Ok(everything);
    }
    // Marked rows are compared too; a product stored without variant digests has every live
    // variant compared. The staging tables are not analysed: every statement reading them
    // filters them by these arrays and hashes. Without their statistics the planner may sort
    // a whole staging table for a merge join instead (measured: 0.4 s of external sort of the
    // staged products for the variants' comparison at 1M), so merge joins are off too.
    sqlx::query!("SET LOCAL enable_mergejoin = off")
        .execute(&mut *conn)
        .await?;
    let products: Vec<i64> = sqlx::query_scalar(
        "SELECT array(SELECT unnest($1::int8[])
                      UNION SELECT product_id FROM catalog_seen_marks
                            WHERE product_id IS NOT NULL)",
    )
    .bind(&products)
    .fetch_one(&mut *conn)
    .await?;
    let variants: Vec<i64> = sqlx::query_scalar(
        "SELECT array(SELECT unnest($2::int8[])
                      UNION SELECT id FROM variants WHERE shop = $1 AND product_id = ANY($3)
                      UNION SELECT variant_id FROM catalog_seen_marks
                            WHERE variant_id IS NOT NULL)",
    )
    .bind(shop)
    .bind(&variants)
    .bind(&whole)
    .fetch_one(&mut *conn)
    .await?;
    // The staged variants compared, read from their staging table once: for their items
    // here and for the variants' comparison ([`Scope::staged`]).
    sqlx::query(&format!(
        "CREATE TEMPORARY TABLE {SCOPED_VARIANTS} ON COMMIT DROP AS
         SELECT * FROM {sv} WHERE id = ANY($1)"
    ))
    .bind(&variants)
    .execute(&mut *conn)
    .await?;
    let items: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT array(SELECT inventory_item_id FROM {SCOPED_VARIANTS}
                      WHERE inventory_item_id IS NOT NULL
                      UNION SELECT inventory_item_id FROM variants
                            WHERE shop = $1 AND id = ANY($2) AND inventory_item_id IS NOT NULL
                      UNION SELECT inventory_item_id FROM catalog_seen_marks
                            WHERE inventory_item_id IS NOT NULL)"
    ))
    .bind(shop)
    .bind(&variants)
    .fetch_one(&mut *conn)
    .await?;
    tracing::debug!(
        products = products.len(),
        variants = variants.len(),
        items = items.len(),
        unchanged = scope.unchanged,
        unchanged_variants = scope.unchanged_variants,
        "catalog merge: compared in scope"
    );
    Ok(Scope {
        keys: [products, variants, items],
        ..scope
    })
}

/// After the merge's writes: stores this export's digests of the products whose digest
/// differed (all of them when not narrowed) and deletes those of products gone from it,
/// deletes the marks seen, and marks the differing rows of the `unresolved` kinds (tables
/// whose differences were not all written) again.
pub(super) async fn settle(
    conn: &mut PgConnection,
    shop: &str,
    scope: &Scope,
    digests: Option<&ProductDigests>,
    unresolved: &[&str],
) -> Result<(), sqlx::Error> {
    match digests {
        Some(d) if scope.narrowed => {
            // Only a product whose digest differed can have changed or gone.
            let differing = d.only(scope.differing.iter().copied());
            store_all(conn, shop, &differing).await?;
            sqlx::query!(
                "DELETE FROM catalog_digests WHERE shop = $1 AND product_id = ANY($2::int8[])",
                shop,
                &scope.gone,
            )
            .execute(&mut *conn)
            .await?;
        }
        Some(d) => {
            // Every product was compared: the digests that changed are written, the others
            // kept (a 1% resync changes about a quarter of them; rewriting all doubled its
            // digest WAL).
            store_all(conn, shop, d).await?;
            sqlx::query!(
                "WITH s AS (SELECT unnest($2::int8[]) AS product_id)
                 DELETE FROM catalog_digests d
                 WHERE d.shop = $1
                   AND NOT EXISTS (SELECT 1 FROM s WHERE s.product_id = d.product_id)",
                shop,
                &d.products,
            )
            .execute(&mut *conn)
            .await?;
        }
        None => forget_digests(conn, shop).await?,
    }
    forget_seen_marks(conn, shop).await?;
    for kind in unresolved {
        let marks = match *kind {
            "products" => {
                "INSERT INTO catalog_dirty (shop, product_id)
                 SELECT $1, id FROM catalog_diff_products"
            }
            "variants" => {
                "INSERT INTO catalog_dirty (shop, variant_id)
                 SELECT $1, id FROM catalog_diff_variants"
            }
            "inventory_levels" => {
                "INSERT INTO catalog_dirty (shop, inventory_item_id)
                 SELECT $1, inventory_item_id FROM catalog_diff_inventory_levels"
            }
            _ => {
                "INSERT INTO catalog_dirty (shop, product_id, variant_id)
                 SELECT $1, CASE WHEN owner_type = 'Product' THEN owner_id END,
                        CASE WHEN owner_type = 'ProductVariant' THEN owner_id END
                 FROM catalog_diff_metafields"
            }
        };
        let n = run(conn, marks, shop).await?;
        tracing::debug!(
            kind,
            marks = n,
            "catalog merge: rows left differing, marked again"
        );
    }
    Ok(())
}
