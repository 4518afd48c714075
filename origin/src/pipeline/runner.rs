//! The inbox workers: claim due rows, apply them with the topic handlers, record the outcome.
//!
//! - **Claims** take a batch with `FOR UPDATE SKIP LOCKED` and a lease (`locked_by`,
//!   `locked_until`), round-robin by shop ([`inbox::claim`]): several loops and several
//!   processes share one database without coordination.
//! - **Completion** is one transaction per batch: the rows are locked (still ours?), the
//!   batch's shop locks are taken ([`ShopGate`]), each event is applied by
//!   [`handlers::apply_in_batch`], and the done marks commit with the effects. Runs of
//!   consecutive `orders/*` upserts are applied as sets, a few statements for the whole run
//!   ([`handlers::apply_set_in_batch`]); a payload it refuses is that event's failure alone.
//!   Events are applied without savepoints; if one fails, the attempt is rolled back and the
//!   batch applied again one event at a time with a savepoint per event, so only the failing
//!   event is rolled back. An event is therefore applied exactly once even if the worker dies at any point:
//!   before the commit nothing happened, after it the row is done.
//! - **Failures**: `HandlerError::Database` is transient: retried with [`Backoff`] stored in
//!   `run_at`, dead after `max_attempts` claims. `HandlerError::InvalidPayload` is permanent:
//!   dead at once (retrying the same payload cannot help; an operator can replay it after a
//!   fix).
//! - **Crashes**: a reaper returns expired leases to `pending` (or `dead` when the claims
//!   used up `max_attempts`, so an event that kills its worker cannot loop forever).
//! - **Loops**: [`crate::lease_loop`]: woken by LISTEN on [`inbox::CHANNEL`] or polling; on
//!   shutdown, claiming stops, in-flight batches finish within the grace period, and whatever
//!   is still held is released.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use wholesail_backoff::Backoff;

use crate::config::WorkerConfig;
use crate::handlers::{self, HandlerError, InboxEvent, Verdict};
use crate::lease_loop::{self, LeaseQueue, LoopSettings};
use crate::pipeline::inbox::{self, Claimed, Failure, Keys};
use crate::shop_lock::ShopGate;

/// The worker pool of one process.
#[derive(Clone)]
pub struct Workers {
    pool: PgPool,
    config: Arc<WorkerConfig>,
    id: Arc<str>,
    backoff: Backoff,
}

impl Workers {
    /// Workers on `pool`; `id` names this process in `locked_by` (unique per process).
    pub fn new(pool: PgPool, config: WorkerConfig, id: String) -> Self {
        let backoff = Backoff::new(
            Duration::from_millis(config.backoff_base_ms),
            Duration::from_millis(config.backoff_max_ms),
        );
        Workers {
            pool,
            config: Arc::new(config),
            id: id.into(),
            backoff,
        }
    }

    /// Runs the claim loops, the listener and the reaper until `shutdown` is cancelled, then
    /// drains within the grace period and releases what is still held ([`lease_loop::run`]).
    pub async fn run(self, shutdown: CancellationToken) {
        let settings = LoopSettings {
            name: "inbox",
            worker: self.id.clone(),
            channel: inbox::CHANNEL,
            concurrency: self.config.concurrency,
            poll: Duration::from_millis(self.config.poll_interval_ms),
            grace: Some(Duration::from_millis(self.config.shutdown_grace_ms)),
        };
        let pool = self.pool.clone();
        lease_loop::run(self, pool, settings, shutdown).await;
    }

    /// Applies a claimed batch and records every outcome.
    async fn complete(&self, batch: Vec<Claimed>) {
        if let Err(e) = self.apply_batch(&batch).await {
            // The transaction rolled back: nothing was applied. Schedule retries now rather
            // than waiting for the leases to expire (rows already done are left alone).
            tracing::error!(error = %e, rows = batch.len(), "batch transaction failed");
            let failures: Vec<Failure> = batch
                .iter()
                .map(|c| Failure {
                    shop: &c.event.shop,
                    id: c.event.id,
                    error: format!("batch transaction failed: {e}"),
                    retry_after: Some(
                        self.backoff
                            .equal_jitter(c.attempts.unsigned_abs(), rand::thread_rng().gen()),
                    ),
                })
                .collect();
            let recorded = async {
                let mut conn = self.pool.acquire().await?;
                inbox::record_failures(&mut conn, &self.id, &failures, self.config.max_attempts)
                    .await
            };
            if let Err(e) = recorded.await {
                tracing::error!(error = %e, "could not record failures; leases will expire");
            }
        }
    }

    /// Applies `batch` in one transaction without savepoints; if an event fails, that attempt
    /// is rolled back whole and the batch is applied again with a savepoint per event, so the
    /// failing event is rolled back alone and recorded while the others commit.
    async fn apply_batch(&self, batch: &[Claimed]) -> Result<(), sqlx::Error> {
        if self.try_apply(batch, Isolation::Optimistic).await? {
            return Ok(());
        }
        tracing::info!(
            rows = batch.len(),
            "an event failed; applying the batch with savepoints"
        );
        self.try_apply(batch, Isolation::Savepoints).await?;
        Ok(())
    }

    /// One completion transaction; `Ok(false)` when an [`Isolation::Optimistic`] attempt met a
    /// failing event (nothing committed).
    async fn try_apply(
        &self,
        batch: &[Claimed],
        isolation: Isolation,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let held =
            inbox::lock_held(&mut tx, &self.id, &Keys::of(batch.iter().map(|c| &c.event))).await?;
        let mut gate = ShopGate::take(&mut tx, batch.iter().map(|c| &c.event.shop)).await?;
        let live: Vec<&Claimed> = batch
            .iter()
            .filter(|claimed| {
                let held = held.contains(&claimed.event.id);
                if !held {
                    event_span(claimed)
                        .in_scope(|| tracing::warn!("lease lost before completion; skipped"));
                }
                held
            })
            .collect();
        let mut completion = Completion::with_capacity(live.len());
        let mut next = 0;
        while next < live.len() {
            let started = Instant::now();
            // A run of events applied as sets (optimistic attempts only: the savepoint attempt
            // isolates a failing statement, which a set statement cannot).
            let run = match isolation {
                Isolation::Optimistic => live[next..]
                    .iter()
                    .take_while(|c| handlers::applies_as_set(&c.event, &gate))
                    .count(),
                Isolation::Savepoints => 0,
            };
            if run > 0 {
                let claimed = &live[next..next + run];
                let events: Vec<&InboxEvent> = claimed.iter().map(|c| &c.event).collect();
                let results = match handlers::apply_set_in_batch(&mut tx, &events).await {
                    Ok(results) => results,
                    Err(e) => {
                        tracing::info!(error = %e, rows = run, "a set statement failed");
                        return Ok(false);
                    }
                };
                // The run's time, shared by its events.
                let secs = started.elapsed().as_secs_f64() / run as f64;
                for (claimed, result) in claimed.iter().zip(results) {
                    // A refused payload wrote nothing: recorded like in a savepoint attempt.
                    completion.record(claimed, result, secs, &self.backoff);
                }
                next += run;
                continue;
            }
            let claimed = live[next];
            next += 1;
            let event = &claimed.event;
            let result = match isolation {
                Isolation::Optimistic => handlers::apply_in_batch(&mut tx, event, &mut gate).await,
                Isolation::Savepoints => {
                    let mut savepoint = Connection::begin(&mut *tx).await?;
                    let result = handlers::apply_in_batch(&mut savepoint, event, &mut gate).await;
                    match result {
                        Ok(_) => savepoint.commit().await?,
                        Err(_) => savepoint.rollback().await?,
                    }
                    result
                }
            };
            if result.is_err() && isolation == Isolation::Optimistic {
                return Ok(false);
            }
            completion.record(
                claimed,
                result,
                started.elapsed().as_secs_f64(),
                &self.backoff,
            );
        }
        let Completion {
            done,
            outcomes,
            reasons,
            applied,
            failures,
            failed,
        } = completion;
        let lags = inbox::mark_done(&mut tx, &done, &outcomes, &reasons).await?;
        let dead =
            inbox::record_failures(&mut tx, &self.id, &failures, self.config.max_attempts).await?;
        tx.commit().await?;

        // Counted and logged once committed: a rolled-back attempt left no trace.
        for ((claimed, secs), (outcome, reason)) in
            applied.iter().zip(outcomes.iter().zip(&reasons))
        {
            let topic = claimed.event.topic.clone();
            metrics::histogram!("wholesail_handler_duration_seconds", "topic" => topic)
                .record(*secs);
            metrics::counter!("wholesail_events_processed_total", "outcome" => *outcome)
                .increment(1);
            metrics::histogram!("wholesail_event_attempts").record(f64::from(claimed.attempts));
            event_span(claimed).in_scope(|| {
                tracing::info!(outcome, reason = reason.as_deref(), "event processed")
            });
        }
        for (claimed, e, retry_after) in failed {
            let kind = if retry_after.is_some() {
                "transient"
            } else {
                "permanent"
            };
            metrics::counter!("wholesail_event_failures_total", "kind" => kind).increment(1);
            event_span(claimed)
                .in_scope(|| tracing::warn!(error = %e, kind, ?retry_after, "event failed"));
        }
        for lag in lags {
            metrics::histogram!("wholesail_processing_lag_seconds").record(lag.lag);
            if let Some(secs) = lag.since_triggered {
                crate::slo::observe(crate::slo::Stage::ShopifyToApplied, secs);
            }
        }
        if dead > 0 {
            metrics::counter!("wholesail_dead_letters_total", "reason" => "handler")
                .increment(dead);
            tracing::warn!(dead, "events moved to the dead letters");
        }
        Ok(true)
    }
}

/// What one completion transaction records: the events done with their outcomes, and the
/// failed ones.
struct Completion<'a> {
    done: Keys<'a>,
    outcomes: Vec<&'static str>,
    reasons: Vec<Option<String>>,
    /// The events done and their handler time in seconds.
    applied: Vec<(&'a Claimed, f64)>,
    failures: Vec<Failure<'a>>,
    failed: Vec<(&'a Claimed, HandlerError, Option<Duration>)>,
}

impl<'a> Completion<'a> {
    fn with_capacity(n: usize) -> Self {
        Completion {
            done: Keys::default(),
            outcomes: Vec::with_capacity(n),
            reasons: Vec::with_capacity(n),
            applied: Vec::with_capacity(n),
            failures: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Records `claimed`'s result: done with its outcome, or a failure (`InvalidPayload`:
    /// dead now; a database error: retried after `backoff`).
    fn record(
        &mut self,
        claimed: &'a Claimed,
        result: Result<Verdict, HandlerError>,
        secs: f64,
        backoff: &Backoff,
    ) {
        let event = &claimed.event;
        match result {
            Ok(verdict) => {
                let reason = match &verdict {
                    Verdict::Ignored => Some(format!("no handler for {}", event.topic)),
                    other => other.reason().map(str::to_owned),
                };
                self.done.push(event);
                self.outcomes.push(verdict.outcome().as_str());
                self.reasons.push(reason);
                self.applied.push((claimed, secs));
            }
            Err(e) => {
                let retry_after =
                    match &e {
                        HandlerError::InvalidPayload { .. } => None,
                        HandlerError::Database(_) => Some(backoff.equal_jitter(
                            claimed.attempts.unsigned_abs(),
                            rand::thread_rng().gen(),
                        )),
                    };
                self.failures.push(Failure {
                    shop: &event.shop,
                    id: event.id,
                    error: e.to_string(),
                    retry_after,
                });
                self.failed.push((claimed, e, retry_after));
            }
        }
    }
}

/// How a completion transaction keeps one event's failure from the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isolation {
    /// No savepoints (two round trips fewer per event): the first failure abandons the attempt.
    Optimistic,
    /// A savepoint per event: a failing event is rolled back alone.
    Savepoints,
}

/// The log span of one event.
fn event_span(claimed: &Claimed) -> tracing::Span {
    let event = &claimed.event;
    tracing::info_span!(
        "event",
        webhook_id = %event.webhook_id,
        shop = %event.shop,
        topic = %event.topic,
        attempt = claimed.attempts,
    )
}

impl LeaseQueue for Workers {
    /// The shop after which the next claim starts (round-robin across shops).
    type Cursor = String;

    async fn step(&self, after_shop: &mut String) -> Result<bool, sqlx::Error> {
        let batch = inbox::claim(
            &self.pool,
            &self.id,
            self.config.batch_size,
            self.config.per_shop,
            after_shop,
            self.config.lease(),
            self.config.batch_bytes,
        )
        .await?;
        if batch.is_empty() {
            // Nothing after the cursor: wrap around to the first shop at once.
            let wrapped = !after_shop.is_empty();
            after_shop.clear();
            return Ok(wrapped);
        }
        // Cut by either limit: the next claim starts after this batch's last shop.
        let full = batch.len() as i64 >= self.config.batch_size
            || batch.iter().map(|c| c.bytes).sum::<i64>() >= self.config.batch_bytes;
        *after_shop = match batch.last() {
            Some(c) if full => c.event.shop.to_string(),
            _ => String::new(),
        };
        self.complete(batch).await;
        Ok(true)
    }

    async fn release(&self) -> Result<u64, sqlx::Error> {
        inbox::release(&self.pool, &self.id).await
    }

    async fn housekeeping(&self, shutdown: CancellationToken) {
        reap(self.clone(), shutdown).await
    }
}

/// Periodically returns expired leases of crashed or hung workers (any process's).
async fn reap(workers: Workers, shutdown: CancellationToken) {
    let every =
        (workers.config.lease() / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        match inbox::reclaim_expired(&workers.pool, workers.config.max_attempts).await {
            Ok((0, 0)) => {}
            Ok((reclaimed, dead)) => {
                if dead > 0 {
                    metrics::counter!("wholesail_dead_letters_total", "reason" => "lease_expired")
                        .increment(dead as u64);
                }
                tracing::warn!(reclaimed, dead, "expired leases reclaimed");
            }
            Err(e) => tracing::error!(error = %e, "lease reclaim failed"),
        }
    }
}
