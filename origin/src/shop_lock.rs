//! The per-shop lock that orders `shop/redact` against the shop's other writes.
//!
//! Every handler transaction, and every catalog merge, takes the shop's transaction-scoped advisory lock in shared mode
//! before it reads `shops.redacted_at`; `shop/redact` takes it exclusively. So a redaction waits
//! for the events already past their redacted check to commit (and then deletes their rows),
//! and events arriving meanwhile wait for the redaction and then see the shop redacted. Both
//! locks are released when the worker's transaction ends. Claims hand a worker its events in
//! shop order, so two workers take shop locks in the same order and cannot deadlock each other.

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
