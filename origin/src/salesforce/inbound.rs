//! Salesforce → Wholesail: one Change Data Capture subscription per connected org (Pub/Sub
//! API, `/data/ChangeEvents`), resumed from the replay id stored in PostgreSQL.
//!
//! Each event is applied and its replay id stored in one transaction, so a restart resumes
//! after the last event applied and no event is applied twice. Events of Wholesail's own writes
//! (`changeOrigin` naming its client) only move the replay id. A Quote whose `Status` becomes
//! the approved status goes to [`quotes`]; every other change of a record the sync writes goes
//! to [`ownership`] (Salesforce-owned fields land in origin, Shopify-owned ones are drift).
//!
//! A subscription that ends or fails is opened again from the stored replay id after a
//! backoff. When Salesforce no longer holds that replay id (older than its 72-hour retention),
//! the subscription starts at `LATEST` and the gap is read with SOQL instead ([`catch_up`]):
//! the catch-up is logged as a warning and recorded in `salesforce_catchups`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use wholesail_backoff::Backoff;
use wholesail_salesforce::cdc::{ChangeEvent, ChangeType, Replay, Subscriber, Subscription};
use wholesail_salesforce::{Client, Error as SalesforceError};
use wholesail_webhook::ShopDomain;

use super::{ownership, quotes};
use crate::shops::Shops;

/// `[salesforce.inbound]` settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The Pub/Sub topic: every enabled change event of the org.
    pub topic: String,
    /// Events asked for at a time (the API allows up to 100).
    pub batch: i32,
    /// The Quote `Status` that turns a quote into draft orders.
    pub approved_status: String,
    /// First delay before subscribing again after a failure (doubling, equal jitter).
    pub retry_base_ms: u64,
    /// Longest delay between attempts.
    pub retry_max_ms: u64,
    /// How often the quote write-back looks for finished jobs.
    pub write_back_poll_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            topic: "/data/ChangeEvents".into(),
            batch: 100,
            approved_status: "Approved".into(),
            retry_base_ms: 1_000,
            retry_max_ms: 60_000,
            write_back_poll_ms: 500,
        }
    }
}

/// Why a subscription, a catch-up or a quote approval stopped (retried from the same event).
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// Salesforce failed or refused.
    #[error("salesforce: {0}")]
    Salesforce(#[from] SalesforceError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The subscription of one connected shop's org.
#[derive(Clone)]
pub struct Inbound {
    pool: PgPool,
    shop: ShopDomain,
    client: Client,
    endpoint: String,
    shops: Arc<Shops>,
    settings: Arc<Settings>,
}

/// Where the stored replay id stands.
struct Stored {
    replay_id: Vec<u8>,
    committed_at: OffsetDateTime,
}

impl Inbound {
    /// The subscription of `shop`'s org through `client`, at Pub/Sub `endpoint`.
    pub fn new(
        pool: PgPool,
        shop: ShopDomain,
        client: Client,
        endpoint: String,
        shops: Arc<Shops>,
        settings: Settings,
    ) -> Self {
        Inbound {
            pool,
            shop,
            client,
            endpoint,
            shops,
            settings: Arc::new(settings),
        }
    }

    /// Subscribes, applies events and subscribes again after failures, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let backoff = Backoff::new(
            Duration::from_millis(self.settings.retry_base_ms),
            Duration::from_millis(self.settings.retry_max_ms),
        );
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let started = tokio::time::Instant::now();
            match self.subscription(&shutdown).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    // A subscription that ran a while before failing starts the backoff over.
                    if started.elapsed() > backoff.ceiling(failures + 1) * 4 {
                        failures = 0;
                    }
                    failures += 1;
                    metrics::counter!("wholesail_salesforce_cdc_failures_total", "shop" => self.shop.to_string())
                        .increment(1);
                    tracing::warn!(shop = %self.shop, error = %e, failures, "salesforce change subscription failed");
                    let delay = backoff.equal_jitter(failures, rand::thread_rng().gen());
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }

    /// One subscription, from the stored replay id (or `LATEST` the first time), until the
    /// stream ends, fails or `shutdown`. Salesforce refuses an expired replay id when the
    /// subscription opens or with its first answer; either way the gap is caught up with SOQL
    /// and the subscription starts again at `LATEST` (opened before the catch-up reads, so
    /// nothing falls between them).
    async fn subscription(&self, shutdown: &CancellationToken) -> Result<(), InboundError> {
        let subscriber = Subscriber::connect(self.client.clone(), self.endpoint.clone()).await?;
        let stored = load(&self.pool, &self.shop).await?;
        let replay = match &stored {
            Some(s) => Replay::Custom(s.replay_id.clone()),
            None => Replay::Latest,
        };
        let result = self.follow(&subscriber, replay, None, shutdown).await;
        match (result, stored) {
            (Err(InboundError::Salesforce(SalesforceError::ReplayIdInvalid(reason))), Some(s)) => {
                self.follow(&subscriber, Replay::Latest, Some((&s, &reason)), shutdown)
                    .await
            }
            (result, _) => result,
        }
    }

    /// Subscribes from `replay`, runs `catch_up` once the subscription is open, and applies
    /// its events until it ends or `shutdown`.
    async fn follow(
        &self,
        subscriber: &Subscriber,
        replay: Replay,
        catch_up: Option<(&Stored, &str)>,
        shutdown: &CancellationToken,
    ) -> Result<(), InboundError> {
        let topic = &self.settings.topic;
        let mut sub = tokio::select! {
            sub = subscriber.subscribe(topic, replay, self.settings.batch) => sub?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        if let Some((stored, reason)) = catch_up {
            self.catch_up(stored, reason).await?;
        }
        let connected =
            metrics::gauge!("wholesail_salesforce_cdc_connected", "shop" => self.shop.to_string());
        connected.set(1.0);
        tracing::info!(shop = %self.shop, topic = %topic, "salesforce change subscription open");
        let read = self.read(&mut sub, shutdown).await;
        connected.set(0.0);
        read
    }

    /// Applies every event of `sub` until it ends or `shutdown`.
    async fn read(
        &self,
        sub: &mut Subscription,
        shutdown: &CancellationToken,
    ) -> Result<(), InboundError> {
        loop {
            let next = tokio::select! {
                next = sub.next() => next?,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let Some(event) = next else {
                tracing::info!(shop = %self.shop, "salesforce closed the change subscription");
                return Ok(());
            };
            self.apply(&event).await?;
        }
    }

    /// Applies one event and stores its replay id, in one transaction. A quote approval is
    /// read from Salesforce first: if that fails, nothing is stored and the subscription
    /// resumes at this event.
    async fn apply(&self, event: &ChangeEvent) -> Result<(), InboundError> {
        let lag = OffsetDateTime::now_utc() - event.commit_timestamp;
        metrics::histogram!("wholesail_salesforce_cdc_lag_seconds")
            .record(lag.as_seconds_f64().max(0.0));
        let own = event.is_from(&self.client.config().call_client);
        let approvals = match own || event.entity != "Quote" {
            true => Vec::new(),
            false => self.approved_quotes(event).await?,
        };
        let mut tx = self.pool.begin().await?;
        if !own {
            for approval in &approvals {
                quotes::record(&mut tx, &self.shop, approval, event.commit_timestamp).await?;
            }
            ownership::apply(&mut tx, &self.shop, event).await?;
        }
        store(
            &mut tx,
            &self.shop,
            &event.replay_id,
            event.commit_timestamp,
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("wholesail_salesforce_cdc_events_total", "entity" => event.entity.clone(), "own" => own.to_string())
            .increment(1);
        Ok(())
    }

    /// The quotes `event` approves, each read and submitted as a draft-order job.
    async fn approved_quotes(
        &self,
        event: &ChangeEvent,
    ) -> Result<Vec<quotes::Approval>, InboundError> {
        let approves = matches!(event.change_type, ChangeType::Create | ChangeType::Update)
            && event.fields.get("Status").and_then(|s| s.as_str())
                == Some(self.settings.approved_status.as_str());
        if !approves {
            return Ok(Vec::new());
        }
        let mut approvals = Vec::new();
        for quote in &event.record_ids {
            approvals.push(self.approve(quote).await?);
        }
        Ok(approvals)
    }

    async fn approve(&self, quote: &str) -> Result<quotes::Approval, InboundError> {
        quotes::approve(&self.pool, &self.client, &self.shops, &self.shop, quote).await
    }

    /// Reads with SOQL what changed since the last event applied, when its replay id has
    /// expired: the approved Quotes and the records the sync writes. Recorded in
    /// `salesforce_catchups`; the stored replay position moves to the catch-up's start.
    async fn catch_up(&self, stored: &Stored, reason: &str) -> Result<(), InboundError> {
        let started = OffsetDateTime::now_utc();
        tracing::warn!(shop = %self.shop, since = %stored.committed_at, reason,
            "salesforce no longer holds the stored replay id: catching up with SOQL; change events in the gap are not replayed");
        metrics::counter!("wholesail_salesforce_cdc_catchups_total", "shop" => self.shop.to_string())
            .increment(1);
        let id = sqlx::query_scalar!(
            "INSERT INTO salesforce_catchups (shop, reason, since) VALUES ($1, $2, $3)
             RETURNING id",
            self.shop.as_str(),
            format!("the stored replay id is no longer held: {reason}"),
            stored.committed_at,
        )
        .fetch_one(&self.pool)
        .await?;
        let since = stored.committed_at;
        let mut records = 0;
        for quote in
            quotes::approved_since(&self.client, &self.settings.approved_status, since).await?
        {
            let approval = self.approve(&quote.id).await?;
            let mut tx = self.pool.begin().await?;
            quotes::record(&mut tx, &self.shop, &approval, quote.last_modified).await?;
            tx.commit().await?;
            records += 1;
        }
        records += ownership::catch_up(&self.pool, &self.client, &self.shop, since).await?;
        let mut tx = self.pool.begin().await?;
        store(&mut tx, &self.shop, &stored.replay_id, started).await?;
        sqlx::query!(
            "UPDATE salesforce_catchups SET records = $3, finished_at = now()
             WHERE shop = $1 AND id = $2",
            self.shop.as_str(),
            id,
            records as i32,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The stored replay position of `shop`.
async fn load(pool: &PgPool, shop: &ShopDomain) -> Result<Option<Stored>, sqlx::Error> {
    Ok(sqlx::query!(
        "SELECT replay_id, committed_at FROM salesforce_replay WHERE shop = $1",
        shop.as_str()
    )
    .fetch_optional(pool)
    .await?
    .map(|r| Stored {
        replay_id: r.replay_id,
        committed_at: r.committed_at,
    }))
}

/// Stores `shop`'s replay position.
async fn store(
    conn: &mut sqlx::PgConnection,
    shop: &ShopDomain,
    replay_id: &[u8],
    committed_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO salesforce_replay (shop, replay_id, committed_at) VALUES ($1, $2, $3)
         ON CONFLICT (shop) DO UPDATE
         SET replay_id = $2, committed_at = $3, updated_at = now()",
        shop.as_str(),
        replay_id,
        committed_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}
