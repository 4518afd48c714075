//! Inbox retention: a background task of `origin serve` that deletes, in batches,
//!
//! - `done` rows inserted more than `inbox.retention_days` ago (default 30; 0 keeps them), and
//! - the finished rows (`done`, `dead`, `quarantined`) of shops redacted by `shop/redact`,
//!   whatever their age, except the `shop/redact` row itself: late deliveries and the rows a
//!   worker held while the redaction ran.
//!
//! Each batch is one short `DELETE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`
//! transaction, so purging never holds many locks or waits for workers. Old rows are found
//! through the BRIN index on `inserted_at`. Pending, processing, dead and quarantined rows are
//! never purged by age. A purged row no longer deduplicates its webhook id: keep the retention
//! well above Shopify's redelivery window (48 hours) and the edge's parking time.
//!
//! Metric: `wholesail_inbox_purged_total{reason="retention"|"redacted_shop"}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// `[inbox]` settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Done rows older than this many days are purged; 0 keeps them forever.
    pub retention_days: u32,
    /// Rows per DELETE.
    pub purge_batch: i64,
    /// Time between purge passes, in milliseconds.
    pub purge_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retention_days: 30,
            purge_batch: 5_000,
            purge_interval_ms: 600_000,
        }
    }
}

impl Settings {
    /// Refuses settings that would break deduplication or never make progress.
    pub fn check(&self) -> Result<(), String> {
        if self.retention_days == 1 || self.retention_days == 2 {
            return Err(
                "inbox.retention_days must be 0 (keep) or ≥ 3: Shopify redelivers \
                        for 48 hours and a purged row no longer deduplicates"
                    .into(),
            );
        }
        if self.purge_batch < 1 || self.purge_interval_ms == 0 {
            return Err("inbox.purge_batch and inbox.purge_interval_ms must be ≥ 1".into());
        }
        Ok(())
    }
}

/// Rows one pass purged.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Done rows older than the retention.
    pub retention: u64,
    /// Finished rows of redacted shops.
    pub redacted_shop: u64,
}

/// One pass: deletes batches until none is full or `stop` is cancelled.
pub async fn purge(
    pool: &PgPool,
    settings: &Settings,
    stop: &CancellationToken,
) -> Result<Purged, sqlx::Error> {
    let mut purged = Purged::default();
    if settings.retention_days > 0 {
        loop {
            let n = sqlx::query!(
                "DELETE FROM inbox WHERE (shop, id) IN (
                     SELECT shop, id FROM inbox
                     WHERE inserted_at < now() - $1::float8 * interval '1 day' AND status = 'done'
                     LIMIT $2 FOR UPDATE SKIP LOCKED)",
                f64::from(settings.retention_days),
                settings.purge_batch,
            )
            .execute(pool)
            .await?
            .rows_affected();
            purged.retention += n;
            metrics::counter!("wholesail_inbox_purged_total", "reason" => "retention").increment(n);
            if (n as i64) < settings.purge_batch || stop.is_cancelled() {
                break;
            }
        }
    }
    loop {
        let n = sqlx::query!(
            "DELETE FROM inbox WHERE (shop, id) IN (
                 SELECT i.shop, i.id FROM shops s JOIN inbox i ON i.shop = s.shop
                 WHERE s.redacted_at IS NOT NULL AND i.topic <> 'shop/redact'
                   AND i.status IN ('done', 'dead', 'quarantined')
                 LIMIT $1 FOR UPDATE OF i SKIP LOCKED)",
            settings.purge_batch,
        )
        .execute(pool)
        .await?
        .rows_affected();
        purged.redacted_shop += n;
        metrics::counter!("wholesail_inbox_purged_total", "reason" => "redacted_shop").increment(n);
        if (n as i64) < settings.purge_batch || stop.is_cancelled() {
            break;
        }
    }
    Ok(purged)
}

/// Runs [`purge`] at start and then every `purge_interval_ms` until `shutdown`.
pub async fn run(pool: PgPool, settings: Settings, shutdown: CancellationToken) {
    let interval = Duration::from_millis(settings.purge_interval_ms);
    loop {
        match purge(&pool, &settings, &shutdown).await {
            Ok(p) if p != Purged::default() => tracing::info!(
                retention = p.retention,
                redacted_shop = p.redacted_shop,
                "inbox rows purged"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "inbox purge failed; next pass retries"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
