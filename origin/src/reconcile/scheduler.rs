//! The scheduled runs: each shop's subscriptions at start-up, then every
//! `subscriptions_interval_ms`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::runs::Trigger;
use super::{subscriptions, Settings};
use crate::shops::Shops;

/// Runs until `shutdown`; returns at once when no `webhook_uri` is configured.
pub async fn run(pool: PgPool, shops: Arc<Shops>, settings: Settings, shutdown: CancellationToken) {
    let Some(uri) = settings.webhook_uri else {
        return;
    };
    let every = Duration::from_millis(settings.subscriptions_interval_ms.max(1_000));
    loop {
        for shop in shops.domains() {
            let Ok(client) = shops.client(shop) else {
                continue;
            };
            let run = subscriptions::reconcile(
                &pool,
                &client,
                shop,
                &uri,
                settings.subscriptions_mode,
                Trigger::Schedule,
            );
            let outcome = tokio::select! {
                () = shutdown.cancelled() => return,
                outcome = run => outcome,
            };
            match outcome {
                Ok((id, counts)) if counts.missing + counts.stale > 0 => {
                    tracing::warn!(%shop, run = id, ?counts, "webhook subscriptions reconciled")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(%shop, error = %e, "webhook subscriptions not reconciled")
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
