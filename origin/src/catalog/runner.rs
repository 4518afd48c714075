//! Driving one resync run through its states: start the bulk operation, wait for it (poll
//! `bulkOperation(id:)`, woken early by the finish webhook), stream the JSONL into staging,
//! merge. Every transition is stored in `catalog_runs` first, so a new process resumes a run
//! from its row: a run that was waiting keeps waiting for the same bulk operation, a run that
//! was importing re-imports the same file into new staging tables (the merge and the
//! `completed` status commit together, so a merge never happens twice).
//!
//! Only the holder of the run's [`driver::Lease`] drives it; every other process that
//! resyncs the shop watches the run's row ([`Runner::watch`]) and ends with the same outcome.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_shopify_admin::bulk::{BulkOperation, BulkStatus, SHOPIFY_RESULT_HOSTS};
use wholesail_shopify_admin::{AdminClient, AdminError};
use wholesail_webhook::ShopDomain;

use super::copy::{self, StagedCounts, Staging};
use super::digest::{Digests, ProductDigests};
use super::direct::{self, Direct, DirectError};
use super::driver::{self, Lease, Take};
use super::jsonl::{self, LineError};
use super::merge::{self, MergeError, MergeSummary};
use super::runs::{self, Run, RunStatus, FINISHED_CHANNEL};
use crate::pg_tls::{PgConnect, PgTlsError};

/// The bulk query: products, their variants with inventory levels per location, and the
/// `wholesail` metafields of both (what the B2B rules read).
pub const BULK_QUERY: &str = r#"{ products { edges { node {
  id title handle vendor productType status tags updatedAt
  metafields(namespace: "wholesail") { edges { node { id namespace key type value } } }
  variants { edges { node {
    id sku title position price compareAtPrice barcode updatedAt
    inventoryItem { id inventoryLevels { edges { node {
      id location { id } quantities(names: ["available"]) { name quantity } updatedAt } } } }
    metafields(namespace: "wholesail") { edges { node { id namespace key type value } } }
  } } }
} } } }"#;

/// Why a run stopped without completing.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No such run.
    #[error("catalog run {0} not found")]
    NotFound(i64),
    /// Shopify refused or failed a request.
    #[error("shopify: {0}")]
    Shopify(#[from] AdminError),
    /// The bulk operation ended without a result.
    #[error("bulk operation {id} ended {status:?} ({code})")]
    BulkFailed {
        /// Its gid.
        id: String,
        /// Its final status.
        status: BulkStatus,
        /// Shopify's `errorCode` (`ACCESS_DENIED`, `INTERNAL_SERVER_ERROR`, `TIMEOUT`).
        code: String,
    },
    /// The bulk operation did not finish in time.
    #[error("bulk operation {0} still not finished after the configured timeout")]
    BulkTimeout(String),
    /// A line could not be read.
    #[error("invalid export: {0}")]
    Line(#[from] LineError),
    /// The file ended early.
    #[error("truncated export: {reason}")]
    Truncated {
        /// The last line read.
        line: u64,
        /// What was expected.
        reason: String,
    },
    /// Staging by COPY failed.
    #[error("staging failed: {0}")]
    Copy(#[from] tokio_postgres::Error),
    /// Loading an empty shop straight into the live tables failed.
    #[error("direct load failed: {0}")]
    Direct(#[from] DirectError),
    /// The merge failed or was refused.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// An operator canceled the run.
    #[error("canceled")]
    Canceled,
    /// A report-only reconciliation compared the export and merged nothing (the run ends
    /// `canceled`).
    #[error("catalog run {0}: report-only reconciliation, nothing merged")]
    ReportOnly(i64),
    /// Another process drives the run (or it has just ended): watch it instead.
    #[error("catalog run {0} is driven by another process or has ended")]
    NotDriven(i64),
    /// The run was taken over by another driver (this one lost its lock meanwhile).
    #[error("catalog run {0} was taken over by another driver")]
    Superseded(i64),
    /// The connection holding the driver lock ended: the run is left to the next driver.
    #[error("lost the driver lock of catalog run {0}")]
    LostLock(i64),
    /// The staging tables do not hold what this driver wrote into them.
    #[error("staging tables hold {found:?} rows, not the {written:?} written; nothing merged")]
    StagingMismatch {
        /// Rows this driver wrote.
        written: StagedCounts,
        /// Rows the merge found.
        found: StagedCounts,
    },
    /// The driver lock could not be taken or checked.
    #[error("driver lock: {0}")]
    Lock(#[source] tokio_postgres::Error),
    /// The watched run failed; its driver's error.
    #[error("{0}")]
    Failed(String),
}

impl RunError {
    fn line(&self) -> Option<u64> {
        match self {
            RunError::Line(e) => Some(e.line),
            RunError::Truncated { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Whether `op` is still running and was created since `since` (i.e. by this run).
fn adoptable(op: &BulkOperation, since: OffsetDateTime) -> bool {
    !op.status.is_final()
        && OffsetDateTime::parse(&op.created_at, &Rfc3339).is_ok_and(|t| t >= since)
}

/// `Ok` when a guarded write (`WHERE attempt = …`) changed the run, [`RunError::Superseded`]
/// when another driver has taken it.
fn fenced(rows: u64, id: i64) -> Result<(), RunError> {
    if rows == 0 {
        return Err(RunError::Superseded(id));
    }
    Ok(())
}

/// Unique violation, deadlock or serialization failure: a concurrent writer, worth a retry.
fn retryable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| matches!(c.as_ref(), "23505" | "40P01" | "40001"))
}

/// What a staged import read: the rows written by kind and the export's digests.
struct Imported {
    written: StagedCounts,
    digests: Option<ProductDigests>,
}

/// Where an import writes the export's records.
enum Sink<'a> {
    /// The run's staging tables, merged afterwards.
    Staging(&'a mut Staging),
    /// The live tables of a shop with no catalog yet.
    Direct(&'a mut Direct),
}

impl Sink<'_> {
    async fn write(&mut self, record: &jsonl::Record<'_>) -> Result<(), RunError> {
        match self {
            Sink::Staging(s) => s.write(record).await?,
            Sink::Direct(d) => d.write(record).await?,
        }
        Ok(())
    }
}

/// Marks run `id` completed with what it did and whether it loaded `direct`ly, in the
/// transaction that did it; refused when another driver has taken the run (the transaction
/// then rolls back when dropped).
#[allow(clippy::too_many_arguments)]
async fn complete(
    tx: &mut sqlx::PgConnection,
    id: i64,
    attempt: i32,
    staged: &StagedCounts,
    merged: &MergeSummary,
    stage_time: Duration,
    merge_time: Duration,
    direct: bool,
) -> Result<(), RunError> {
    let total = merged.total();
    let completed = sqlx::query_scalar!(
        "UPDATE catalog_runs SET status = 'completed', staged = $2, merged = $3,
                inserted = $4, updated = $5, deleted = $6, stage_ms = $8, merge_ms = $9,
                direct = $10, updated_at = now(), finished_at = now()
         WHERE id = $1 AND attempt = $7 AND status = 'importing' RETURNING id",
        id,
        serde_json::to_value(staged).unwrap_or_default(),
        serde_json::to_value(merged).unwrap_or_default(),
        total.inserted as i64,
        total.updated as i64,
        total.deleted as i64,
        attempt,
        stage_time.as_millis() as i64,
        merge_time.as_millis() as i64,
        direct,
    )
    .fetch_optional(tx)
    .await?;
    completed.map(|_| ()).ok_or(RunError::Superseded(id))
}

/// The outcome of a completed import, logged.
fn completed(
    shop: &ShopDomain,
    run: Run,
    staged: StagedCounts,
    merged: MergeSummary,
    total: merge::TableChanges,
    stage_time: Duration,
    merge_time: Duration,
) -> Outcome {
    tracing::info!(
        run = run.id,
        %shop,
        inserted = total.inserted,
        updated = total.updated,
        deleted = total.deleted,
        "catalog resync completed"
    );
    Outcome {
        run,
        staged,
        merged,
        import_time: stage_time + merge_time,
        stage_time,
        merge_time,
        after_commit_time: Duration::ZERO,
    }
}

/// Timings of a runner.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Between two `bulkOperation(id:)` polls (a finish webhook wakes the runner earlier).
    pub poll_interval: Duration,
    /// Longest wait for a bulk operation.
    pub bulk_timeout: Duration,
    /// Between two progress writes to `catalog_runs` (and cancel checks) while importing;
    /// also between two reads of a watched run.
    pub progress_interval: Duration,
    /// Hosts the bulk result may be downloaded from (https only); results served by the shop's
    /// own Admin API origin (the simulator in development) are always allowed.
    pub result_hosts: Vec<String>,
    /// `wal_compression` for the merge's transaction, when the role may set it
    /// ([`merge::compress_wal`]); `None`: the server's setting.
    pub wal_compression: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            poll_interval: Duration::from_secs(5),
            bulk_timeout: Duration::from_secs(6 * 3600),
            progress_interval: Duration::from_secs(1),
            result_hosts: SHOPIFY_RESULT_HOSTS.map(String::from).to_vec(),
            wal_compression: Some("lz4".to_owned()),
        }
    }
}

/// Where an import stands, for progress bars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// JSONL lines read.
    pub lines: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// The file's size, when Shopify reported it.
    pub file_size: Option<u64>,
    /// Objects in the file, when known.
    pub objects: Option<u64>,
}

/// What a completed run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The run's final row.
    pub run: Run,
    /// Rows staged.
    pub staged: StagedCounts,
    /// What the merge did.
    pub merged: MergeSummary,
    /// Time spent importing and merging (after the bulk operation finished).
    pub import_time: Duration,
    /// Of which: download, parse and COPY into staging.
    pub stage_time: Duration,
    /// Of which: the merge transaction.
    pub merge_time: Duration,
    /// After a direct load's commit (not in `import_time`: the catalog is live and the run
    /// completed): storing its digests ([`direct::store_digests`]) and analysing the tables it
    /// filled ([`direct::analyze_live`]); zero otherwise.
    pub after_commit_time: Duration,
}

impl Outcome {
    /// The outcome of a completed run as its row stores it (what a watcher reports).
    pub fn of(run: Run) -> Outcome {
        let json = |v: &Option<serde_json::Value>| v.clone().unwrap_or_default();
        let ms = |v: Option<i64>| Duration::from_millis(v.unwrap_or(0).max(0) as u64);
        let (stage_time, merge_time) = (ms(run.stage_ms), ms(run.merge_ms));
        Outcome {
            staged: serde_json::from_value(json(&run.staged)).unwrap_or_default(),
            merged: serde_json::from_value(json(&run.merged)).unwrap_or_default(),
            import_time: stage_time + merge_time,
            stage_time,
            merge_time,
            after_commit_time: Duration::ZERO,
            run,
        }
    }
}

/// Runs resyncs against one database: `pool` for state and the merge, `copy` for the binary
/// COPY connections (tokio-postgres).
#[derive(Clone)]
pub struct Runner {
    pool: PgPool,
    copy: PgConnect,
    settings: Settings,
    /// This process, in the `driver` column of the runs it takes.
    who: String,
}

impl Runner {
    /// A runner with `settings`.
    pub fn new(pool: PgPool, copy: impl Into<PgConnect>, settings: Settings) -> Self {
        Runner {
            pool,
            copy: copy.into(),
            settings,
            who: crate::app::worker_id(),
        }
    }

    /// A runner whose COPY connections use `database_url` (the same database as `pool`), TLS
    /// as its `sslmode` says.
    pub fn from_url(
        pool: PgPool,
        database_url: &str,
        settings: Settings,
    ) -> Result<Self, PgTlsError> {
        Ok(Runner::new(
            pool,
            PgConnect::from_url(database_url)?,
            settings,
        ))
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a resync of `client`'s shop (or joins the one already active) and follows it to
    /// its end ([`Runner::follow`]). `progress` is called while importing.
    pub async fn resync(
        &self,
        client: &AdminClient,
        shop: &ShopDomain,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        let (run, _) = runs::start(&self.pool, shop).await?;
        self.follow(run.id, client, progress).await
    }

    /// Drives run `id` if no other process does, or watches it to its end otherwise.
    pub async fn follow(
        &self,
        id: i64,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        match self.drive(id, client, progress).await {
            Err(RunError::NotDriven(_)) => self.watch(id, progress).await,
            other => other,
        }
    }

    /// Takes run `id` for this process ([`driver::take`]).
    pub async fn take(&self, id: i64) -> Result<Take, RunError> {
        driver::take(&self.copy, &self.pool, id, &self.who).await
    }

    /// Drives run `id` from its stored state to its end, if no other process drives it
    /// ([`RunError::NotDriven`] otherwise). The run's row records the failure (with the JSONL
    /// line number for file errors) before the error is returned.
    ///
    /// Boxed so that the future is `Send` for any lifetime (it can be spawned).
    pub fn drive<'a>(
        &'a self,
        id: i64,
        client: &'a AdminClient,
        progress: &'a (dyn Fn(Progress) + Sync),
    ) -> Pin<Box<dyn Future<Output = Result<Outcome, RunError>> + Send + 'a>> {
        Box::pin(async move {
            match self.take(id).await? {
                Take::Driving(lease) => self.drive_lease(lease, client, progress).await,
                Take::Busy | Take::Ended => Err(RunError::NotDriven(id)),
            }
        })
    }

    /// Drives the run of `lease` from its stored state to its end; the lock is released when
    /// this returns. Stops with [`RunError::LostLock`] when the lock's connection ends.
    pub fn drive_lease<'a>(
        &'a self,
        lease: Lease,
        client: &'a AdminClient,
        progress: &'a (dyn Fn(Progress) + Sync),
    ) -> Pin<Box<dyn Future<Output = Result<Outcome, RunError>> + Send + 'a>> {
        Box::pin(self.drive_inner(lease, client, progress))
    }

    async fn drive_inner(
        &self,
        mut lease: Lease,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        let (id, attempt) = (lease.run(), lease.attempt());
        tracing::info!(run = id, attempt, driver = %self.who, "driving catalog run");
        let result = tokio::select! {
            r = self.advance(id, attempt, client, progress) => r,
            _ = lease.lost() => Err(RunError::LostLock(id)),
        };
        super::run_metrics::record(client.config().shop.as_str(), &result);
        let (status, err) = match &result {
            Ok(_) => return result,
            // Another driver has (or will have) the run: leave its row alone.
            Err(e @ (RunError::Superseded(_) | RunError::LostLock(_))) => {
                tracing::warn!(run = id, attempt, error = %e, "catalog run left to another driver");
                if let Ok(c) = copy::connect(&self.copy).await {
                    let _ = copy::drop_tables(&c, id, attempt).await;
                }
                return result;
            }
            Err(RunError::Canceled | RunError::ReportOnly(_)) => ("canceled", None),
            Err(e) => ("failed", Some(e)),
        };
        if let Some(e) = err {
            tracing::warn!(run = id, error = %e, "catalog run failed");
        }
        let ended = sqlx::query!(
            "UPDATE catalog_runs SET status = $2, error = $3, error_line = $4,
                    updated_at = now(), finished_at = now()
             WHERE id = $1 AND attempt = $5 AND status IN ('starting', 'waiting', 'importing')",
            id,
            status,
            err.map(|e| e.to_string()),
            err.and_then(RunError::line).map(|l| l as i64),
            attempt,
        )
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        if let Ok(c) = copy::connect(&self.copy).await {
            let _ = if ended {
                copy::drop_run_tables(&c, id).await
            } else {
                copy::drop_tables(&c, id, attempt).await
            };
        }
        drop(lease);
        result
    }

    /// Follows run `id`, driven by another process, by reading its row every
    /// `progress_interval` until it ends; the outcome is the one its driver stored.
    pub async fn watch(
        &self,
        id: i64,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        loop {
            let run = self.load(id).await?;
            match run.status {
                RunStatus::Completed => return Ok(Outcome::of(run)),
                RunStatus::Canceled => return Err(RunError::Canceled),
                RunStatus::Failed => {
                    return Err(RunError::Failed(
                        run.error.unwrap_or_else(|| "failed".into()),
                    ))
                }
                RunStatus::Importing => progress(Progress {
                    lines: run.lines_read as u64,
                    bytes: run.bytes_read as u64,
                    file_size: run.file_size.map(|s| s as u64),
                    objects: run.bulk_object_count.filter(|n| *n > 0).map(|n| n as u64),
                }),
                _ => {}
            }
            tokio::time::sleep(self.settings.progress_interval).await;
        }
    }

    async fn load(&self, id: i64) -> Result<Run, RunError> {
        runs::get(&self.pool, id)
            .await?
            .ok_or(RunError::NotFound(id))
    }

    async fn advance(
        &self,
        id: i64,
        attempt: i32,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        let mut run = self.load(id).await?;
        if run.status == RunStatus::Starting {
            if run.cancel_requested {
                return Err(RunError::Canceled);
            }
            self.start_bulk(&run, attempt, client).await?;
            run = self.load(id).await?;
        }
        let Some(bulk_id) = run.bulk_operation_id.clone() else {
            return Err(RunError::NotFound(id));
        };
        let op = self.wait(&run, attempt, &bulk_id, client).await?;
        let snapshot = OffsetDateTime::parse(&op.created_at, &Rfc3339).unwrap_or(run.created_at);
        self.import(id, attempt, &run.shop, snapshot, &op, client, progress)
            .await
    }

    /// Starts the bulk operation, adopting one this run already started if a previous attempt
    /// lost the answer (crash or unknown outcome).
    async fn start_bulk(
        &self,
        run: &Run,
        attempt: i32,
        client: &AdminClient,
    ) -> Result<(), RunError> {
        let since = run.created_at - Duration::from_secs(5);
        let op = match client.current_bulk_operation().await? {
            Some(op) if adoptable(&op, since) => op,
            _ => match client.bulk_run_query(BULK_QUERY, false).await {
                Ok(op) => op,
                Err(AdminError::OutcomeUnknown(_)) => {
                    match client.current_bulk_operation().await? {
                        Some(op) if adoptable(&op, since) => op,
                        _ => {
                            return Err(
                                AdminError::Decode("bulk operation not started".into()).into()
                            )
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            },
        };
        tracing::info!(run = run.id, bulk = %op.id, "catalog bulk operation started");
        let n = sqlx::query!(
            "UPDATE catalog_runs SET status = 'waiting', bulk_operation_id = $2,
                    snapshot_at = $3::text::timestamptz, bulk_status = $4, updated_at = now()
             WHERE id = $1 AND attempt = $5",
            run.id,
            op.id,
            op.created_at,
            format!("{:?}", op.status).to_ascii_uppercase(),
            attempt,
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        fenced(n, run.id)
    }

    /// Waits for the bulk operation to finish: polls, or wakes on the finish webhook.
    async fn wait(
        &self,
        run: &Run,
        attempt: i32,
        bulk_id: &str,
        client: &AdminClient,
    ) -> Result<BulkOperation, RunError> {
        let mut listener = crate::listener::listen(&self.pool, FINISHED_CHANNEL).await?;
        let started = Instant::now();
        loop {
            let cancel = sqlx::query_scalar!(
                "SELECT cancel_requested FROM catalog_runs WHERE id = $1",
                run.id
            )
            .fetch_one(&self.pool)
            .await?;
            let op = match client.bulk_operation(bulk_id).await {
                // The bulk operation goes on at Shopify: wait for the breaker, not give up.
                Err(AdminError::CircuitOpen { retry_in })
                    if started.elapsed() + retry_in < self.settings.bulk_timeout =>
                {
                    tracing::warn!(
                        run = run.id,
                        ?retry_in,
                        "catalog run waits: the shop's Shopify circuit is open"
                    );
                    tokio::time::sleep(retry_in).await;
                    continue;
                }
                op => op?.ok_or_else(|| {
                    AdminError::Decode(format!("bulk operation {bulk_id} not found"))
                })?,
            };
            let n = sqlx::query!(
                "UPDATE catalog_runs SET bulk_status = $2, bulk_object_count = $3, file_size = $4,
                        updated_at = now()
                 WHERE id = $1 AND attempt = $5",
                run.id,
                format!("{:?}", op.status).to_ascii_uppercase(),
                op.object_count as i64,
                op.file_size.map(|s| s as i64),
                attempt,
            )
            .execute(&self.pool)
            .await?
            .rows_affected();
            fenced(n, run.id)?;
            match op.status {
                BulkStatus::Completed if !cancel => return Ok(op),
                BulkStatus::Completed | BulkStatus::Canceled => return Err(RunError::Canceled),
                BulkStatus::Failed | BulkStatus::Expired => {
                    return Err(RunError::BulkFailed {
                        id: op.id,
                        status: op.status,
                        code: op.error_code.unwrap_or_else(|| "no error code".into()),
                    })
                }
                BulkStatus::Created | BulkStatus::Running if cancel => {
                    client.bulk_cancel(bulk_id).await?;
                }
                _ => {}
            }
            if started.elapsed() > self.settings.bulk_timeout {
                return Err(RunError::BulkTimeout(bulk_id.to_owned()));
            }
            // A notification for any run wakes us; the poll above reads our own state.
            let _ = tokio::time::timeout(self.settings.poll_interval, listener.recv()).await;
        }
    }

    /// Loads the result: straight into the live tables when the shop has no catalog yet
    /// ([`direct`]; a webhook's row on one of its keys sends it through staging after all),
    /// otherwise into staging, then merged.
    #[allow(clippy::too_many_arguments)]
    async fn import(
        &self,
        id: i64,
        attempt: i32,
        shop: &ShopDomain,
        snapshot: OffsetDateTime,
        op: &BulkOperation,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        let started = Instant::now();
        let n = sqlx::query!(
            "UPDATE catalog_runs SET status = 'importing', lines_read = 0, bytes_read = 0,
                    updated_at = now()
             WHERE id = $1 AND attempt = $2",
            id,
            attempt,
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        fenced(n, id)?;
        if let Some(direct) = direct::begin(&self.pool, id, shop).await? {
            match self
                .load_direct(id, attempt, shop, op, client, progress, direct)
                .await
            {
                Err(RunError::Direct(DirectError::Database(e))) if retryable(&e) => {
                    tracing::warn!(run = id, error = %e,
                        "a webhook wrote the catalog during the direct load; importing through staging");
                }
                other => return other,
            }
        }
        let mut staging = Staging::open(&self.copy, id, attempt).await?;
        let sink = Sink::Staging(&mut staging);
        let digests = self
            .read_export(id, attempt, op, client, progress, sink)
            .await?;
        let staged = staging.finish().await?;
        if staged.copied != staged.written {
            return Err(RunError::StagingMismatch {
                written: staged.written,
                found: staged.copied,
            });
        }
        let imported = Imported {
            written: staged.written,
            digests,
        };
        let stage_time = started.elapsed();
        // A webhook that commits a conflicting row mid-merge (unique violation, deadlock)
        // rolls the merge back; the staged rows are still there, so it is simply run again.
        let mut tries = 0;
        let (run, staged, merged, total) = loop {
            tries += 1;
            match self
                .merge_and_complete(id, attempt, shop, snapshot, &imported, stage_time)
                .await
            {
                Err(RunError::Merge(MergeError::Database(e)) | RunError::Database(e))
                    if tries < 3 && retryable(&e) =>
                {
                    tracing::warn!(run = id, error = %e, tries, "catalog merge retried");
                }
                other => break other?,
            }
        };
        let merge_time = started.elapsed() - stage_time;
        if let Ok(c) = copy::connect(&self.copy).await {
            let _ = copy::drop_run_tables(&c, id).await;
        }
        Ok(completed(
            shop, run, staged, merged, total, stage_time, merge_time,
        ))
    }

    /// The direct load: the export into the live tables, then the run's `completed` status
    /// in the same transaction.
    #[allow(clippy::too_many_arguments)]
    async fn load_direct(
        &self,
        id: i64,
        attempt: i32,
        shop: &ShopDomain,
        op: &BulkOperation,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
        mut direct: Direct,
    ) -> Result<Outcome, RunError> {
        let started = Instant::now();
        let sink = Sink::Direct(&mut direct);
        let digests = self
            .read_export(id, attempt, op, client, progress, sink)
            .await?;
        let stage_time = started.elapsed();
        let mut loaded = direct.finish().await?;
        let total = loaded.merged.total();
        complete(
            &mut loaded.tx,
            id,
            attempt,
            &loaded.staged,
            &loaded.merged,
            stage_time,
            started.elapsed() - stage_time,
            true,
        )
        .await?;
        loaded.tx.commit().await?;
        let merge_time = started.elapsed() - stage_time;
        let after_commit = Instant::now();
        if let Some(d) = &digests {
            direct::store_digests(&self.pool, shop, id, d).await;
        }
        direct::analyze_live(&self.pool, id).await;
        let after_commit_time = after_commit.elapsed();
        let run = runs::get(&self.pool, id)
            .await?
            .ok_or(RunError::Superseded(id))?;
        Ok(Outcome {
            after_commit_time,
            ..completed(
                shop,
                run,
                loaded.staged,
                loaded.merged,
                total,
                stage_time,
                merge_time,
            )
        })
    }

    /// Streams the export into `sink`, reporting progress, and checks it is complete; returns
    /// its digests ([`Digests`]).
    async fn read_export(
        &self,
        id: i64,
        attempt: i32,
        op: &BulkOperation,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
        mut sink: Sink<'_>,
    ) -> Result<Option<ProductDigests>, RunError> {
        let url = op
            .url
            .as_deref()
            .ok_or_else(|| AdminError::Decode("completed bulk operation without url".into()))?;
        let mut reader = client
            .download_jsonl(url, &self.settings.result_hosts)
            .await?;
        let mut p = Progress {
            file_size: op.file_size,
            objects: Some(op.object_count).filter(|n| *n > 0),
            ..Progress::default()
        };
        let mut last_report = Instant::now();
        let mut digests = Digests::default();
        while let Some(line) = reader.next_line().await? {
            p.lines = line.number;
            if !line.terminated {
                return Err(RunError::Truncated {
                    line: line.number,
                    reason: format!(
                        "line {} ends without a newline: the file was cut",
                        line.number
                    ),
                });
            }
            if line.bytes.is_empty() {
                continue;
            }
            let record = jsonl::parse(line.number, line.bytes)?;
            digests.add(&record, line.bytes);
            sink.write(&record).await?;
            // The clock is read every 64 lines, not on every line.
            if line.number % 64 == 0 && last_report.elapsed() >= self.settings.progress_interval {
                last_report = Instant::now();
                p.bytes = reader.bytes_read();
                progress(p);
                self.report(id, attempt, p).await?;
            }
        }
        p.bytes = reader.bytes_read();
        if let Some(size) = op.file_size.filter(|s| *s != p.bytes) {
            return Err(RunError::Truncated {
                line: p.lines,
                reason: format!(
                    "received {} bytes of {size} (after line {})",
                    p.bytes, p.lines
                ),
            });
        }
        if op.object_count > 0 && op.object_count != p.lines {
            return Err(RunError::Truncated {
                line: p.lines,
                reason: format!("{} lines of {} objects", p.lines, op.object_count),
            });
        }
        progress(p);
        self.report(id, attempt, p).await?;
        Ok(digests.finish())
    }

    /// The merge and the run's `completed` status, in one transaction; refused when the
    /// staging tables do not hold what was written or another driver has taken the run.
    async fn merge_and_complete(
        &self,
        id: i64,
        attempt: i32,
        shop: &ShopDomain,
        snapshot: OffsetDateTime,
        imported: &Imported,
        stage_time: Duration,
    ) -> Result<(Run, StagedCounts, MergeSummary, merge::TableChanges), RunError> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        if let Some(method) = &self.settings.wal_compression {
            merge::compress_wal(&mut tx, method).await?;
        }
        let digests = imported.digests.as_ref();
        let written = &imported.written;
        let merged = merge::merge(&mut tx, id, attempt, shop, snapshot, digests, written).await;
        let (staged, merged) = match merged {
            // The findings commit; the run ends without merging.
            Err(MergeError::ReportOnly) => {
                sqlx::query!(
                    "UPDATE catalog_runs SET status = 'canceled', error = $3, updated_at = now(),
                            finished_at = now()
                     WHERE id = $1 AND attempt = $2 AND status = 'importing'",
                    id,
                    attempt,
                    RunError::ReportOnly(id).to_string(),
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Err(RunError::ReportOnly(id));
            }
            other => other?,
        };
        if staged != *written {
            return Err(RunError::StagingMismatch {
                written: *written,
                found: staged,
            });
        }
        let total = merged.total();
        complete(
            &mut tx,
            id,
            attempt,
            &staged,
            &merged,
            stage_time,
            started.elapsed(),
            false,
        )
        .await?;
        tx.commit().await?;
        let run = runs::get(&self.pool, id)
            .await?
            .ok_or(RunError::Superseded(id))?;
        Ok((run, staged, merged, total))
    }

    /// Stores progress and stops if a cancel was requested.
    async fn report(&self, id: i64, attempt: i32, p: Progress) -> Result<(), RunError> {
        let cancel = sqlx::query_scalar!(
            "UPDATE catalog_runs SET lines_read = $2, bytes_read = $3, updated_at = now()
             WHERE id = $1 AND attempt = $4 RETURNING cancel_requested",
            id,
            p.lines as i64,
            p.bytes as i64,
            attempt,
        )
        .fetch_optional(&self.pool)
        .await?;
        if cancel.ok_or(RunError::Superseded(id))? {
            return Err(RunError::Canceled);
        }
        Ok(())
    }
}
