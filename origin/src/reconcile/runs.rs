//! `reconcile_runs` and `reconcile_findings`: every statement on them.

use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

/// What a run compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The shop's webhook subscriptions.
    Subscriptions,
    /// A window of orders by `updated_at` (also the install backfill).
    Orders,
    /// Products, variants and inventory levels, through a catalog resync.
    Catalog,
    /// Salesforce records against what the outbox last sent.
    Salesforce,
    /// Shopify's B2B catalogs, price lists and quantity rules against the price matrix.
    #[sqlx(rename = "price_lists")]
    #[serde(rename = "price_lists")]
    PriceLists,
}

/// The `updated_at` window a run compares (open ends: everything).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// From (inclusive).
    pub start: Option<OffsetDateTime>,
    /// Until (exclusive).
    pub end: Option<OffsetDateTime>,
}

/// Who started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The schedule.
    Schedule,
    /// An operator (CLI or admin API).
    Operator,
}

/// Whether a run changes anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Findings are fixed.
    #[default]
    Heal,
    /// Findings are recorded only.
    Report,
}

/// A run's counts, as it finishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records compared.
    pub compared: i64,
    /// Missing on our side (or, for subscriptions, at Shopify).
    pub missing: i64,
    /// Present but different.
    pub stale: i64,
    /// Fixed.
    pub healed: i64,
    /// Not fixed: healing failed.
    pub failed: i64,
    /// Shopify cost points used.
    pub cost_used: i64,
}

/// A recorded run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// The shop.
    pub shop: ShopDomain,
    /// Its id (per shop).
    pub id: i64,
    /// What it compared.
    pub scope: Scope,
    /// Who started it.
    pub trigger: Trigger,
    /// Heal or report.
    pub mode: Mode,
    /// The compared window's start (`None`: from the beginning).
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_start: Option<OffsetDateTime>,
    /// Its end (`None`: until the run).
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_end: Option<OffsetDateTime>,
    /// Started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Finished (`None` while running or if it crashed).
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// The counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Why it stopped early.
    pub error: Option<String>,
}

/// One difference a run found.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Its kind (`subscription_missing` …).
    pub kind: String,
    /// The record concerned.
    pub record: String,
    /// What was seen.
    pub detail: Value,
    /// Found.
    #[serde(with = "time::serde::rfc3339")]
    pub found_at: OffsetDateTime,
    /// Fixed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub healed_at: Option<OffsetDateTime>,
    /// Why fixing failed.
    pub error: Option<String>,
}

/// Records the start of a run over `window`; its id.
pub async fn start(
    pool: &PgPool,
    shop: &ShopDomain,
    scope: Scope,
    trigger: Trigger,
    mode: Mode,
    window: Window,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO reconcile_runs (shop, scope, trigger, mode, window_start, window_end)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id",
        shop.as_str(),
        scope as Scope,
        trigger as Trigger,
        mode as Mode,
        window.start,
        window.end,
    )
    .fetch_one(pool)
    .await
}

/// Records a finding of run `run`: healed now (`Ok(true)`), not touched (`Ok(false)`, report
/// mode or nothing to do), or healing failed (`Err`).
pub async fn finding(
    pool: &PgPool,
    shop: &ShopDomain,
    run: i64,
    kind: &str,
    record: &str,
    detail: &Value,
    healed: Result<bool, String>,
) -> Result<(), sqlx::Error> {
    let (healed, error) = match healed {
        Ok(h) => (h, None),
        Err(e) => (false, Some(e)),
    };
    sqlx::query!(
        "INSERT INTO reconcile_findings (shop, run_id, kind, record, detail, healed_at, error)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END, $7)",
        shop.as_str(),
        run,
        kind,
        record,
        detail,
        healed,
        error,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the end of run `run`.
pub async fn finish(
    pool: &PgPool,
    shop: &ShopDomain,
    run: i64,
    counts: &Counts,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE reconcile_runs
         SET finished_at = now(), compared = $3, missing = $4, stale = $5, healed = $6,
             failed = $7, cost_used = $8, error = $9
         WHERE shop = $1 AND id = $2",
        shop.as_str(),
        run,
        counts.compared,
        counts.missing,
        counts.stale,
        counts.healed,
        counts.failed,
        counts.cost_used,
        error,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the end of run `run`, which used `cost` Shopify cost points and whose counts its
/// linked catalog run's merge wrote ([`super::catalog::capture`]); its counts and units of
/// inventory drift, read back.
pub async fn finish_linked(
    pool: &PgPool,
    shop: &ShopDomain,
    run: i64,
    cost: u64,
    error: Option<&str>,
) -> Result<(Counts, Option<i64>), sqlx::Error> {
    let r = sqlx::query!(
        "UPDATE reconcile_runs SET finished_at = now(), error = $3, cost_used = $4
         WHERE shop = $1 AND id = $2
         RETURNING compared, missing, stale, healed, failed, cost_used, inventory_drift_units",
        shop.as_str(),
        run,
        error,
        i64::try_from(cost).unwrap_or(i64::MAX),
    )
    .fetch_one(pool)
    .await?;
    let counts = Counts {
        compared: r.compared,
        missing: r.missing,
        stale: r.stale,
        healed: r.healed,
        failed: r.failed,
        cost_used: r.cost_used,
    };
    Ok((counts, r.inventory_drift_units))
}

/// The latest `limit` runs (of `shop`, when given), newest first.
pub async fn recent(
    pool: &PgPool,
    shop: Option<&ShopDomain>,
    limit: i64,
) -> Result<Vec<Run>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT shop AS "shop: ShopDomain", id, scope AS "scope: Scope",
                  trigger AS "trigger: Trigger", mode AS "mode: Mode", window_start, window_end,
                  started_at, finished_at,
                  compared, missing, stale, healed, failed, cost_used, error
         FROM reconcile_runs WHERE ($1::text IS NULL OR shop = $1)
         ORDER BY started_at DESC, id DESC LIMIT $2"#,
        shop.map(ShopDomain::as_str),
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Run {
            shop: r.shop,
            id: r.id,
            scope: r.scope,
            trigger: r.trigger,
            mode: r.mode,
            window_start: r.window_start,
            window_end: r.window_end,
            started_at: r.started_at,
            finished_at: r.finished_at,
            counts: Counts {
                compared: r.compared,
                missing: r.missing,
                stale: r.stale,
                healed: r.healed,
                failed: r.failed,
                cost_used: r.cost_used,
            },
            error: r.error,
        })
        .collect())
}

/// How many runs there are, of `shop` or of every shop.
pub async fn count(pool: &PgPool, shop: Option<&ShopDomain>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM reconcile_runs WHERE ($1::text IS NULL OR shop = $1)"#,
        shop.map(ShopDomain::as_str),
    )
    .fetch_one(pool)
    .await
}

/// Whether run `run` of `shop` exists.
pub async fn exists(pool: &PgPool, shop: &ShopDomain, run: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM reconcile_runs WHERE shop = $1 AND id = $2) AS "e!""#,
        shop.as_str(),
        run,
    )
    .fetch_one(pool)
    .await
}

/// The findings of run `run` of `shop`.
pub async fn findings(
    pool: &PgPool,
    shop: &ShopDomain,
    run: i64,
) -> Result<Vec<Finding>, sqlx::Error> {
    sqlx::query_as!(
        Finding,
        "SELECT kind, record, detail, found_at, healed_at, error FROM reconcile_findings
         WHERE shop = $1 AND run_id = $2 ORDER BY id",
        shop.as_str(),
        run,
    )
    .fetch_all(pool)
    .await
}
