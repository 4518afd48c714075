//! The `catalog_runs` table: one row per resync, its status, progress and outcome. The row is
//! the run's only state, so a restarted process picks a run up where it stood.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

/// A run's status (the `catalog_runs.status` text column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created; the bulk operation is not started yet.
    Starting,
    /// The bulk operation runs at Shopify.
    Waiting,
    /// The result file is being staged and merged.
    Importing,
    /// Merged.
    Completed,
    /// Ended with an error.
    Failed,
    /// Canceled by an operator.
    Canceled,
}

/// A run's stored state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Run id.
    pub id: i64,
    /// Shop domain.
    pub shop: ShopDomain,
    /// Where the run stands.
    pub status: RunStatus,
    /// The bulk operation's gid.
    pub bulk_operation_id: Option<String>,
    /// The bulk operation's `createdAt`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub snapshot_at: Option<OffsetDateTime>,
    /// Last bulk status seen.
    pub bulk_status: Option<String>,
    /// Last `objectCount` seen.
    pub bulk_object_count: Option<i64>,
    /// The result file's size.
    pub file_size: Option<i64>,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// JSONL lines imported so far.
    pub lines_read: i64,
    /// JSONL bytes downloaded so far.
    pub bytes_read: i64,
    /// Rows staged by kind.
    pub staged: Option<serde_json::Value>,
    /// What the merge did, by table.
    pub merged: Option<serde_json::Value>,
    /// Rows inserted, over all tables.
    pub inserted: Option<i64>,
    /// Rows updated.
    pub updated: Option<i64>,
    /// Rows deleted.
    pub deleted: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The JSONL line the failure was found on.
    pub error_line: Option<i64>,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the `bulk_operations/finish` webhook arrived.
    #[serde(with = "time::serde::rfc3339::option")]
    pub bulk_finished_at: Option<OffsetDateTime>,
    /// Finished (completed, failed or canceled).
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// How many times a driver has taken the run (see `driver`).
    pub attempt: i32,
    /// The process that took the latest attempt.
    pub driver: Option<String>,
    /// Milliseconds the completed attempt spent staging.
    pub stage_ms: Option<i64>,
    /// Milliseconds its merge took.
    pub merge_ms: Option<i64>,
    /// Whether the completed attempt loaded the live tables directly (no staging; see
    /// `direct`).
    pub direct: Option<bool>,
}

impl Run {
    /// Whether the run has ended.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Canceled
        )
    }
}

/// Which runs [`select`] reads; empty fields do not filter.
#[derive(Default)]
struct Which<'a> {
    id: Option<i64>,
    shop: Option<&'a ShopDomain>,
    active_only: bool,
    limit: Option<i64>,
}

/// The one query that reads runs, newest first: every reader goes through it, so the column
/// list is written once.
async fn select(pool: &PgPool, which: Which<'_>) -> Result<Vec<Run>, sqlx::Error> {
    sqlx::query_as!(
        Run,
        r#"SELECT id, shop AS "shop: ShopDomain", status AS "status: RunStatus", bulk_operation_id, snapshot_at,
                  bulk_status, bulk_object_count, file_size, cancel_requested, lines_read,
                  bytes_read, staged, merged, inserted, updated, deleted, error, error_line,
                  created_at, updated_at, bulk_finished_at, finished_at, attempt, driver,
                  stage_ms, merge_ms, direct
         FROM catalog_runs
         WHERE ($1::int8 IS NULL OR id = $1) AND ($2::text IS NULL OR shop = $2)
           AND (NOT $3 OR status IN ('starting', 'waiting', 'importing'))
         ORDER BY id DESC LIMIT $4"#,
        which.id,
        which.shop.map(ShopDomain::as_str),
        which.active_only,
        which.limit,
    )
    .fetch_all(pool)
    .await
}

/// The run `id`.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Run>, sqlx::Error> {
    let which = Which {
        id: Some(id),
        ..Which::default()
    };
    Ok(select(pool, which).await?.pop())
}

/// The newest runs, of `shop` or of every shop.
pub async fn list(
    pool: &PgPool,
    shop: Option<&ShopDomain>,
    limit: i64,
) -> Result<Vec<Run>, sqlx::Error> {
    let which = Which {
        shop,
        limit: Some(limit),
        ..Which::default()
    };
    select(pool, which).await
}

/// How many runs there are, of `shop` or of every shop.
pub async fn count(pool: &PgPool, shop: Option<&ShopDomain>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM catalog_runs WHERE ($1::text IS NULL OR shop = $1)"#,
        shop.map(ShopDomain::as_str),
    )
    .fetch_one(pool)
    .await
}

/// The active run of `shop` (at most one, by the partial unique index).
pub async fn active(pool: &PgPool, shop: &ShopDomain) -> Result<Option<Run>, sqlx::Error> {
    let which = Which {
        shop: Some(shop),
        active_only: true,
        ..Which::default()
    };
    Ok(select(pool, which).await?.pop())
}

/// Every active run, oldest first (serve adopts those whose driver died).
pub async fn all_active(pool: &PgPool) -> Result<Vec<Run>, sqlx::Error> {
    let which = Which {
        active_only: true,
        ..Which::default()
    };
    let mut runs = select(pool, which).await?;
    runs.reverse();
    Ok(runs)
}

/// The active run of `shop`, or a new one; `(run, created)`. At most one run per shop is
/// active (a unique index), so two concurrent callers get the same run.
pub async fn start(pool: &PgPool, shop: &ShopDomain) -> Result<(Run, bool), sqlx::Error> {
    loop {
        if let Some(run) = active(pool, shop).await? {
            return Ok((run, false));
        }
        let created = sqlx::query_scalar!(
            "INSERT INTO catalog_runs (shop) VALUES ($1)
             ON CONFLICT (shop) WHERE status IN ('starting', 'waiting', 'importing') DO NOTHING
             RETURNING id",
            shop.as_str(),
        )
        .fetch_optional(pool)
        .await?;
        if let Some(run) = created {
            let run = get(pool, run).await?.ok_or(sqlx::Error::RowNotFound)?;
            return Ok((run, true));
        }
    }
}

/// Asks run `id` to stop; returns false if it does not exist or has already ended.
pub async fn cancel(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let n = sqlx::query!(
        "UPDATE catalog_runs SET cancel_requested = true, updated_at = now()
         WHERE id = $1 AND status IN ('starting', 'waiting', 'importing')",
        id,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// The channel [`bulk_finished`] notifies on (payload: the run id).
pub const FINISHED_CHANNEL: &str = "catalog_bulk_finished";

/// Records that Shopify's `bulk_operations/finish` webhook of `shop` arrived for `bulk_gid`
/// (the payload's `admin_graphql_api_id`) and wakes the runner waiting for it (`NOTIFY`);
/// returns the run id, if an active run of the shop owns that operation. For the webhook
/// handler path; idempotent (duplicates only wake the runner again). Delivery is not
/// guaranteed, so the runner also polls.
pub async fn bulk_finished(
    db: impl sqlx::PgExecutor<'_>,
    shop: &ShopDomain,
    bulk_gid: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"WITH r AS (UPDATE catalog_runs SET bulk_finished_at = coalesce(bulk_finished_at, now()),
                                          updated_at = now()
                    WHERE shop = $3 AND bulk_operation_id = $1
                      AND status IN ('starting', 'waiting', 'importing')
                    RETURNING id)
         SELECT id AS "id!" FROM r, pg_notify($2, r.id::text)"#,
        bulk_gid,
        FINISHED_CHANNEL,
        shop.as_str(),
    )
    .fetch_optional(db)
    .await
}
