//! The job and part rows (`migrations/0030_draft_orders.sql`): submitting a quote, claiming
//! due work with a lease, and every state change — each one a single statement or
//! transaction that only succeeds while the caller still holds the job's lease.

use std::time::Duration;

use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use super::plan::{Line, PartPlan};
use super::quote::{job_id, QuoteRequest, QuoteViolation};

/// NOTIFY channel that wakes the job loops when a quote is submitted.
pub const CHANNEL: &str = "wholesail_draft_orders";

/// Why a submission was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The quote id was used before for a different quote, or by another token.
    #[error(
        "quote {quote_id} was already submitted with different content or by another token (job {job})"
    )]
    Conflict {
        /// The existing job.
        job: String,
        /// The quote id.
        quote_id: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Stores `quote` as a new job of `token` (`None`: the CLI), or returns the job already
/// stored for its quote id (`false`: not created). The same quote id with different content,
/// or submitted by another token, is a [`SubmitError::Conflict`].
pub async fn submit(
    pool: &PgPool,
    quote: &QuoteRequest,
    token: Option<i64>,
) -> Result<(String, bool), SubmitError> {
    let id = job_id(&quote.shop, &quote.quote_id);
    let request = serde_json::to_value(quote).expect("a quote serialises");
    let mut tx = pool.begin().await?;
    let created = sqlx::query!(
        "INSERT INTO draft_order_jobs
             (id, shop, quote_id, company_location_id, request, callback_url, token_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT DO NOTHING",
        id,
        quote.shop.as_str(),
        quote.quote_id,
        quote.company_location_id,
        request,
        quote.callback_url,
        token
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if created {
        sqlx::query!("SELECT 1 AS notified FROM pg_notify($1, $2)", CHANNEL, id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok((id, true));
    }
    tx.rollback().await?;
    let stored = sqlx::query!(
        "SELECT request, token_id FROM draft_order_jobs WHERE id = $1",
        id
    )
    .fetch_one(pool)
    .await?;
    if stored.request == request && stored.token_id == token {
        Ok((id, false))
    } else {
        Err(SubmitError::Conflict {
            job: id,
            quote_id: quote.quote_id.clone(),
        })
    }
}

/// The token that submitted `job` (`None`: no such job, or submitted by the CLI).
pub async fn owner(pool: &PgPool, job: &str) -> Result<Option<i64>, sqlx::Error> {
    let owner = sqlx::query_scalar!("SELECT token_id FROM draft_order_jobs WHERE id = $1", job)
        .fetch_optional(pool)
        .await?;
    Ok(owner.flatten())
}

/// A job's state (the `draft_order_jobs.status` text column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Being priced, planned or created.
    Processing,
    /// Every draft exists.
    Completed,
    /// The quote broke the buyer's rules: nothing was created.
    Rejected,
    /// Shopify or the stored rules failed for good.
    Failed,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Processing => "processing",
            JobState::Completed => "completed",
            JobState::Rejected => "rejected",
            JobState::Failed => "failed",
        })
    }
}

/// A job claimed by a loop.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Job id.
    pub id: String,
    /// Shop.
    pub shop: ShopDomain,
    /// The quote as submitted.
    pub request: Json<QuoteRequest>,
    /// `processing`, or an ended state whose callback is due.
    pub status: JobState,
    /// Whether the parts are written.
    pub planned: bool,
    /// Shop currency, once planned.
    pub currency: Option<String>,
    /// Number of parts, once planned.
    pub parts_total: Option<i32>,
    /// Processing claims so far, this one included.
    pub attempts: i32,
    /// Callback attempts so far, this one included when the callback is what is due.
    pub callback_attempts: i32,
}

/// Claims the most overdue job that has work (processing, or a callback to deliver) and is
/// not leased, for `worker`, for `lease`. An expired lease (a crashed worker) is claimable.
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        r#"UPDATE draft_order_jobs j
         SET locked_by = $1, locked_until = now() + $2 * interval '1 millisecond',
             attempts = j.attempts + (j.status = 'processing')::int,
             callback_attempts = j.callback_attempts + (j.status <> 'processing')::int,
             updated_at = now()
         FROM (SELECT id FROM draft_order_jobs
               WHERE (status = 'processing' OR callback_state = 'pending')
                 AND run_at <= now()
                 AND (locked_until IS NULL OR locked_until < now())
               ORDER BY run_at
               LIMIT 1
               FOR UPDATE SKIP LOCKED) due
         WHERE j.id = due.id
         RETURNING j.id, j.shop AS "shop: ShopDomain", j.request AS "request: Json<QuoteRequest>",
                   j.status AS "status: JobState", j.planned_at IS NOT NULL AS "planned!",
                   j.currency, j.parts_total, j.attempts, j.callback_attempts"#,
        worker,
        lease.as_millis() as f64
    )
    .fetch_optional(pool)
    .await
}

/// Extends `worker`'s lease on `job`; `false` when the lease was lost (another worker may
/// have the job now: stop touching it).
pub async fn renew(
    pool: &PgPool,
    job: &str,
    worker: &str,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE draft_order_jobs SET locked_until = now() + $3 * interval '1 millisecond'
         WHERE id = $1 AND locked_by = $2",
        job,
        worker,
        lease.as_millis() as f64
    )
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Locks the job row if `worker` still holds it, inside `tx`.
async fn hold(
    tx: &mut Transaction<'_, Postgres>,
    job: &str,
    worker: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM draft_order_jobs WHERE id = $1 AND locked_by = $2 FOR UPDATE",
        job,
        worker
    )
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

/// Writes the parts of `job` and its totals in one transaction; `false` when the lease was
/// lost (nothing written).
pub async fn record_plan(
    pool: &PgPool,
    job: &str,
    worker: &str,
    currency: &str,
    parts: &[PartPlan],
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !hold(&mut tx, job, worker).await? {
        return Ok(false);
    }
    let total: u64 = parts.iter().map(PartPlan::total_cents).sum();
    for p in parts {
        sqlx::query!(
            "INSERT INTO draft_order_parts
                 (shop, job_id, part, key, lines, line_count, shipping_cents, total_cents)
             SELECT j.shop, $1, $2, $3, $4, $5, $6, $7 FROM draft_order_jobs j WHERE j.id = $1",
            job,
            p.part as i32,
            p.key,
            Json(&p.lines) as _,
            p.lines.len() as i32,
            p.shipping_cents as i64,
            p.total_cents() as i64
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "UPDATE draft_order_jobs
         SET planned_at = now(), currency = $2, quote_total_cents = $3, parts_total = $4,
             updated_at = now()
         WHERE id = $1",
        job,
        currency,
        total as i64,
        parts.len() as i32
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// A stored part still to be created.
#[derive(Debug, Clone)]
pub struct PendingPart {
    /// 1-based.
    pub part: i32,
    /// Deterministic key.
    pub key: String,
    /// Its lines.
    pub lines: Json<Vec<Line>>,
    /// Shipping it carries.
    pub shipping_cents: i64,
    /// Lines plus shipping.
    pub total_cents: i64,
    /// Whether a `draftOrderCreate` was ever sent for it (it may exist in Shopify).
    pub create_sent: bool,
}

impl PendingPart {
    /// As a plan again.
    pub fn plan(self) -> PartPlan {
        PartPlan {
            part: self.part as u32,
            key: self.key,
            lines: self.lines.0,
            shipping_cents: self.shipping_cents as u64,
        }
    }
}

/// The parts of `job` without a draft yet, in order.
pub async fn pending_parts(pool: &PgPool, job: &str) -> Result<Vec<PendingPart>, sqlx::Error> {
    sqlx::query_as!(
        PendingPart,
        r#"SELECT part, key, lines AS "lines: Json<Vec<Line>>", shipping_cents, total_cents,
                  create_sent_at IS NOT NULL AS "create_sent!"
           FROM draft_order_parts
           WHERE job_id = $1 AND draft_id IS NULL ORDER BY part"#,
        job
    )
    .fetch_all(pool)
    .await
}

/// Marks that a `draftOrderCreate` is about to be sent for `part` (from now on the part may
/// exist in Shopify without being recorded); `false` when the lease was lost (do not send).
pub async fn mark_create_sent(
    pool: &PgPool,
    job: &str,
    worker: &str,
    part: i32,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE draft_order_parts p SET create_sent_at = now()
         FROM draft_order_jobs j
         WHERE p.job_id = $1 AND p.part = $2 AND j.id = p.job_id AND j.locked_by = $3",
        job,
        part,
        worker
    )
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// The draft that exists in Shopify for a part.
#[derive(Debug, Clone)]
pub struct CreatedDraft {
    /// Draft gid.
    pub id: String,
    /// `#D…`.
    pub name: String,
    /// Checkout link.
    pub invoice_url: Option<String>,
    /// What Shopify says the draft totals, in cents.
    pub total_cents: Option<u64>,
    /// Found by its tag rather than created by this attempt.
    pub recovered: bool,
}

/// Records the draft of `part` and counts it in the job's progress, in one transaction;
/// `false` when the lease was lost (nothing recorded; the next holder finds the draft by tag).
pub async fn record_part(
    pool: &PgPool,
    job: &str,
    worker: &str,
    part: i32,
    draft: &CreatedDraft,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !hold(&mut tx, job, worker).await? {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE draft_order_parts
         SET draft_id = $3, draft_name = $4, invoice_url = $5, shopify_total_cents = $6,
             recovered = $7, created_at = now()
         WHERE job_id = $1 AND part = $2 AND draft_id IS NULL",
        job,
        part,
        draft.id,
        draft.name,
        draft.invoice_url,
        draft.total_cents.map(|c| c as i64),
        draft.recovered
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE draft_order_jobs SET updated_at = now(),
             parts_created = (SELECT count(*) FROM draft_order_parts
                              WHERE job_id = $1 AND draft_id IS NOT NULL)
         WHERE id = $1",
        job
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// A draft whose invoice is still to be sent.
#[derive(Debug, Clone)]
pub struct UnsentInvoice {
    /// 1-based part number.
    pub part: i32,
    /// Draft gid.
    pub draft_id: String,
}

/// Drafts of `job` whose invoice is still to be sent, in part order.
pub async fn invoices_to_send(pool: &PgPool, job: &str) -> Result<Vec<UnsentInvoice>, sqlx::Error> {
    sqlx::query_as!(
        UnsentInvoice,
        r#"SELECT part, draft_id AS "draft_id!" FROM draft_order_parts
           WHERE job_id = $1 AND draft_id IS NOT NULL AND invoice_sent_at IS NULL
           ORDER BY part"#,
        job
    )
    .fetch_all(pool)
    .await
}

/// Records that the invoice of `part` was sent.
pub async fn record_invoice_sent(pool: &PgPool, job: &str, part: i32) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE draft_order_parts SET invoice_sent_at = now() WHERE job_id = $1 AND part = $2",
        job,
        part
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// How a job ends.
#[derive(Debug, Clone)]
pub enum End {
    /// Every draft exists.
    Completed,
    /// The quote breaks rules: every violation.
    Rejected(Vec<QuoteViolation>),
    /// Gave up: the reason.
    Failed(String),
}

/// Ends `job` (if `worker` holds it), releases it, and makes its callback due now when it has
/// a callback URL. `false` when the lease was lost.
pub async fn finish(
    pool: &PgPool,
    job: &str,
    worker: &str,
    end: &End,
) -> Result<bool, sqlx::Error> {
    let (status, violations, error) = match end {
        End::Completed => (JobState::Completed, None, None),
        End::Rejected(v) => (JobState::Rejected, Some(Json(v)), None),
        End::Failed(reason) => (JobState::Failed, None, Some(reason.as_str())),
    };
    Ok(sqlx::query!(
        "UPDATE draft_order_jobs
         SET status = $3, violations = $4, error = $5, finished_at = now(), updated_at = now(),
             locked_by = NULL, locked_until = NULL, run_at = now(),
             callback_state = CASE WHEN callback_url IS NULL THEN 'none' ELSE 'pending' END
         WHERE id = $1 AND locked_by = $2",
        job,
        worker,
        status as JobState,
        violations as _,
        error
    )
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Releases `job` to be retried after `delay`, keeping `error` visible in its status.
pub async fn retry_later(
    pool: &PgPool,
    job: &str,
    worker: &str,
    delay: Duration,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE draft_order_jobs
         SET run_at = now() + $3 * interval '1 millisecond', error = $4,
             locked_by = NULL, locked_until = NULL, updated_at = now()
         WHERE id = $1 AND locked_by = $2",
        job,
        worker,
        delay.as_millis() as f64,
        error
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a callback attempt: delivered, to be retried after the delay, or given up.
pub async fn record_callback(
    pool: &PgPool,
    job: &str,
    worker: &str,
    outcome: Result<(), (String, Option<Duration>)>,
) -> Result<(), sqlx::Error> {
    let (state, error, delay) = match &outcome {
        Ok(()) => ("delivered", None, Duration::ZERO),
        Err((e, Some(d))) => ("pending", Some(e.as_str()), *d),
        Err((e, None)) => ("failed", Some(e.as_str()), Duration::ZERO),
    };
    sqlx::query!(
        "UPDATE draft_order_jobs
         SET callback_state = $3, callback_error = $4,
             run_at = now() + $5 * interval '1 millisecond',
             locked_by = NULL, locked_until = NULL, updated_at = now()
         WHERE id = $1 AND locked_by = $2",
        job,
        worker,
        state,
        error,
        delay.as_millis() as f64
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Returns every lease `worker` holds (at shutdown), so other processes need not wait for
/// them to expire.
pub async fn release(pool: &PgPool, worker: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE draft_order_jobs SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1",
        worker
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// Progress of a job.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Drafts that exist.
    pub parts_created: i32,
    /// Drafts the quote is split into (`null` until the quote is priced and split).
    pub parts_total: Option<i32>,
}

/// One draft of a job.
#[derive(Debug, Clone, Serialize)]
pub struct DraftStatus {
    /// 1-based part number.
    pub part: i32,
    /// Deterministic key (its tag is `wholesail-part:<key>`).
    pub key: String,
    /// Lines in this draft.
    pub lines: i32,
    /// Lines at negotiated prices plus shipping, as a decimal string.
    pub total: String,
    /// Shipping charged on this draft.
    pub shipping: String,
    /// Draft gid (`null` until created).
    pub id: Option<String>,
    /// `#D…`.
    pub name: Option<String>,
    /// The buyer's checkout link.
    pub invoice_url: Option<String>,
    /// The draft's total as Shopify computed it (equal to `total` unless the catalog price in
    /// Shopify differs from the synced list price).
    pub shopify_total: Option<String>,
    /// Found by its tag after an attempt whose outcome was unknown.
    pub recovered: bool,
    /// When its invoice was emailed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub invoice_sent_at: Option<OffsetDateTime>,
}

/// The callback's delivery.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackStatus {
    /// `none`, `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The last failure.
    pub error: Option<String>,
}

/// What `GET /v1/draft-orders/{job}` answers.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// Job id (also the drafts' group id).
    pub job: String,
    /// Shop.
    pub shop: ShopDomain,
    /// The caller's quote id.
    pub quote_id: String,
    /// Where the job stands.
    pub status: JobState,
    /// Parts created / total.
    pub progress: Progress,
    /// Shop currency (once priced).
    pub currency: Option<String>,
    /// The quote's total at negotiated prices plus shipping (once priced).
    pub total: Option<String>,
    /// Why the quote was rejected: every violation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<QuoteViolation>>,
    /// Why the job failed, or (while processing) the last transient error.
    pub error: Option<String>,
    /// Processing attempts so far.
    pub attempts: i32,
    /// The drafts, in part order.
    pub drafts: Vec<DraftStatus>,
    /// The callback, if one was requested.
    pub callback: Option<CallbackStatus>,
    /// Submitted at.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Ended at.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

fn decimal(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The status of `job`, with its drafts; `None` when there is no such job.
pub async fn status(pool: &PgPool, job: &str) -> Result<Option<JobStatus>, sqlx::Error> {
    struct JobRow {
        id: String,
        shop: ShopDomain,
        quote_id: String,
        status: JobState,
        parts_created: i32,
        parts_total: Option<i32>,
        currency: Option<String>,
        quote_total_cents: Option<i64>,
        violations: Option<Json<Vec<QuoteViolation>>>,
        error: Option<String>,
        attempts: i32,
        callback_state: String,
        callback_attempts: i32,
        callback_error: Option<String>,
        callback_url: Option<String>,
        created_at: OffsetDateTime,
        finished_at: Option<OffsetDateTime>,
    }
    struct PartRow {
        part: i32,
        key: String,
        line_count: i32,
        total_cents: i64,
        shipping_cents: i64,
        draft_id: Option<String>,
        draft_name: Option<String>,
        invoice_url: Option<String>,
        shopify_total_cents: Option<i64>,
        recovered: bool,
        invoice_sent_at: Option<OffsetDateTime>,
    }
    let Some(j) = sqlx::query_as!(
        JobRow,
        r#"SELECT id, shop AS "shop: ShopDomain", quote_id, status AS "status: JobState",
                  parts_created, parts_total,
                  currency, quote_total_cents,
                  violations AS "violations: Json<Vec<QuoteViolation>>", error, attempts,
                  callback_state, callback_attempts, callback_error, callback_url, created_at,
                  finished_at
           FROM draft_order_jobs WHERE id = $1"#,
        job
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let parts = sqlx::query_as!(
        PartRow,
        "SELECT part, key, line_count, total_cents, shipping_cents, draft_id, draft_name,
                invoice_url, shopify_total_cents, recovered, invoice_sent_at
         FROM draft_order_parts WHERE job_id = $1 ORDER BY part",
        job
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(JobStatus {
        job: j.id,
        shop: j.shop,
        quote_id: j.quote_id,
        status: j.status,
        progress: Progress {
            parts_created: j.parts_created,
            parts_total: j.parts_total,
        },
        currency: j.currency,
        total: j.quote_total_cents.map(decimal),
        errors: j.violations.map(|v| v.0),
        error: j.error,
        attempts: j.attempts,
        drafts: parts
            .into_iter()
            .map(|p| DraftStatus {
                part: p.part,
                key: p.key,
                lines: p.line_count,
                total: decimal(p.total_cents),
                shipping: decimal(p.shipping_cents),
                id: p.draft_id,
                name: p.draft_name,
                invoice_url: p.invoice_url,
                shopify_total: p.shopify_total_cents.map(decimal),
                recovered: p.recovered,
                invoice_sent_at: p.invoice_sent_at,
            })
            .collect(),
        callback: j.callback_url.map(|_| CallbackStatus {
            state: j.callback_state,
            attempts: j.callback_attempts,
            error: j.callback_error,
        }),
        created_at: j.created_at,
        finished_at: j.finished_at,
    }))
}

/// Puts failed jobs of `shop` back to processing (attempts and error reset, due now, callback
/// owed again when it ends) and wakes the job loop; a planned job resumes its parts (a part
/// whose create was sent is looked up by its tag first). Returns the ids retried; jobs that are
/// not failed are left alone.
pub async fn retry_failed(
    pool: &PgPool,
    shop: &ShopDomain,
    ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let retried = sqlx::query_scalar!(
        "UPDATE draft_order_jobs
         SET status = 'processing', attempts = 0, error = NULL, finished_at = NULL,
             run_at = now(), callback_state = 'none', updated_at = now()
         WHERE shop = $1 AND id = ANY($2) AND status = 'failed'
         RETURNING id",
        shop.as_str(),
        ids
    )
    .fetch_all(&mut *tx)
    .await?;
    for id in &retried {
        sqlx::query!("SELECT 1 AS notified FROM pg_notify($1, $2)", CHANNEL, id)
            .fetch_one(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(retried)
}
