//! What makes a buyer's pushed rules stale, and the background loop that pushes them again.
//!
//! Marks live in two tables (migration `0020_rules.sql`):
//! - `rules_dirty(shop, company_location)`: written by a trigger on `orders` (an order of a
//!   location with quotas consumes them), and by rule edits ([`mark_locations`]; `*` marks
//!   every buyer of the shop, for SKU-level and routing rules);
//! - `rules_dirty_variants(shop, variant_id)`: written by a statement trigger on
//!   `inventory_levels` (stock changed); resolved to the buyers whose rules cover the variant.
//!
//! Rule edits and the inventory trigger `NOTIFY` [`CHANNEL`]; the orders trigger does not (a
//! NOTIFY serialises the commits of every order transaction on PostgreSQL's notify lock), so
//! order marks are found by polling. [`run`] (spawned by `origin serve`) waits for a
//! notification or the poll interval, lets a burst settle for a quiet period, then
//! [`push_dirty`]s each shop: only the marked buyers are recomputed, only changed pages sent.
//! Marks are append-only rows (never upserts, so concurrent order and inventory writers never
//! wait on each other's marks); a push deletes exactly the marks it read.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_shopify_admin::{AdminClient, AdminError, BreakerState};

use super::push::{push, PushError, PushReport};
use crate::shops::Shops;

/// The NOTIFY channel of the marks (payload: the shop).
pub const CHANNEL: &str = "wholesail_rules_dirty";

/// The mark meaning "every buyer of the shop".
pub const ALL_BUYERS: &str = "*";

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

/// Marks buyers of `shop` dirty (or all of them with [`ALL_BUYERS`]) and notifies, inside the
/// caller's transaction.
pub async fn mark_locations(
    conn: &mut sqlx::PgConnection,
    shop: &str,
    locations: &[String],
) -> Result<(), sqlx::Error> {
    if locations.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO rules_dirty (shop, company_location)
         SELECT $1, l FROM unnest($2::text[]) l",
    )
    .bind(shop)
    .bind(locations)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(shop)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Pushes the buyers of `shop` that are marked dirty, then clears the marks it handled.
pub async fn push_dirty(
    pool: &PgPool,
    client: &AdminClient,
    shop: &str,
) -> Result<PushReport, PushError> {
    // The marks as read now; exactly these are deleted after the push, so a mark committed
    // meanwhile survives for the next round.
    let marks: Vec<(String, i64)> =
        sqlx::query_as("SELECT company_location, mark_id FROM rules_dirty WHERE shop = $1")
            .bind(shop)
            .fetch_all(pool)
            .await?;
    let variant_marks: Vec<(i64, i64)> =
        sqlx::query_as("SELECT variant_id, mark_id FROM rules_dirty_variants WHERE shop = $1")
            .bind(shop)
            .fetch_all(pool)
            .await?;
    if marks.is_empty() && variant_marks.is_empty() {
        return Ok(PushReport::default());
    }
    let variants: Vec<i64> = variant_marks.iter().map(|m| m.0).collect();
    let mut buyers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT r.company_location
         FROM variants v
         JOIN (SELECT shop, company_location, target_kind, target_id FROM rule_line_limits
               UNION ALL
               SELECT shop, company_location, target_kind, target_id FROM rule_quotas) r
           ON r.shop = v.shop
          AND ((r.target_kind = 'variant' AND r.target_id = v.id)
               OR (r.target_kind = 'product' AND r.target_id = v.product_id))
         WHERE v.shop = $1 AND v.id = ANY($2)
         UNION
         -- A variant restricted per SKU is in every buyer's rules.
         SELECT $3 FROM variants v
         WHERE v.shop = $1 AND v.id = ANY($2) AND EXISTS (
           SELECT 1 FROM (SELECT shop, target_kind, target_id FROM rule_sku_warehouses
                          UNION ALL
                          SELECT shop, target_kind, target_id FROM rule_sku_regions) s
           WHERE s.shop = v.shop
             AND ((s.target_kind = 'variant' AND s.target_id = v.id)
                  OR (s.target_kind = 'product' AND s.target_id = v.product_id)))",
    )
    .bind(shop)
    .bind(&variants)
    .bind(ALL_BUYERS)
    .fetch_all(pool)
    .await?;
    buyers.extend(marks.iter().map(|m| m.0.clone()));
    buyers.sort_unstable();
    buyers.dedup();
    let report = if buyers.iter().any(|l| l == ALL_BUYERS) {
        push(pool, client, shop, None).await?
    } else if buyers.is_empty() {
        PushReport::default()
    } else {
        push(pool, client, shop, Some(&buyers)).await?
    };
    let handled: Vec<i64> = marks.iter().map(|m| m.1).collect();
    sqlx::query("DELETE FROM rules_dirty WHERE mark_id = ANY($1)")
        .bind(&handled)
        .execute(pool)
        .await?;
    let handled: Vec<i64> = variant_marks.iter().map(|m| m.1).collect();
    sqlx::query("DELETE FROM rules_dirty_variants WHERE mark_id = ANY($1)")
        .bind(&handled)
        .execute(pool)
        .await?;
    Ok(report)
}

/// Pushes every shop that has marks; a shop that fails is logged and retried next round, unless
/// its Shopify circuit breaker is open: then its push waits (marks kept) until the breaker's
/// cool-down has passed, when the push's first call is the breaker's probe.
pub async fn push_all_dirty(pool: &PgPool, shops: &Shops) -> Result<(), sqlx::Error> {
    let marked: Vec<String> = sqlx::query_scalar(
        "SELECT shop FROM rules_dirty UNION SELECT shop FROM rules_dirty_variants",
    )
    .fetch_all(pool)
    .await?;
    for shop in marked {
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
