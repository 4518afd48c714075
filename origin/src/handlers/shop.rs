//! `shop/update` and `app/uninstalled`: the shop row.
//!
//! `app/uninstalled` updates the shop row like `shop/update`, records the uninstall in
//! `compliance_audit` and sets `shops.uninstalled_at` (once per uninstall: a redelivery finds
//! its audit row and changes nothing). The operational data stays until `shop/redact`, which
//! Shopify sends 48 hours later. The install flow clears `uninstalled_at`.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::compliance::record;
use super::version::{Version, NEWER};
use super::{parse, HandlerError, InboxEvent, Outcome};

/// The shop object both topics carry.
#[derive(Deserialize)]
struct Shop {
    id: i64,
    #[serde(with = "super::timestamp")]
    updated_at: OffsetDateTime,
    name: Option<String>,
    domain: Option<String>,
    plan_name: Option<String>,
}

static UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO shops AS t (shop, shopify_id, name, domain, plan_name, source_updated_at,
                                 source_digest)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (shop) DO UPDATE SET
             shopify_id = EXCLUDED.shopify_id,
             name = EXCLUDED.name,
             domain = EXCLUDED.domain,
             plan_name = EXCLUDED.plan_name,
             source_updated_at = EXCLUDED.source_updated_at,
             source_digest = EXCLUDED.source_digest,
             applied_at = now()
         WHERE {NEWER}"
    )
});

/// Upserts the shop row when its version is newer; true when it was written.
async fn upsert(
    conn: &mut PgConnection,
    event: &InboxEvent,
    shop: &Shop,
) -> Result<bool, HandlerError> {
    let version = Version::of(shop.updated_at, &event.payload);
    let written = sqlx::query(UPSERT.as_str())
        .bind(&event.shop)
        .bind(shop.id)
        .bind(&shop.name)
        .bind(&shop.domain)
        .bind(&shop.plan_name)
        .bind(version.updated_at)
        .bind(version.digest)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(written > 0)
}

/// `shop/update`: the shop row, guarded by its version.
pub(super) async fn update(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Outcome, HandlerError> {
    let shop: Shop = parse(event)?;
    Ok(Outcome::from_won(upsert(conn, event, &shop).await?))
}

/// `app/uninstalled`: the shop row, then the uninstall, once per uninstall.
pub(super) async fn uninstalled(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Outcome, HandlerError> {
    let shop: Shop = parse(event)?;
    upsert(conn, event, &shop).await?;
    let details = json!({"action": "marked_uninstalled", "shopify_id": shop.id});
    if !record(conn, event, &format!("shop:{}", shop.id), details).await? {
        return Ok(Outcome::Stale);
    }
    sqlx::query!(
        "UPDATE shops SET uninstalled_at = now() WHERE shop = $1 AND uninstalled_at IS NULL",
        event.shop.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(Outcome::Applied)
}
