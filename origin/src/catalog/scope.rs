//! Which rows a resync's merge compares with the export, from per-product digests
//! ([`super::digest`]) and the marks of what was written since the last resync
//! (`catalog_dirty`, `migrations/0074_catalog_digests.sql`).
//!
//! A product is in scope when its digest in this export differs from the one stored at the
//! last merge (or either is missing: new, gone, never merged), or when something other than a
//! resync wrote one of its rows since (a mark). Its variants (staged or live), their inventory
//! items, and the metafields of both are in scope with it, as are marked variants and items
//! (a variant a webhook deleted leaves its levels behind). Everything else is known equal: its
//! lines are the ones the last merge made live, and nothing has written its rows since. So a
//! resync of an unchanged catalog compares 125,000 digests instead of 4 million rows.
//!
//! After the writes ([`settle`]) the digests of the products in scope are replaced with this
//! export's, the marks the merge saw are deleted, and the rows of a table whose differences
//! were not all written (a newer webhook kept, a tombstone, a delete past the snapshot) are
//! marked again, so the next merge compares them whatever the digests say. Marks written by
//! webhooks while the merge ran were not seen and stay. A linked reconciliation, or an export
//! whose lines could not all be given a product, compares everything (and stores what it can).

use sqlx::PgConnection;

use super::digest::ProductDigests;

/// The widest scope, as a share of the export's products, still compared narrowed: the
/// comparison scans both sides whole either way (hash joins; nested loops are off, see
/// `merge`) and only joins fewer rows, so at 28% of the products (a 1% resync of 1M variants)
/// narrowing cost more than it saved (merge 16.2 s against 9–11 s, `BENCHMARKS.md`).
const WIDEST: f64 = 0.2;

/// What the merge compares.
pub(super) struct Scope {
    /// False: every row.
    narrowed: bool,
    /// Exported products known equal and left out (0 when not narrowed).
    pub unchanged: u64,
    /// Products, variants and inventory items in scope (when narrowed).
    sizes: [u64; 3],
}

impl Scope {
    /// Whether nothing at all is compared (narrowed to nothing).
    pub(super) fn is_empty(&self) -> bool {
        self.narrowed && self.sizes == [0; 3]
    }

    /// The condition on the rows of `kind` (a staging or live table, columns unqualified)
    /// that are compared.
    pub(super) fn rows(&self, kind: &str) -> &'static str {
        if !self.narrowed {
            return "TRUE";
        }
        match kind {
            "products" => "id IN (SELECT id FROM catalog_scope_products)",
            "variants" => "id IN (SELECT id FROM catalog_scope_variants)",
            "inventory_levels" => "inventory_item_id IN (SELECT id FROM catalog_scope_items)",
            // One semi-join: an `OR` of two `IN`s is a subplan per row, quadratic once the
            // scope outgrows `work_mem` (measured: minutes at 1M).
            _ => "(owner_type, owner_id) IN (SELECT owner_type, id FROM catalog_scope_owners)",
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

/// Replaces every digest of `shop` with `digests` (a load that wrote the whole export).
pub(super) async fn replace_digests(
    conn: &mut PgConnection,
    shop: &str,
    digests: Option<&ProductDigests>,
) -> Result<(), sqlx::Error> {
    run(conn, "DELETE FROM catalog_digests WHERE shop = $1", shop).await?;
    if let Some(d) = digests {
        sqlx::query!(
            "INSERT INTO catalog_digests (shop, product_id, digest)
             SELECT $1, * FROM unnest($2::int8[], $3::int8[])",
            shop,
            &d.products,
            &d.digests,
        )
        .execute(&mut *conn)
        .await?;
    }
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
    let Some(d) = digests.filter(|_| !full) else {
        if !analysed {
            analyze(conn, staging).await?;
        }
        return Ok(Scope {
            narrowed: false,
            unchanged: 0,
            sizes: [0; 3],
        });
    };
    sqlx::query!(
        "CREATE TEMPORARY TABLE catalog_staged_digests ON COMMIT DROP AS
         SELECT * FROM unnest($1::int8[], $2::int8[]) AS d(product_id, digest)",
        &d.products,
        &d.digests,
    )
    .execute(&mut *conn)
    .await?;
    let statements = [
        "CREATE TEMPORARY TABLE catalog_scope_products ON COMMIT DROP AS
         SELECT coalesce(s.product_id, t.id) AS id
         FROM catalog_staged_digests s
         FULL JOIN (SELECT p.id, d.digest FROM products p
                    LEFT JOIN catalog_digests d ON d.shop = p.shop AND d.product_id = p.id
                    WHERE p.shop = $1 AND p.deleted_at IS NULL) t ON t.id = s.product_id
         WHERE s.product_id IS NULL OR t.id IS NULL OR s.digest <> t.digest
            OR t.digest IS NULL
         UNION SELECT product_id FROM catalog_seen_marks WHERE product_id IS NOT NULL"
            .to_owned(),
        format!(
            "CREATE TEMPORARY TABLE catalog_scope_variants ON COMMIT DROP AS
             SELECT id FROM {sv} WHERE product_id IN (SELECT id FROM catalog_scope_products)
             UNION SELECT id FROM variants
                   WHERE shop = $1 AND product_id IN (SELECT id FROM catalog_scope_products)
             UNION SELECT variant_id FROM catalog_seen_marks WHERE variant_id IS NOT NULL"
        ),
        format!(
            "CREATE TEMPORARY TABLE catalog_scope_items ON COMMIT DROP AS
             SELECT inventory_item_id AS id FROM {sv}
             WHERE id IN (SELECT id FROM catalog_scope_variants) AND inventory_item_id IS NOT NULL
             UNION SELECT inventory_item_id FROM variants
                   WHERE shop = $1 AND id IN (SELECT id FROM catalog_scope_variants)
                     AND inventory_item_id IS NOT NULL
             UNION SELECT inventory_item_id FROM catalog_seen_marks
                   WHERE inventory_item_id IS NOT NULL"
        ),
    ];
    let mut sizes = [0; 3];
    for (i, (sql, table)) in statements
        .iter()
        .zip(["products", "variants", "items"])
        .enumerate()
    {
        sizes[i] = run(conn, sql, shop).await?;
        if i == 0 {
            // No product differs and nothing was marked: nothing else can be in scope.
            if sizes[0] == 0 && marks == 0 {
                return Ok(Scope {
                    narrowed: true,
                    unchanged: d.products.len() as u64,
                    sizes,
                });
            }
            // A scope this wide saves less than narrowing costs: compare everything.
            if sizes[0] as f64 > WIDEST * d.products.len() as f64 {
                analyze(conn, staging).await?;
                return Ok(Scope {
                    narrowed: false,
                    unchanged: 0,
                    sizes: [0; 3],
                });
            }
            analyze(conn, staging).await?;
        }
        sqlx::query(&format!("ANALYZE catalog_scope_{table}"))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "CREATE TEMPORARY TABLE catalog_scope_owners ON COMMIT DROP AS
         SELECT 'Product' AS owner_type, id FROM catalog_scope_products
         UNION ALL SELECT 'ProductVariant', id FROM catalog_scope_variants",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("ANALYZE catalog_scope_owners")
        .execute(&mut *conn)
        .await?;
    // Temporary tables: checked at run time, not by the `query!` macros.
    let unchanged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM catalog_staged_digests s
         WHERE NOT EXISTS (SELECT 1 FROM catalog_scope_products p WHERE p.id = s.product_id)",
    )
    .fetch_one(&mut *conn)
    .await?;
    tracing::debug!(
        products = sizes[0],
        variants = sizes[1],
        items = sizes[2],
        unchanged,
        "catalog merge: compared in scope"
    );
    Ok(Scope {
        narrowed: true,
        unchanged: unchanged as u64,
        sizes,
    })
}

/// After the merge's writes: replaces the digests of the products in scope (all of them when
/// not narrowed) with this export's, deletes the marks seen, and marks the differing rows of
/// the `unresolved` kinds (tables whose differences were not all written) again.
pub(super) async fn settle(
    conn: &mut PgConnection,
    shop: &str,
    scope: &Scope,
    digests: Option<&ProductDigests>,
    unresolved: &[&str],
) -> Result<(), sqlx::Error> {
    if scope.narrowed {
        run(
            conn,
            "DELETE FROM catalog_digests
             WHERE shop = $1 AND product_id IN (SELECT id FROM catalog_scope_products)",
            shop,
        )
        .await?;
        run(
            conn,
            "INSERT INTO catalog_digests (shop, product_id, digest)
             SELECT $1, product_id, digest FROM catalog_staged_digests
             WHERE product_id IN (SELECT id FROM catalog_scope_products)",
            shop,
        )
        .await?;
    } else if let Some(d) = digests {
        // Every product was compared: the digests that changed are written, the others kept
        // (a 1% resync changes about a quarter of them; rewriting all doubled its digest WAL).
        sqlx::query!(
            "WITH s AS (SELECT * FROM unnest($2::int8[], $3::int8[]) AS s(product_id, digest)),
             gone AS (DELETE FROM catalog_digests d
                      WHERE d.shop = $1
                        AND NOT EXISTS (SELECT 1 FROM s WHERE s.product_id = d.product_id))
             INSERT INTO catalog_digests AS d (shop, product_id, digest)
             SELECT $1, product_id, digest FROM s
             ON CONFLICT (shop, product_id) DO UPDATE SET digest = EXCLUDED.digest
             WHERE d.digest <> EXCLUDED.digest",
            shop,
            &d.products,
            &d.digests,
        )
        .execute(&mut *conn)
        .await?;
    } else {
        replace_digests(conn, shop, None).await?;
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
