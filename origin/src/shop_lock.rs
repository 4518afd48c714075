//! The per-shop lock that orders `shop/redact` against the shop's other writes.
//!
//! Every handler transaction, and every catalog merge, takes the shop's transaction-scoped advisory lock in shared mode
//! before it reads `shops.redacted_at`; `shop/redact` takes it exclusively. So a redaction waits
//! for the events already past their redacted check to commit (and then deletes their rows),
//! and events arriving meanwhile wait for the redaction and then see the shop redacted. Both
//! locks are released when the worker's transaction ends. Claims hand a worker its events in
//! shop order, so two workers take shop locks in the same order and cannot deadlock each other.
//! A worker batch takes the locks of all its shops at once ([`ShopGate`]).

use std::collections::HashSet;

use sqlx::PgConnection;
use wholesail_webhook::ShopDomain;

/// The lock is keyed by a 64-bit hash of a namespaced name (`'wholesail-shop:' || shop`), so
/// other advisory lock users (sqlx's migration lock, catalog runs) do not collide with it.
/// Takes `shop`'s lock in shared mode (every event except `shop/redact`, catalog merges).
pub(crate) async fn shared(conn: &mut PgConnection, shop: &ShopDomain) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT 1 AS locked FROM pg_advisory_xact_lock_shared(
             hashtextextended('wholesail-shop:' || $1, 0))",
        shop.as_str()
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Takes `shop`'s lock exclusively (`shop/redact`): waits for the shop's events in flight.
/// Same key as [`shared`].
pub(crate) async fn exclusive(
    conn: &mut PgConnection,
    shop: &ShopDomain,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT 1 AS locked FROM pg_advisory_xact_lock(
             hashtextextended('wholesail-shop:' || $1, 0))",
        shop.as_str()
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Whether `shop/redact` has removed the shop's data (its events are then not applied).
pub(crate) async fn is_redacted(
    conn: &mut PgConnection,
    shop: &ShopDomain,
) -> Result<bool, sqlx::Error> {
    let redacted = sqlx::query_scalar!(
        r#"SELECT redacted_at IS NOT NULL AS "redacted!" FROM shops WHERE shop = $1"#,
        shop.as_str()
    )
    .fetch_optional(conn)
    .await?;
    Ok(redacted.unwrap_or(false))
}

/// The shop locks of one worker batch, taken once for all its shops instead of once per event,
/// and which of those shops were not redacted once their locks were held. While a shop's
/// shared lock is held no other transaction can redact it (`shop/redact` needs the lock
/// exclusively), so the answer holds until the batch's own events could change it
/// ([`ShopGate::forget`]).
#[derive(Debug, Default)]
pub struct ShopGate {
    clear: HashSet<String>,
}

impl ShopGate {
    /// Takes the shared lock of each of `shops` in shop order (the order every worker takes
    /// them in), then reads which are not redacted, in a statement of its own so that its
    /// snapshot follows the locks.
    pub async fn take(
        conn: &mut PgConnection,
        shops: impl IntoIterator<Item = &ShopDomain>,
    ) -> Result<Self, sqlx::Error> {
        let mut shops: Vec<&str> = shops.into_iter().map(ShopDomain::as_str).collect();
        shops.sort_unstable();
        shops.dedup();
        sqlx::query!(
            r#"SELECT count(*) AS "locked!" FROM (
                 SELECT pg_advisory_xact_lock_shared(hashtextextended('wholesail-shop:' || s, 0))
                 FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n) ORDER BY n
             ) l"#,
            &shops as &[&str],
        )
        .fetch_one(&mut *conn)
        .await?;
        let clear = sqlx::query_scalar!(
            r#"SELECT s AS "shop!" FROM unnest($1::text[]) AS u(s)
             WHERE NOT EXISTS (SELECT 1 FROM shops
                               WHERE shops.shop = u.s AND shops.redacted_at IS NOT NULL)"#,
            &shops as &[&str],
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(ShopGate {
            clear: clear.into_iter().collect(),
        })
    }

    /// Whether `shop` is known not to be redacted.
    pub fn is_clear(&self, shop: &ShopDomain) -> bool {
        self.clear.contains(shop.as_str())
    }

    /// Drops what is known of `shop`: an event about to be applied may redact it (or reinstall
    /// it), so the shop's later events check for themselves.
    pub fn forget(&mut self, shop: &ShopDomain) {
        self.clear.remove(shop.as_str());
    }
}
