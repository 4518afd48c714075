//! Driving one resync run through its states: start the bulk operation, wait for it (poll
//! `bulkOperation(id:)`, woken early by the finish webhook), stream the JSONL into staging,
//! merge. Every transition is stored in `catalog_runs` first, so a new process resumes a run
//! from its row: a run that was waiting keeps waiting for the same bulk operation, a run that
//! was importing re-imports the same file (its staging tables are recreated; the merge and the
//! `completed` status commit together, so a merge never happens twice).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_shopify_admin::bulk::{BulkOperation, BulkStatus};
use wholesail_shopify_admin::{AdminClient, AdminError};

use super::copy::{self, StagedCounts, Staging};
use super::jsonl::{self, LineError};
use super::merge::{self, MergeError, MergeSummary};
use super::runs::{self, Run, FINISHED_CHANNEL};
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
    /// The merge failed or was refused.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// An operator canceled the run.
    #[error("canceled")]
    Canceled,
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

/// Unique violation, deadlock or serialization failure: a concurrent writer, worth a retry.
fn retryable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| matches!(c.as_ref(), "23505" | "40P01" | "40001"))
}

/// Timings of a runner.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Between two `bulkOperation(id:)` polls (a finish webhook wakes the runner earlier).
    pub poll_interval: Duration,
    /// Longest wait for a bulk operation.
    pub bulk_timeout: Duration,
    /// Between two progress writes to `catalog_runs` (and cancel checks) while importing.
    pub progress_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            poll_interval: Duration::from_secs(5),
            bulk_timeout: Duration::from_secs(6 * 3600),
            progress_interval: Duration::from_secs(1),
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
}

/// Runs resyncs against one database: `pool` for state and the merge, `copy` for the binary
/// COPY connections (tokio-postgres).
#[derive(Clone)]
pub struct Runner {
    pool: PgPool,
    copy: PgConnect,
    settings: Settings,
}

impl Runner {
    /// A runner with `settings`.
    pub fn new(pool: PgPool, copy: impl Into<PgConnect>, settings: Settings) -> Self {
        Runner {
            pool,
            copy: copy.into(),
            settings,
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

    /// Starts a resync of `client`'s shop (or joins the one already active) and drives it to
    /// its end. `progress` is called while importing.
    pub async fn resync(
        &self,
        client: &AdminClient,
        shop: &str,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        let (run, _) = runs::start(&self.pool, shop).await?;
        self.drive(run.id, client, progress).await
    }

    /// Drives run `id` from its stored state to its end. The run's row records the failure
    /// (with the JSONL line number for file errors) before the error is returned.
    ///
    /// Boxed so that the future is `Send` for any lifetime (it can be spawned).
    pub fn drive<'a>(
        &'a self,
        id: i64,
        client: &'a AdminClient,
        progress: &'a (dyn Fn(Progress) + Sync),
    ) -> Pin<Box<dyn Future<Output = Result<Outcome, RunError>> + Send + 'a>> {
        Box::pin(self.drive_inner(id, client, progress))
    }

    async fn drive_inner(
        &self,
        id: i64,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        let result = self.advance(id, client, progress).await;
        let (status, err) = match &result {
            Ok(_) => return result,
            Err(RunError::Canceled) => ("canceled", None),
            Err(e) => ("failed", Some(e)),
        };
        if let Some(e) = err {
            tracing::warn!(run = id, error = %e, "catalog run failed");
        }
        sqlx::query(
            "UPDATE catalog_runs SET status = $2, error = $3, error_line = $4,
                    updated_at = now(), finished_at = now()
             WHERE id = $1 AND status IN ('starting', 'waiting', 'importing')",
        )
        .bind(id)
        .bind(status)
        .bind(err.map(|e| e.to_string()))
        .bind(err.and_then(RunError::line).map(|l| l as i64))
        .execute(&self.pool)
        .await?;
        if let Ok(c) = copy::connect(&self.copy).await {
            let _ = copy::drop_tables(&c, id).await;
        }
        result
    }

    async fn load(&self, id: i64) -> Result<Run, RunError> {
        runs::get(&self.pool, id)
            .await?
            .ok_or(RunError::NotFound(id))
    }

    async fn advance(
        &self,
        id: i64,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        let mut run = self.load(id).await?;
        if run.status == "starting" {
            if run.cancel_requested {
                return Err(RunError::Canceled);
            }
            self.start_bulk(&run, client).await?;
            run = self.load(id).await?;
        }
        let Some(bulk_id) = run.bulk_operation_id.clone() else {
            return Err(RunError::NotFound(id));
        };
        let op = self.wait(&run, &bulk_id, client).await?;
        let snapshot = OffsetDateTime::parse(&op.created_at, &Rfc3339).unwrap_or(run.created_at);
        self.import(id, &run.shop, snapshot, &op, client, progress)
            .await
    }

    /// Starts the bulk operation, adopting one this run already started if a previous attempt
    /// lost the answer (crash or unknown outcome).
    async fn start_bulk(&self, run: &Run, client: &AdminClient) -> Result<(), RunError> {
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
        sqlx::query(
            "UPDATE catalog_runs SET status = 'waiting', bulk_operation_id = $2,
                    snapshot_at = $3::timestamptz, bulk_status = $4, updated_at = now()
             WHERE id = $1",
        )
        .bind(run.id)
        .bind(&op.id)
        .bind(&op.created_at)
        .bind(format!("{:?}", op.status).to_ascii_uppercase())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Waits for the bulk operation to finish: polls, or wakes on the finish webhook.
    async fn wait(
        &self,
        run: &Run,
        bulk_id: &str,
        client: &AdminClient,
    ) -> Result<BulkOperation, RunError> {
        let mut listener = crate::listener::listen(&self.pool, FINISHED_CHANNEL).await?;
        let started = Instant::now();
        loop {
            let cancel: bool =
                sqlx::query_scalar("SELECT cancel_requested FROM catalog_runs WHERE id = $1")
                    .bind(run.id)
                    .fetch_one(&self.pool)
                    .await?;
            let op = client
                .bulk_operation(bulk_id)
                .await?
                .ok_or_else(|| AdminError::Decode(format!("bulk operation {bulk_id} not found")))?;
            sqlx::query(
                "UPDATE catalog_runs SET bulk_status = $2, bulk_object_count = $3, file_size = $4,
                        updated_at = now()
                 WHERE id = $1",
            )
            .bind(run.id)
            .bind(format!("{:?}", op.status).to_ascii_uppercase())
            .bind(op.object_count as i64)
            .bind(op.file_size.map(|s| s as i64))
            .execute(&self.pool)
            .await?;
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

    /// Streams the result into staging, checks it is complete, and merges it.
    async fn import(
        &self,
        id: i64,
        shop: &str,
        snapshot: OffsetDateTime,
        op: &BulkOperation,
        client: &AdminClient,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Outcome, RunError> {
        let started = Instant::now();
        sqlx::query(
            "UPDATE catalog_runs SET status = 'importing', lines_read = 0, bytes_read = 0,
                    updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        let url = op
            .url
            .as_deref()
            .ok_or_else(|| AdminError::Decode("completed bulk operation without url".into()))?;
        let mut staging = Staging::open(&self.copy, id).await?;
        let mut reader = client.download_jsonl(url).await?;
        let mut p = Progress {
            file_size: op.file_size,
            objects: Some(op.object_count).filter(|n| *n > 0),
            ..Progress::default()
        };
        let mut last_report = Instant::now();
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
            staging.write(&record).await?;
            // The clock is read every 64 lines, not on every line.
            if line.number % 64 == 0 && last_report.elapsed() >= self.settings.progress_interval {
                last_report = Instant::now();
                p.bytes = reader.bytes_read();
                progress(p);
                self.report(id, p).await?;
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
        self.report(id, p).await?;
        let staged = staging.finish().await?;
        let stage_time = started.elapsed();
        // A webhook that commits a conflicting row mid-merge (unique violation, deadlock)
        // rolls the merge back; the staged rows are still there, so it is simply run again.
        let mut attempt = 0;
        let (run, merged, total) = loop {
            attempt += 1;
            match self.merge_and_complete(id, shop, snapshot, &staged).await {
                Err(RunError::Merge(MergeError::Database(e)) | RunError::Database(e))
                    if attempt < 3 && retryable(&e) =>
                {
                    tracing::warn!(run = id, error = %e, attempt, "catalog merge retried");
                }
                other => break other?,
            }
        };
        let merge_time = started.elapsed() - stage_time;
        if let Ok(c) = copy::connect(&self.copy).await {
            let _ = copy::drop_tables(&c, id).await;
        }
        tracing::info!(
            run = id,
            shop,
            inserted = total.inserted,
            updated = total.updated,
            deleted = total.deleted,
            "catalog resync completed"
        );
        Ok(Outcome {
            run,
            staged,
            merged,
            import_time: started.elapsed(),
            stage_time,
            merge_time,
        })
    }

    /// The merge and the run's `completed` status, in one transaction.
    async fn merge_and_complete(
        &self,
        id: i64,
        shop: &str,
        snapshot: OffsetDateTime,
        staged: &StagedCounts,
    ) -> Result<(Run, MergeSummary, merge::TableChanges), RunError> {
        let mut tx = self.pool.begin().await?;
        let merged = merge::merge(&mut tx, id, shop, snapshot, staged).await?;
        let total = merged.total();
        let run: Run = sqlx::query_as(
            "UPDATE catalog_runs SET status = 'completed', staged = $2, merged = $3,
                    inserted = $4, updated = $5, deleted = $6,
                    updated_at = now(), finished_at = now()
             WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(serde_json::to_value(staged).unwrap_or_default())
        .bind(serde_json::to_value(merged).unwrap_or_default())
        .bind(total.inserted as i64)
        .bind(total.updated as i64)
        .bind(total.deleted as i64)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((run, merged, total))
    }

    /// Stores progress and stops if a cancel was requested.
    async fn report(&self, id: i64, p: Progress) -> Result<(), RunError> {
        let cancel: bool = sqlx::query_scalar(
            "UPDATE catalog_runs SET lines_read = $2, bytes_read = $3, updated_at = now()
             WHERE id = $1 RETURNING cancel_requested",
        )
        .bind(id)
        .bind(p.lines as i64)
        .bind(p.bytes as i64)
        .fetch_one(&self.pool)
        .await?;
        if cancel {
            return Err(RunError::Canceled);
        }
        Ok(())
    }
}
