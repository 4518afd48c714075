//! The durable job loop: claims due jobs (`FOR UPDATE SKIP LOCKED` with a lease, woken by
//! NOTIFY, polling as the fallback) and moves each one forward:
//!
//! 1. **Plan** (once): price and validate the quote ([`pricing`]); reject it with every
//!    violation, or split it ([`plan`]) and store the parts in one transaction.
//! 2. **Create** each part in order. A part for which a `draftOrderCreate` was ever sent
//!    (`create_sent_at`, written before sending) is first looked up by its tag
//!    `wholesail-part:<key>`: a draft left by an attempt whose outcome was unknown (timeout,
//!    5xx after the shop acted, a crash) is adopted instead of created twice. A part never
//!    sent cannot exist, so it is created without the lookup (saving its cost). The draft's
//!    id is recorded in the same transaction that counts the part as created.
//! 3. **Invoices** (if asked): `draftOrderInvoiceSend` per draft, recorded per draft.
//! 4. **Complete**; then the callback, if any, is delivered ([`callback`]).
//!
//! A transient failure (throttled after the client's retries, timeout, outcome unknown, 5xx,
//! database) releases the job with a backoff stored in `run_at`; after `max_attempts` claims
//! the job fails with the reason. A permanent one (Shopify's userErrors, access denied, an
//! unconfigured shop, unusable rules) fails it at once. While the shop's Shopify circuit
//! breaker is open the job is released with `run_at` past the breaker's cool-down. The lease is renewed before every
//! Shopify call, and every write checks it is still held.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wholesail_backoff::Backoff;
use wholesail_shopify_admin::draft_orders::DraftOrder;
use wholesail_shopify_admin::{AdminClient, AdminError};

use super::callback::Callbacks;
use super::jobs::{self, Claimed, CreatedDraft, End, JobState};
use super::plan::{self, Group, PART_TAG_PREFIX};
use super::pricing::{self, PricingError};
use super::Settings;
use crate::lease_loop::{self, LeaseQueue, LoopSettings};
use crate::shops::Shops;

/// How long after a breaker's cool-down a job waiting for it comes back, so that the probe
/// (sent by whichever user of the shop's client comes first) has had its chance.
const BREAKER_MARGIN: Duration = Duration::from_millis(250);

/// Why a step stopped.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// Worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help.
    #[error("{0}")]
    Permanent(String),
    /// The shop's Shopify circuit breaker is open: retry, not before `retry_in`.
    #[error("{error}")]
    ShopUnavailable {
        /// Until the breaker lets a probe through.
        retry_in: Duration,
        /// What the client said.
        error: String,
    },
    /// Another worker holds the job now.
    #[error("lease lost")]
    LeaseLost,
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        StepError::Transient(format!("database: {e}"))
    }
}

impl From<AdminError> for StepError {
    fn from(e: AdminError) -> Self {
        if let AdminError::CircuitOpen { retry_in } = e {
            return StepError::ShopUnavailable {
                retry_in,
                error: format!("shopify: {e}"),
            };
        }
        let transient = match &e {
            AdminError::OutcomeUnknown(_)
            | AdminError::Throttled { .. }
            | AdminError::Timeout { .. }
            | AdminError::Transport(_) => true,
            AdminError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        };
        if transient {
            StepError::Transient(format!("shopify: {e}"))
        } else {
            StepError::Permanent(format!("shopify: {e}"))
        }
    }
}

/// The draft-order job loops of one process.
#[derive(Clone)]
pub struct JobLoop {
    pool: PgPool,
    shops: Arc<Shops>,
    settings: Arc<Settings>,
    id: Arc<str>,
    backoff: Backoff,
    callbacks: Callbacks,
}

impl JobLoop {
    /// Loops on `pool` calling Shopify through `shops`; `id` names this process in
    /// `locked_by` (unique per process).
    pub fn new(pool: PgPool, shops: Arc<Shops>, settings: Settings, id: String) -> Self {
        JobLoop {
            backoff: Backoff::new(
                Duration::from_millis(settings.backoff_base_ms),
                Duration::from_millis(settings.backoff_max_ms),
            ),
            callbacks: Callbacks::new(&settings),
            settings: Arc::new(settings),
            pool,
            shops,
            id: id.into(),
        }
    }

    /// Delivers callbacks with `callbacks` instead of the default client (tests inject one
    /// with a fixed resolver).
    pub fn with_callbacks(mut self, callbacks: Callbacks) -> Self {
        self.callbacks = callbacks;
        self
    }

    /// Runs `concurrency` claim loops and the NOTIFY listener until `shutdown`; then lets the
    /// current step finish and releases what this process still holds ([`lease_loop::run`]).
    pub async fn run(self, shutdown: CancellationToken) {
        let settings = LoopSettings {
            name: "draft_orders",
            worker: self.id.clone(),
            channel: jobs::CHANNEL,
            concurrency: self.settings.concurrency,
            poll: Duration::from_millis(self.settings.poll_interval_ms),
            grace: None,
        };
        let pool = self.pool.clone();
        lease_loop::run(self, pool, settings, shutdown).await;
    }

    /// Claims one due job and moves it forward; `false` when nothing was due.
    pub async fn run_once(&self) -> Result<bool, sqlx::Error> {
        let Some(job) = jobs::claim(&self.pool, &self.id, self.lease()).await? else {
            return Ok(false);
        };
        let span = tracing::info_span!("draft_order_job", job = %job.id, shop = %job.shop,
            attempt = job.attempts, status = %job.status);
        async {
            if job.status == JobState::Processing {
                return self.process(&job).await;
            }
            let outcome = self.callbacks.deliver(&self.pool, &job.id).await;
            let outcome = outcome.map_err(|error| {
                let retry =
                    (job.callback_attempts < self.settings.callback_max_attempts).then(|| {
                        self.backoff.equal_jitter(
                            job.callback_attempts.unsigned_abs(),
                            rand::thread_rng().gen(),
                        )
                    });
                tracing::warn!(error = %error, ?retry, "callback failed");
                (error, retry)
            });
            jobs::record_callback(&self.pool, &job.id, &self.id, outcome).await
        }
        .instrument(span)
        .await?;
        Ok(true)
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.settings.lease_ms)
    }

    async fn process(&self, job: &Claimed) -> Result<(), sqlx::Error> {
        // Claims past the limit mean earlier holders died mid-step (their leases expired):
        // stop rather than let a job that kills its worker loop forever.
        let result = if job.attempts > self.settings.max_attempts {
            Err(StepError::Permanent(format!(
                "gave up after {} claims whose workers stopped before finishing a step",
                job.attempts - 1
            )))
        } else {
            self.advance(job).await
        };
        let end = match result {
            Ok(end) => end,
            Err(StepError::LeaseLost) => {
                tracing::warn!(job = %job.id, "lease lost; another worker continues the job");
                return Ok(());
            }
            Err(StepError::ShopUnavailable { retry_in, error })
                if job.attempts < self.settings.max_attempts =>
            {
                // Past the cool-down, so the job does not come back while the breaker is open.
                let delay = self
                    .backoff
                    .equal_jitter(job.attempts.unsigned_abs(), rand::thread_rng().gen())
                    .max(retry_in + BREAKER_MARGIN);
                tracing::warn!(job = %job.id, %error, ?delay, "shop's Shopify circuit is open; draft-order job will be retried after its cool-down");
                metrics::counter!("wholesail_draft_order_retries_total").increment(1);
                return jobs::retry_later(&self.pool, &job.id, &self.id, delay, &error).await;
            }
            Err(StepError::Transient(e)) if job.attempts < self.settings.max_attempts => {
                let delay = self
                    .backoff
                    .equal_jitter(job.attempts.unsigned_abs(), rand::thread_rng().gen());
                tracing::warn!(job = %job.id, error = %e, ?delay, "draft-order job will be retried");
                metrics::counter!("wholesail_draft_order_retries_total").increment(1);
                return jobs::retry_later(&self.pool, &job.id, &self.id, delay, &e).await;
            }
            Err(StepError::Transient(e) | StepError::ShopUnavailable { error: e, .. }) => {
                End::Failed(format!("gave up after {} attempts: {e}", job.attempts))
            }
            Err(StepError::Permanent(e)) => End::Failed(e),
        };
        let outcome = match &end {
            End::Completed => "completed",
            End::Rejected(_) => "rejected",
            End::Failed(_) => "failed",
        };
        metrics::counter!("wholesail_draft_order_jobs_total", "outcome" => outcome).increment(1);
        match &end {
            End::Failed(reason) => tracing::error!(job = %job.id, reason, "draft-order job failed"),
            _ => tracing::info!(job = %job.id, outcome, "draft-order job ended"),
        }
        if let Some(secs) = jobs::finish(&self.pool, &job.id, &self.id, &end).await? {
            metrics::histogram!("wholesail_draft_order_job_seconds", "outcome" => outcome)
                .record(secs);
        }
        Ok(())
    }

    async fn advance(&self, job: &Claimed) -> Result<End, StepError> {
        let quote = &job.request.0;
        let client = self
            .shops
            .client(&job.shop)
            .map_err(|e| StepError::Permanent(e.to_string()))?;
        let purchasing_entity = match pricing::purchasing_entity(&self.pool, quote).await? {
            Ok(entity) => entity,
            Err(violation) => return Ok(End::Rejected(vec![violation])),
        };
        let (currency, parts_total) = if job.planned {
            (
                job.currency.clone().unwrap_or_default(),
                job.parts_total.unwrap_or(0) as u32,
            )
        } else {
            let priced = match pricing::price(&self.pool, quote).await {
                Ok(Ok(p)) => p,
                Ok(Err(violations)) => return Ok(End::Rejected(violations)),
                Err(PricingError::Database(e)) => return Err(e.into()),
                Err(e @ PricingError::Rules(_)) => return Err(StepError::Permanent(e.to_string())),
            };
            let parts = match plan::plan(
                &job.id,
                priced.lines,
                quote.shipping_cents(),
                self.settings.line_limit,
            ) {
                Ok(p) => p,
                Err(violations) => return Ok(End::Rejected(violations)),
            };
            if !jobs::record_plan(&self.pool, &job.id, &self.id, &priced.currency, &parts).await? {
                return Err(StepError::LeaseLost);
            }
            (priced.currency, parts.len() as u32)
        };
        let group = Group {
            job_id: &job.id,
            quote_id: &quote.quote_id,
            parts: parts_total,
            currency: &currency,
            note: quote.note.as_deref(),
            shipping_title: quote.shipping.as_ref().map(|s| s.title.as_str()),
            purchasing_entity,
        };
        for pending in jobs::pending_parts(&self.pool, &job.id).await? {
            self.renew(job).await?;
            let may_exist = pending.create_sent;
            let part = pending.plan();
            let found = match may_exist {
                true => find(&client, &part.key).await?,
                false => None,
            };
            let draft = match found {
                Some(found) => created(found, true),
                None => {
                    let input = plan::draft_input(&group, &part);
                    if !jobs::mark_create_sent(&self.pool, &job.id, &self.id, part.part as i32)
                        .await?
                    {
                        return Err(StepError::LeaseLost);
                    }
                    created(client.draft_order_create(&input).await?, false)
                }
            };
            if draft.total_cents != Some(part.total_cents()) {
                tracing::warn!(job = %job.id, part = part.part, expected = part.total_cents(),
                    shopify = ?draft.total_cents, "draft total differs from the quote (catalog price changed in Shopify?)");
            }
            if !jobs::record_part(&self.pool, &job.id, &self.id, part.part as i32, &draft).await? {
                return Err(StepError::LeaseLost);
            }
            metrics::counter!("wholesail_draft_orders_created_total",
                "recovered" => if draft.recovered { "true" } else { "false" })
            .increment(1);
            tracing::info!(job = %job.id, part = part.part, of = parts_total, draft = %draft.id, recovered = draft.recovered, "draft order created");
        }
        if quote.send_invoice {
            for invoice in jobs::invoices_to_send(&self.pool, &job.id).await? {
                self.renew(job).await?;
                client.draft_order_invoice_send(&invoice.draft_id).await?;
                jobs::record_invoice_sent(&self.pool, &job.id, invoice.part).await?;
            }
        }
        Ok(End::Completed)
    }

    async fn renew(&self, job: &Claimed) -> Result<(), StepError> {
        if jobs::renew(&self.pool, &job.id, &self.id, self.lease()).await? {
            Ok(())
        } else {
            Err(StepError::LeaseLost)
        }
    }
}

impl LeaseQueue for JobLoop {
    type Cursor = ();

    async fn step(&self, _: &mut ()) -> Result<bool, sqlx::Error> {
        self.run_once().await
    }

    async fn release(&self) -> Result<u64, sqlx::Error> {
        jobs::release(&self.pool, &self.id).await
    }
}

/// The draft tagged with part `key`, if one exists (the oldest, should there be several).
async fn find(client: &AdminClient, key: &str) -> Result<Option<DraftOrder>, AdminError> {
    let page = client
        .draft_orders_by_tag(&format!("{PART_TAG_PREFIX}{key}"), 1, None)
        .await?;
    Ok(page.drafts.into_iter().next())
}

fn created(d: DraftOrder, recovered: bool) -> CreatedDraft {
    CreatedDraft {
        total_cents: d.total_price_set.shop_money.cents().ok(),
        id: d.id,
        name: d.name,
        invoice_url: d.invoice_url,
        recovered,
    }
}
