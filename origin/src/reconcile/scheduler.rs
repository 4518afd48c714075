//! The scheduled runs, per shop:
//! - subscriptions at start-up, then every `subscriptions_interval_ms` (with a `webhook_uri`);
//! - orders: a shop without any finished order run (just installed) is backfilled over the
//!   last `install_backfill_days`; then each `orders` schedule runs when the last finished run
//!   over at least its window (read from `reconcile_runs`, so a restart does not repeat it) is
//!   `every_ms` old;
//! - catalog: a shop without any completed catalog run gets a first resync at start-up
//!   (install); then a catalog reconciliation `catalog_interval_ms` after the last completed
//!   catalog run;
//! - price lists: every `price_lists_interval_ms` (the first one interval after the last run,
//!   or after start-up);
//! - Salesforce: each connected shop every `salesforce_interval_ms` over the last
//!   `salesforce_window_hours` (the first one interval after its last run, or after start-up).
//!
//! Jobs run one at a time; a failure is logged and recorded on its run, and retried at the
//! job's next turn.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wholesail_webhook::ShopDomain;

use super::runs::{Trigger, Window};
use super::{catalog, orders, price_lists, salesforce, subscriptions, Settings};
use crate::shops::Shops;

/// What the scheduler needs.
#[derive(Clone)]
pub struct Context {
    /// The database.
    pub pool: PgPool,
    /// The shops and their clients.
    pub shops: Arc<Shops>,
    /// `[reconcile]`.
    pub settings: Settings,
    /// Catalog runs.
    pub catalog: crate::catalog::Runner,
    /// How order runs wait for Shopify.
    pub timing: orders::Timing,
    /// The Salesforce client of each connected shop.
    pub salesforce: HashMap<ShopDomain, wholesail_salesforce::Client>,
    /// The Salesforce sync's settings (its budget reserve).
    pub salesforce_sync: crate::salesforce::runner::Settings,
}

/// One kind of scheduled job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Job {
    Subscriptions,
    Orders(usize),
    Catalog,
    PriceLists,
    Salesforce,
}

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let s = &ctx.settings;
    let mut jobs = Vec::new();
    if s.webhook_uri.is_some() {
        jobs.push(Job::Subscriptions);
    }
    jobs.extend((0..s.orders.len()).map(Job::Orders));
    if s.catalog_interval_ms > 0 {
        jobs.push(Job::Catalog);
    }
    if s.price_lists_interval_ms > 0 {
        jobs.push(Job::PriceLists);
    }
    let mut due: HashMap<(ShopDomain, Job), Instant> = HashMap::new();
    if s.salesforce_interval_ms > 0 {
        for shop in ctx.salesforce.keys() {
            let at = first_due(&ctx, shop, Job::Salesforce)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(%shop, error = %e, "reading the last reconciliation runs");
                    Instant::now() + every(s, Job::Salesforce)
                });
            due.insert((shop.clone(), Job::Salesforce), at);
        }
    }
    for shop in ctx.shops.domains() {
        if let Err(e) = install(&ctx, shop, &shutdown).await {
            tracing::error!(%shop, error = %e, "install reconciliation failed");
        }
        for &job in &jobs {
            let at = first_due(&ctx, shop, job).await.unwrap_or_else(|e| {
                tracing::error!(%shop, error = %e, "reading the last reconciliation runs");
                Instant::now()
            });
            due.insert((shop.clone(), job), at);
        }
    }
    loop {
        let now = Instant::now();
        let ready: Vec<(ShopDomain, Job)> = due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (shop, job) in ready {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = run_job(&ctx, &shop, job) => {}
            }
            due.insert((shop, job), Instant::now() + every(s, job));
        }
        let next = due.values().min().copied();
        let wait = next.map_or(Duration::from_secs(60), |n| {
            n.saturating_duration_since(Instant::now())
                .min(Duration::from_secs(60))
        });
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn every(s: &Settings, job: Job) -> Duration {
    let ms = match job {
        Job::Subscriptions => s.subscriptions_interval_ms,
        Job::Orders(i) => s.orders[i].every_ms,
        Job::Catalog => s.catalog_interval_ms,
        Job::PriceLists => s.price_lists_interval_ms,
        Job::Salesforce => s.salesforce_interval_ms,
    };
    Duration::from_millis(ms.max(1_000))
}

/// When `job` is next due for `shop`: its interval after its last scheduled run.
async fn first_due(ctx: &Context, shop: &ShopDomain, job: Job) -> Result<Instant, sqlx::Error> {
    let last = match job {
        Job::Subscriptions => None,
        Job::Orders(i) => {
            // Any finished run over at least this window (the install backfill covers them all).
            let hours = i32::try_from(ctx.settings.orders[i].window_hours).unwrap_or(i32::MAX);
            sqlx::query_scalar!(
                "SELECT max(started_at) FROM reconcile_runs
                 WHERE shop = $1 AND scope = 'orders' AND error IS NULL
                   AND finished_at IS NOT NULL
                   AND (window_start IS NULL
                        OR extract(epoch FROM started_at - window_start) >= $2::int * 3600 - 900)",
                shop.as_str(),
                hours,
            )
            .fetch_one(&ctx.pool)
            .await?
        }
        Job::Catalog => {
            // The last completed catalog run, whoever started it (the install's first resync).
            sqlx::query_scalar!(
                "SELECT max(created_at) FROM catalog_runs WHERE shop = $1 AND status = 'completed'",
                shop.as_str(),
            )
            .fetch_one(&ctx.pool)
            .await?
        }
        Job::PriceLists | Job::Salesforce => {
            let scope = match job {
                Job::PriceLists => "price_lists",
                _ => "salesforce",
            };
            sqlx::query_scalar!(
                "SELECT max(started_at) FROM reconcile_runs
                 WHERE shop = $1 AND scope = $2 AND trigger = 'schedule'",
                shop.as_str(),
                scope,
            )
            .fetch_one(&ctx.pool)
            .await?
        }
    };
    let Some(last) = last else {
        return Ok(match job {
            Job::PriceLists | Job::Salesforce => Instant::now() + every(&ctx.settings, job),
            _ => Instant::now(),
        });
    };
    let age = (OffsetDateTime::now_utc() - last).max(time::Duration::ZERO);
    let left = every(&ctx.settings, job).saturating_sub(age.unsigned_abs());
    Ok(Instant::now() + left)
}

/// A newly installed shop: its order history and a first catalog resync.
async fn install(
    ctx: &Context,
    shop: &ShopDomain,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let client = ctx.shops.client(shop)?;
    let backfilled = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM reconcile_runs WHERE shop = $1 AND scope = 'orders'
                           AND finished_at IS NOT NULL AND error IS NULL) AS "yes!""#,
        shop.as_str(),
    )
    .fetch_one(&ctx.pool)
    .await?;
    if !backfilled && !ctx.settings.orders.is_empty() {
        let days = i64::from(ctx.settings.install_backfill_days);
        let window = Window {
            start: Some(OffsetDateTime::now_utc() - time::Duration::days(days)),
            end: None,
        };
        let run = orders::reconcile(
            &ctx.pool,
            &client,
            shop,
            window,
            &ctx.timing,
            ctx.settings.orders_mode,
            Trigger::Schedule,
        );
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = run => {
                let (id, counts) = r?;
                tracing::info!(%shop, run = id, ?counts, "install: order history reconciled");
            }
        }
    }
    let synced = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM catalog_runs WHERE shop = $1
                           AND status = 'completed') AS "yes!""#,
        shop.as_str(),
    )
    .fetch_one(&ctx.pool)
    .await?;
    if !synced && ctx.settings.catalog_interval_ms > 0 {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = ctx.catalog.resync(&client, shop, &|_| {}) => {
                let outcome = r?;
                tracing::info!(%shop, run = outcome.run.id, "install: first catalog resync");
            }
        }
    }
    Ok(())
}

async fn run_job(ctx: &Context, shop: &ShopDomain, job: Job) {
    let s = &ctx.settings;
    if job == Job::Salesforce {
        let Some(client) = ctx.salesforce.get(shop) else {
            return;
        };
        let back = time::Duration::hours(i64::from(s.salesforce_window_hours));
        let window = Window {
            start: Some(OffsetDateTime::now_utc() - back),
            end: None,
        };
        let outcome = salesforce::reconcile(
            &ctx.pool,
            client,
            &ctx.salesforce_sync,
            shop,
            window,
            s.salesforce_mode,
            Trigger::Schedule,
        )
        .await
        .map_err(anyhow::Error::from);
        return report(shop, job, outcome);
    }
    let Ok(client) = ctx.shops.client(shop) else {
        return;
    };
    let outcome = match job {
        Job::Subscriptions => {
            let uri = s.webhook_uri.as_deref().unwrap_or_default();
            subscriptions::reconcile(
                &ctx.pool,
                &client,
                shop,
                uri,
                s.subscriptions_mode,
                Trigger::Schedule,
            )
            .await
            .map_err(anyhow::Error::from)
        }
        Job::Orders(i) => {
            let back = time::Duration::hours(i64::from(s.orders[i].window_hours));
            let window = Window {
                start: Some(OffsetDateTime::now_utc() - back),
                end: None,
            };
            orders::reconcile(
                &ctx.pool,
                &client,
                shop,
                window,
                &ctx.timing,
                s.orders_mode,
                Trigger::Schedule,
            )
            .await
            .map_err(anyhow::Error::from)
        }
        Job::Catalog => catalog::reconcile(
            &ctx.pool,
            &ctx.catalog,
            client.clone(),
            shop,
            Duration::from_millis(s.settle_ms),
            s.catalog_mode,
            Trigger::Schedule,
        )
        .await
        .map_err(anyhow::Error::from),
        Job::PriceLists => price_lists::reconcile(
            &ctx.pool,
            &client,
            shop,
            None,
            s.price_lists_mode,
            Trigger::Schedule,
        )
        .await
        .map_err(anyhow::Error::from),
        Job::Salesforce => return,
    };
    report(shop, job, outcome);
}

fn report(shop: &ShopDomain, job: Job, outcome: anyhow::Result<(i64, super::runs::Counts)>) {
    match outcome {
        Ok((id, counts)) if counts.missing + counts.stale > 0 => {
            tracing::warn!(%shop, ?job, run = id, ?counts, "reconciliation found drift")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(%shop, ?job, error = %e, "reconciliation failed"),
    }
}
