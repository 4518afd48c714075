//! The sync loop: claims outbox rows shop by shop, builds each record from origin's tables as
//! it is now, and sends them parents first (Accounts, Contacts, Products, Orders) in sObject
//! Collections upserts of at most 200 records, keyed by external id.
//!
//! Every record has its own outcome: saved (the row is done, with the Salesforce id), retryable
//! (a row lock, a 5xx, a timeout, the budget or the breaker: back to pending after a backoff)
//! or permanent (validation, duplicates, a missing parent: a dead row with Salesforce's
//! message, replayable once fixed). A crash between Salesforce's commit and the done mark
//! leaves the row to be claimed again; the upsert by external id then updates the record it
//! created instead of creating a second one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_backoff::Backoff;
use wholesail_salesforce::{Client, Error as SalesforceError, RecordOutcome};
use wholesail_webhook::ShopDomain;

use super::accounts::{self, Resolution, ResolveError};
use super::mapping::{self, MappingError};
use super::outbox::{self, Claimed, Object};
use crate::lease_loop::{self, LeaseQueue, LoopSettings};

/// `[salesforce]` loop settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Rows claimed per shop per round (sent in upserts of ≤ 200 per object).
    pub batch_size: i64,
    /// Attempts before a row is dead.
    pub max_attempts: i32,
    /// First retry delay (doubling, equal jitter).
    pub backoff_base_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
    /// Lease on claimed rows.
    pub lease_ms: u64,
    /// Idle poll interval (a NOTIFY wakes the loop sooner).
    pub poll_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_size: 800,
            max_attempts: 10,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            lease_ms: 120_000,
            poll_interval_ms: 1_000,
        }
    }
}

/// The sync of every connected shop in this process.
#[derive(Clone)]
pub struct Sync {
    pool: PgPool,
    clients: Arc<HashMap<ShopDomain, Client>>,
    worker: Arc<str>,
    settings: Settings,
    backoff: Backoff,
}

impl Sync {
    /// A sync sending each shop's rows through its org's client.
    pub fn new(
        pool: PgPool,
        clients: HashMap<ShopDomain, Client>,
        worker: impl Into<Arc<str>>,
        settings: Settings,
    ) -> Self {
        let backoff = Backoff::new(
            Duration::from_millis(settings.backoff_base_ms),
            Duration::from_millis(settings.backoff_max_ms),
        );
        Sync {
            pool,
            clients: Arc::new(clients),
            worker: worker.into(),
            settings,
            backoff,
        }
    }

    /// Runs until `shutdown`, then gives back what it holds.
    pub async fn run(self, shutdown: CancellationToken) {
        let settings = LoopSettings {
            name: "salesforce",
            worker: self.worker.clone(),
            channel: outbox::CHANNEL,
            concurrency: 1,
            poll: Duration::from_millis(self.settings.poll_interval_ms),
            grace: None,
        };
        let pool = self.pool.clone();
        lease_loop::run(self, pool, settings, shutdown).await;
    }

    /// Sends one claimed batch of one shop, parents first.
    async fn send(&self, client: &Client, rows: Vec<Claimed>) -> Result<(), sqlx::Error> {
        for object in Object::ALL {
            let mut ready: Vec<(&Claimed, Value)> = Vec::new();
            let mut conn = self.pool.acquire().await?;
            for row in rows.iter().filter(|r| r.object == object) {
                match mapping::record(&mut conn, &row.shop, object, &row.record_key).await {
                    Ok(record) => ready.push((row, record)),
                    Err(MappingError::Database(e)) => return Err(e),
                    Err(e) => self.fail(row, &e.to_string(), false).await?,
                }
            }
            drop(conn);
            if object == Object::Account {
                ready = self.resolve_accounts(client, ready).await?;
            }
            let (sobject, external_id) = object.sobject();
            for chunk in ready.chunks(wholesail_salesforce::collections::MAX_RECORDS) {
                let records: Vec<&Value> = chunk.iter().map(|(_, r)| r).collect();
                match client.upsert(sobject, external_id, &records).await {
                    Ok(outcomes) => {
                        for ((row, _), outcome) in chunk.iter().zip(outcomes) {
                            self.record(row, sobject, outcome).await?;
                        }
                    }
                    Err(e) => {
                        let retryable = retryable(&e);
                        metrics::counter!("wholesail_salesforce_call_failures_total",
                            "object" => sobject, "retryable" => retryable.to_string())
                        .increment(1);
                        tracing::warn!(error = %e, sobject, records = chunk.len(), retryable,
                            "salesforce upsert failed");
                        for (row, _) in chunk {
                            self.fail(row, &e.to_string(), retryable).await?;
                        }
                    }
                }
            }
        }
        if let Some(usage) = client.budget().usage() {
            metrics::gauge!("wholesail_salesforce_api_used_ratio", "org" => client.config().org.clone())
                .set(usage.used as f64 / usage.max.max(1) as f64);
        }
        Ok(())
    }

    /// Keeps the Accounts to upsert: a company never written before is first matched against
    /// Salesforce's Accounts ([`accounts`]); a linked one is done, one waiting for review is
    /// parked in the dead letters with the reason.
    async fn resolve_accounts<'a>(
        &self,
        client: &Client,
        ready: Vec<(&'a Claimed, Value)>,
    ) -> Result<Vec<(&'a Claimed, Value)>, sqlx::Error> {
        let mut upsert = Vec::with_capacity(ready.len());
        for (row, record) in ready {
            match accounts::resolve(&self.pool, client, &row.shop, &row.record_key, &record).await {
                Ok(Resolution::Upsert) => upsert.push((row, record)),
                Ok(Resolution::Linked(id)) => {
                    self.record(row, "Account", RecordOutcome::Updated { id })
                        .await?;
                }
                Ok(Resolution::Review(n)) => {
                    let reason = format!(
                        "waiting for review: {n} possible Accounts in Salesforce \
                         (origin salesforce review)"
                    );
                    self.fail(row, &reason, false).await?;
                }
                Err(ResolveError::Database(e)) => return Err(e),
                Err(ResolveError::Salesforce(e)) => {
                    self.fail(row, &e.to_string(), retryable(&e)).await?;
                }
                Err(e @ ResolveError::Link(..)) => self.fail(row, &e.to_string(), false).await?,
            }
        }
        Ok(upsert)
    }

    /// Records one record's outcome.
    async fn record(
        &self,
        row: &Claimed,
        sobject: &'static str,
        outcome: RecordOutcome,
    ) -> Result<(), sqlx::Error> {
        match outcome {
            RecordOutcome::Created { id } | RecordOutcome::Updated { id } => {
                if let Some(lag) =
                    outbox::mark_done(&self.pool, &row.shop, row.id, &self.worker, &id).await?
                {
                    metrics::histogram!("wholesail_salesforce_lag_seconds").record(lag);
                }
                metrics::counter!("wholesail_salesforce_records_total",
                    "object" => sobject, "outcome" => "saved")
                .increment(1);
                Ok(())
            }
            RecordOutcome::Failed(f) => {
                metrics::counter!("wholesail_salesforce_records_total",
                    "object" => sobject, "outcome" => if f.retryable { "retry" } else { "failed" })
                .increment(1);
                let message = format!("{}: {}", f.codes.join(", "), f.message);
                self.fail(row, &message, f.retryable).await
            }
        }
    }

    /// Puts `row` back with a backoff (`retryable`) or in the dead letters.
    async fn fail(&self, row: &Claimed, error: &str, retryable: bool) -> Result<(), sqlx::Error> {
        let retry_after = retryable.then(|| {
            self.backoff
                .equal_jitter(row.attempts.unsigned_abs(), rand::thread_rng().gen())
        });
        let dead = outbox::record_failure(
            &self.pool,
            row,
            &self.worker,
            error,
            retry_after,
            self.settings.max_attempts,
        )
        .await?;
        if dead {
            metrics::counter!("wholesail_salesforce_dead_total").increment(1);
            tracing::warn!(shop = %row.shop, object = ?row.object, key = %row.record_key, error,
                "salesforce record moved to the dead letters");
        }
        Ok(())
    }
}

/// Whether a failed call may succeed later: transient failures, the budget and the breaker.
fn retryable(e: &SalesforceError) -> bool {
    e.is_retryable()
        || matches!(
            e,
            SalesforceError::BudgetExhausted | SalesforceError::CircuitOpen { .. }
        )
}

impl LeaseQueue for Sync {
    type Cursor = ();

    async fn step(&self, _cursor: &mut ()) -> Result<bool, sqlx::Error> {
        let mut worked = false;
        let lease = Duration::from_millis(self.settings.lease_ms);
        for shop in outbox::due_shops(&self.pool).await? {
            let Some(client) = self.clients.get(&shop) else {
                continue;
            };
            let rows = outbox::claim(
                &self.pool,
                &shop,
                &self.worker,
                self.settings.batch_size,
                lease,
            )
            .await?;
            if rows.is_empty() {
                continue;
            }
            worked = true;
            self.send(client, rows).await?;
        }
        Ok(worked)
    }

    async fn release(&self) -> Result<u64, sqlx::Error> {
        outbox::release(&self.pool, &self.worker).await
    }

    async fn housekeeping(&self, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.settings.lease_ms / 2).max(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match outbox::reclaim_expired(&self.pool).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(reclaimed = n, "salesforce outbox leases expired"),
                Err(e) => tracing::error!(error = %e, "salesforce outbox reclaim failed"),
            }
        }
    }
}
