//! `inventory_levels/update` and `inventory_levels/connect`: one row per inventory item and
//! location, guarded by the level's `updated_at`. `inventory_levels/disconnect` removes the
//! row unless it holds a version newer than the disconnect.

use std::sync::LazyLock;

use serde::Deserialize;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::version::{self, Key, Version, NEWER};
use super::{parse, HandlerError, InboxEvent, Verdict};

#[derive(Deserialize)]
struct InventoryLevel {
    inventory_item_id: i64,
    location_id: i64,
    // NULL when the item is not tracked at the location.
    available: Option<i32>,
    #[serde(with = "super::timestamp")]
    updated_at: OffsetDateTime,
}

static UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO inventory_levels AS t (shop, inventory_item_id, location_id, available,
                                            source_updated_at, source_digest, written_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (shop, inventory_item_id, location_id) DO UPDATE SET
             available = EXCLUDED.available,
             source_updated_at = EXCLUDED.source_updated_at,
             source_digest = EXCLUDED.source_digest,
             written_by = EXCLUDED.written_by,
             applied_at = now()
         WHERE {NEWER}"
    )
});

/// Upserts the level when its version is newer.
pub(super) async fn upsert(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let level: InventoryLevel = parse(event)?;
    let version = Version::of(level.updated_at, &event.payload);
    let written = sqlx::query(UPSERT.as_str())
        .bind(&event.shop)
        .bind(level.inventory_item_id)
        .bind(level.location_id)
        .bind(level.available)
        .bind(version.updated_at)
        .bind(version.digest)
        .bind(event.written_by())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let key = Key::Level(level.inventory_item_id, level.location_id);
    Ok(version::outcome(conn, &event.shop, key, &version, written > 0).await?)
}

/// An `inventory_levels/disconnect` payload: the pair only, no `updated_at`.
#[derive(Deserialize)]
struct Disconnected {
    inventory_item_id: i64,
    location_id: i64,
}

/// Removes the level. The payload has no `updated_at`, so the disconnect's version is when
/// Shopify triggered it (`Shopify-Triggered-At`, else when it was received, else now): a
/// level written by a later version (a reconnect already applied) is kept, `Stale`. A level
/// update older than the disconnect that arrives after it can re-create the row; the next
/// catalog resync removes it.
pub(super) async fn disconnect(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let level: Disconnected = parse(event)?;
    let removed = sqlx::query!(
        "DELETE FROM inventory_levels
         WHERE shop = $1 AND inventory_item_id = $2 AND location_id = $3
           AND source_updated_at <= coalesce(
                   (SELECT coalesce(triggered_at, received_at) FROM inbox WHERE shop = $1 AND id = $4),
                   now())",
        event.shop.as_str(),
        level.inventory_item_id,
        level.location_id,
        event.id,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(Verdict::from_won(removed > 0, || {
        "no level, or the level holds a version newer than the disconnect".into()
    }))
}
