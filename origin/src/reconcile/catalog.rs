//! Products, variants and inventory levels against a fresh export, through the catalog
//! resync machinery: a run starts a catalog run and links it (`reconcile_runs.catalog_run`);
//! in that run's merge transaction, before anything is written, [`capture`] compares the
//! staging tables with the live ones under the merge's own rules (never older over newer,
//! tombstones final, delete-missing bounded by the export's snapshot) and records what the
//! merge is about to change as findings:
//! - `product_missing`, `product_stale`, `product_deleted` (live, gone from Shopify);
//! - `variant_missing`, `variant_stale`, `variant_deleted`, for the products whose variants
//!   the merge takes from the export;
//! - `inventory_drift` (units: Shopify − ours), `inventory_missing`, `inventory_extra`, per
//!   SKU and location (`inventory_extra`: the variant is still exported, without stock at
//!   that location; the levels of a deleted product's variants go with it, unreported).
//!
//! A change younger than the run's settle bound (its window end: the run's start minus
//! `settle`) is not counted: its webhook is probably in flight.
//!
//! In heal mode the merge then writes them in the same transaction (found and healed
//! together); in report mode the catalog run ends `canceled` with nothing merged. At most
//! [`MAX_FINDINGS`] findings of each statement are stored; the counts are complete. The
//! units of inventory drift are exported as `wholesail_inventory_drift_units{shop}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use wholesail_shopify_admin::AdminClient;
use wholesail_webhook::ShopDomain;

use super::runs::{self, Counts, Mode, Scope, Trigger, Window};
use crate::catalog::copy::{table, KINDS};
use crate::catalog::{self, RunError};

/// Findings stored per statement of one run.
pub const MAX_FINDINGS: i64 = 10_000;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum CatalogReconcileError {
    /// Recording the run.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The catalog run.
    #[error("catalog run: {0}")]
    Run(#[from] RunError),
}

/// One kind of finding: its `kind`, record and detail expressions over `FROM … WHERE`.
struct Check {
    kind: &'static str,
    missing: bool,
    record: &'static str,
    detail: &'static str,
    from: String,
}

/// The export row `alias` changed before the run's settle bound (`$7`): a younger change is
/// left to its webhook (the merge still writes it, it is just not counted as drift).
fn settled(alias: &str) -> String {
    format!("($7::timestamptz IS NULL OR {alias}.updated_at < $7)")
}

fn checks(sp: &str, sv: &str, sl: &str) -> Vec<Check> {
    // Products whose variant set the merge takes from the export: new, or at most as new.
    let owned = format!(
        "SELECT s.id FROM {sp} s LEFT JOIN products p ON p.shop = $1 AND p.id = s.id
         WHERE p.id IS NULL
            OR (p.deleted_at IS NULL
                AND (p.source_updated_at IS NULL OR p.source_updated_at <= s.updated_at))"
    );
    let product = "jsonb_build_object('title', s.title, 'shopify_updated_at', s.updated_at)";
    let variant = "jsonb_build_object('sku', v.sku, 'product_id', v.product_id,
                                      'shopify_updated_at', v.updated_at)";
    let level = "coalesce((SELECT x.sku FROM variants x WHERE x.shop = $1
                           AND x.inventory_item_id = l.inventory_item_id LIMIT 1),
                          'item:' || l.inventory_item_id) || '@' || l.location_id";
    vec![
        Check {
            kind: "product_missing",
            missing: true,
            record: "s.id::text",
            detail: product,
            from: format!(
                "{sp} s WHERE {young}
                   AND NOT EXISTS (SELECT 1 FROM products t WHERE t.shop = $1 AND t.id = s.id)",
                young = settled("s")
            ),
        },
        Check {
            kind: "product_stale",
            missing: false,
            record: "s.id::text",
            detail: product,
            from: format!(
                "{sp} s JOIN products t ON t.shop = $1 AND t.id = s.id
                 WHERE {young} AND t.deleted_at IS NULL
                   AND (t.source_updated_at IS NULL OR t.source_updated_at <= s.updated_at)
                   AND (t.title, t.handle, t.status, t.vendor, t.product_type, t.tags)
                       IS DISTINCT FROM
                       (s.title, s.handle, s.status, s.vendor, s.product_type, s.tags)",
                young = settled("s")
            ),
        },
        Check {
            kind: "product_deleted",
            missing: false,
            record: "t.id::text",
            detail: "jsonb_build_object('title', t.title, 'ours_updated_at', t.source_updated_at)",
            from: format!(
                "products t WHERE t.shop = $1 AND t.deleted_at IS NULL
                   AND t.source_updated_at <= $2
                   AND NOT EXISTS (SELECT 1 FROM {sp} s WHERE s.id = t.id)"
            ),
        },
        Check {
            kind: "variant_missing",
            missing: true,
            record: "v.id::text",
            detail: variant,
            from: format!(
                "{sv} v WHERE {young} AND v.product_id IN ({owned})
                   AND NOT EXISTS (SELECT 1 FROM variants t WHERE t.shop = $1 AND t.id = v.id)",
                young = settled("v")
            ),
        },
        Check {
            kind: "variant_stale",
            missing: false,
            record: "v.id::text",
            detail: variant,
            from: format!(
                "{sv} v JOIN variants t ON t.shop = $1 AND t.id = v.id
                 WHERE {young} AND v.product_id IN ({owned})
                   AND (t.source_updated_at IS NULL OR t.source_updated_at <= v.updated_at)
                   AND (t.product_id, t.sku, t.barcode, t.title, t.price, t.compare_at_price,
                        t.position, t.inventory_item_id)
                       IS DISTINCT FROM
                       (v.product_id, v.sku, v.barcode, v.title, v.price::numeric,
                        v.compare_at_price::numeric, v.position, v.inventory_item_id)",
                young = settled("v")
            ),
        },
        Check {
            kind: "variant_deleted",
            missing: false,
            record: "t.id::text",
            detail: "jsonb_build_object('sku', t.sku, 'product_id', t.product_id)",
            from: format!(
                "variants t WHERE t.shop = $1 AND t.product_id IN ({owned})
                   AND (t.source_updated_at IS NULL OR t.source_updated_at <= $2)
                   AND NOT EXISTS (SELECT 1 FROM {sv} v WHERE v.id = t.id)"
            ),
        },
        Check {
            kind: "inventory_drift",
            missing: false,
            record: level,
            detail: "jsonb_build_object('inventory_item_id', l.inventory_item_id,
                         'location_id', l.location_id, 'ours', t.available,
                         'shopify', l.available,
                         'units', coalesce(l.available, 0) - coalesce(t.available, 0),
                         'shopify_updated_at', l.updated_at)",
            from: format!(
                "{sl} l JOIN inventory_levels t ON t.shop = $1
                     AND t.inventory_item_id = l.inventory_item_id
                     AND t.location_id = l.location_id
                 WHERE {young} AND t.source_updated_at <= l.updated_at
                   AND t.available IS DISTINCT FROM l.available",
                young = settled("l")
            ),
        },
        Check {
            kind: "inventory_missing",
            missing: true,
            record: level,
            detail: "jsonb_build_object('inventory_item_id', l.inventory_item_id,
                         'location_id', l.location_id, 'shopify', l.available,
                         'units', coalesce(l.available, 0))",
            from: format!(
                "{sl} l WHERE {young} AND NOT EXISTS (SELECT 1 FROM inventory_levels t
                     WHERE t.shop = $1 AND t.inventory_item_id = l.inventory_item_id
                       AND t.location_id = l.location_id)",
                young = settled("l")
            ),
        },
        Check {
            kind: "inventory_extra",
            missing: false,
            record: level,
            detail: "jsonb_build_object('inventory_item_id', l.inventory_item_id,
                         'location_id', l.location_id, 'ours', l.available,
                         'units', -coalesce(l.available, 0))",
            from: format!(
                "inventory_levels l WHERE l.shop = $1 AND l.source_updated_at <= $2
                   AND EXISTS (SELECT 1 FROM {sv} v WHERE v.inventory_item_id = l.inventory_item_id)
                   AND NOT EXISTS (SELECT 1 FROM {sl} s
                                   WHERE s.inventory_item_id = l.inventory_item_id
                                     AND s.location_id = l.location_id)"
            ),
        },
    ]
}

/// What [`capture`] found for a linked run.
#[derive(Debug, Clone, Copy)]
pub struct Captured {
    /// The reconciliation run.
    pub run: i64,
    /// Its mode: in report mode the merge must not run.
    pub mode: Mode,
}

/// In catalog run `catalog_run`'s merge transaction (attempt `attempt`, export snapshot
/// `snapshot`), called by the merge once its staging tables are analysed and before it
/// writes: when a reconciliation run is linked to it, records what the merge is about to
/// change as its findings and counts. `None` when no run is linked.
pub async fn capture(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    catalog_run: i64,
    attempt: i32,
    snapshot: OffsetDateTime,
) -> Result<Option<Captured>, sqlx::Error> {
    let linked = sqlx::query!(
        r#"SELECT id, mode AS "mode: Mode", window_end FROM reconcile_runs
         WHERE shop = $1 AND catalog_run = $2"#,
        shop.as_str(),
        catalog_run,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(linked) = linked else {
        return Ok(None);
    };
    let [sp, sv, sl, sm] = KINDS.map(|k| table(catalog_run, attempt, k));
    // The checks join the whole staging tables, filled moments ago: analysed first.
    crate::catalog::scope::analyze(conn, [&sp, &sv, &sl, &sm]).await?;
    let heal = linked.mode == Mode::Heal;
    let mut counts = Counts::default();
    let mut units = 0i64;
    for c in checks(&sp, &sv, &sl) {
        let row = sqlx::query(&format!(
            "WITH d AS (SELECT {record} AS record, {detail} AS detail FROM {from}),
                  ins AS (INSERT INTO reconcile_findings
                              (shop, run_id, kind, record, detail, healed_at)
                          SELECT $1, $3, $4, record, detail, CASE WHEN $5 THEN now() END
                          FROM d LIMIT $6 RETURNING 1)
             SELECT count(*), coalesce(sum(abs((detail->>'units')::bigint)), 0)::bigint FROM d",
            record = c.record,
            detail = c.detail,
            from = c.from,
        ))
        .bind(shop.as_str())
        .bind(snapshot)
        .bind(linked.id)
        .bind(c.kind)
        .bind(heal)
        .bind(MAX_FINDINGS)
        .bind(linked.window_end)
        .fetch_one(&mut *conn)
        .await?;
        let (found, drift): (i64, i64) = (row.get(0), row.get(1));
        if found == 0 {
            continue;
        }
        metrics::counter!("wholesail_reconcile_findings_total",
            "scope" => "catalog", "kind" => c.kind)
        .increment(found as u64);
        match c.missing {
            true => counts.missing += found,
            false => counts.stale += found,
        }
        units += drift;
    }
    let compared: i64 = sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM {sp}) + (SELECT count(*) FROM {sv})
              + (SELECT count(*) FROM {sl})"
    ))
    .fetch_one(&mut *conn)
    .await?;
    if heal {
        counts.healed = counts.missing + counts.stale;
    }
    sqlx::query!(
        "UPDATE reconcile_runs SET compared = $3, missing = $4, stale = $5, healed = $6,
                inventory_drift_units = $7
         WHERE shop = $1 AND id = $2",
        shop.as_str(),
        linked.id,
        compared,
        counts.missing,
        counts.stale,
        counts.healed,
        units,
    )
    .execute(&mut *conn)
    .await?;
    Ok(Some(Captured {
        run: linked.id,
        mode: linked.mode,
    }))
}

/// Reconciles `shop`'s catalog through a catalog run, heals in [`Mode::Heal`], and records
/// the run; its id and counts (read back: [`capture`] wrote them in the merge's transaction).
pub async fn reconcile(
    pool: &PgPool,
    runner: &catalog::Runner,
    client: Arc<AdminClient>,
    shop: &ShopDomain,
    settle: Duration,
    mode: Mode,
    trigger: Trigger,
) -> Result<(i64, Counts), CatalogReconcileError> {
    let started = Instant::now();
    let window = Window {
        start: None,
        end: Some(OffsetDateTime::now_utc() - settle),
    };
    let run = runs::start(pool, shop, Scope::Catalog, trigger, mode, window).await?;
    let (catalog_run, _) = catalog::runs::start(pool, shop).await?;
    sqlx::query!(
        "UPDATE reconcile_runs SET catalog_run = $3 WHERE shop = $1 AND id = $2",
        shop.as_str(),
        run,
        catalog_run.id,
    )
    .execute(pool)
    .await?;
    let spent = client.cost_spent();
    let outcome = runner.follow(catalog_run.id, &client, &|_| {}).await;
    let cost = client.cost_spent().saturating_sub(spent);
    let error = match &outcome {
        Ok(_) => None,
        Err(RunError::ReportOnly(_)) if mode == Mode::Report => None,
        Err(e) => Some(e.to_string()),
    };
    let counts = runs::finish_linked(pool, shop, run, cost, error.as_deref()).await?;
    let label = if error.is_some() { "error" } else { "finished" };
    metrics::counter!("wholesail_reconcile_runs_total", "scope" => "catalog", "outcome" => label)
        .increment(1);
    metrics::histogram!("wholesail_reconcile_run_seconds", "scope" => "catalog")
        .record(started.elapsed().as_secs_f64());
    if let (None, Some(units)) = (&error, counts.1) {
        metrics::gauge!("wholesail_inventory_drift_units", "shop" => shop.to_string())
            .set(units as f64);
    }
    match (outcome, error) {
        (Err(e), Some(_)) => Err(e.into()),
        _ => Ok((run, counts.0)),
    }
}
