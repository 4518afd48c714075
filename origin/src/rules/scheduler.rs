//! The background rules push: [`run`] (spawned by `origin serve`) waits for a NOTIFY on
//! [`marks::CHANNEL`] or the poll interval (order marks are found by polling), lets a burst
//! settle for a quiet period, then [`push_dirty`]s each marked shop: only the marked buyers are
//! recomputed, only changed pages sent.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_shopify_admin::{AdminClient, AdminError, BreakerState};
use wholesail_webhook::ShopDomain;

use super::marks::{self, CHANNEL};
use super::push::{push, PushError, PushReport};
use crate::shops::Shops;

/// How the background push waits (`[rules]` in the configuration).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Push once no mark arrived for this long (milliseconds).
    pub quiet_ms: u64,
    /// Push at the latest this long after the first mark of a burst (milliseconds).
    pub max_delay_ms: u64,
    /// Look for marks this often even without a notification (milliseconds).
    pub poll_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quiet_ms: 2_000,
            max_delay_ms: 30_000,
            poll_interval_ms: 5_000,
        }
    }
}

/// Pushes the buyers of `shop` that are marked dirty and syncs their price lists
/// ([`crate::reconcile::price_lists::sync`]), then clears the marks it handled.
pub async fn push_dirty(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
) -> Result<PushReport, PushError> {
    let Some(taken) = marks::take(pool, shop).await? else {
        return Ok(PushReport::default());
    };
    let report = if taken.all_buyers() {
        push(pool, client, shop, None).await?
    } else if taken.buyers.is_empty() {
        PushReport::default()
    } else {
        push(pool, client, shop, Some(&taken.buyers)).await?
    };
    // The metafields are current now: that is when a rule change or an order's quota use
    // becomes visible at checkout.
    taken.observe_pushed(&report.failed);
    // The same buyers' negotiated prices and quantity rules, in their Shopify price lists.
    if taken.all_buyers() || !taken.buyers.is_empty() {
        let buyers = (!taken.all_buyers()).then_some(taken.buyers.as_slice());
        crate::reconcile::price_lists::sync(pool, client, shop, buyers).await?;
    }
    marks::clear(pool, &taken).await?;
    Ok(report)
}

/// Pushes every shop that has marks; a shop that fails is logged and retried next round, unless
/// its Shopify circuit breaker is open: then its push waits (marks kept) until the breaker's
/// cool-down has passed, when the push's first call is the breaker's probe.
pub async fn push_all_dirty(pool: &PgPool, shops: &Shops) -> Result<(), sqlx::Error> {
    for shop in marks::marked_shops(pool).await? {
        let client = match shops.client(&shop) {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%shop, %error, "rules marked dirty for a shop without a client");
                continue;
            }
        };
        if let BreakerState::Open { retry_in } = client.breaker().state() {
            tracing::debug!(%shop, ?retry_in, "rules push deferred: the shop's Shopify circuit is open");
            continue;
        }
        match push_dirty(pool, &client, &shop).await {
            Ok(r) => tracing::info!(
                %shop,
                buyers = r.buyers,
                changed = r.changed_buyers,
                metafields = r.metafields,
                calls = r.calls,
                failed = r.failed.len(),
                "rules pushed"
            ),
            Err(PushError::Admin(AdminError::CircuitOpen { retry_in })) => {
                tracing::warn!(%shop, ?retry_in, "rules push deferred: the shop's Shopify circuit opened")
            }
            Err(error) => tracing::error!(%shop, %error, "rules push failed; will retry"),
        }
    }
    Ok(())
}

/// The background push: waits for marks, debounces, pushes; until `shutdown`.
pub async fn run(pool: PgPool, shops: Arc<Shops>, settings: Settings, shutdown: CancellationToken) {
    if shops.domains().is_empty() {
        tracing::info!("no [[shops]] configured: the background rules push is off");
        return;
    }
    let mut listener: Option<PgListener> = None;
    loop {
        if listener.is_none() {
            listener = connect(&pool).await;
        }
        if let Err(error) = push_all_dirty(&pool, &shops).await {
            tracing::error!(%error, "rules push round failed");
        }
        // Wait for a first notification, then for the burst to settle.
        let poll = Duration::from_millis(settings.poll_interval_ms.max(10));
        let quiet = Duration::from_millis(settings.quiet_ms);
        let first = wait(&mut listener, poll, &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        if first {
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(settings.max_delay_ms);
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() || !wait(&mut listener, quiet.min(left), &shutdown).await {
                    break;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
    }
}

/// A listener on its own connection ([`crate::listener`]); `None` (polling) when it fails.
async fn connect(pool: &PgPool) -> Option<PgListener> {
    match crate::listener::listen(pool, CHANNEL).await {
        Ok(l) => Some(l),
        Err(error) => {
            tracing::warn!(%error, "rules LISTEN failed; polling");
            None
        }
    }
}

/// Whether a notification arrived within `timeout` (false on timeout, shutdown or a lost
/// connection, which is dropped to be reconnected).
async fn wait(
    listener: &mut Option<PgListener>,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> bool {
    let Some(l) = listener.as_mut() else {
        tokio::select! {
            _ = tokio::time::sleep(timeout) => {}
            _ = shutdown.cancelled() => {}
        }
        return false;
    };
    tokio::select! {
        r = tokio::time::timeout(timeout, l.recv()) => match r {
            Ok(Ok(_)) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "rules LISTEN connection lost");
                *listener = None;
                false
            }
            Err(_) => false,
        },
        _ = shutdown.cancelled() => false,
    }
}
