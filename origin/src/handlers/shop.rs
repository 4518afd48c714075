//! `shop/update` and `app/uninstalled`: the shop row.
//!
//! `app/uninstalled` updates the shop row like `shop/update`, records the uninstall in
//! `compliance_audit` and sets `shops.uninstalled_at` (once per uninstall: a redelivery finds
//! its audit row and changes nothing). The operational data stays until `shop/redact`, which
//! Shopify sends 48 hours later; after it the shop's events are stale.
//!
//! **Reinstall.** Shopify sends no webhooks to an app that is not installed, so an event
//! triggered (`X-Shopify-Triggered-At`) after the shop's redaction proves the app was installed
//! again: [`reinstalled`] clears `redacted_at` and `uninstalled_at`, records `reinstalled` in
//! `compliance_audit`, and the event is applied. Events triggered before the redaction (late
//! retries) stay stale, and so does an event without a triggered time.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::json;
use sqlx::PgConnection;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::compliance::record;
use super::version::{self, Key, Version, NEWER};
use super::{parse, HandlerError, InboxEvent, Verdict};

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
                                 source_digest, written_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (shop) DO UPDATE SET
             shopify_id = EXCLUDED.shopify_id,
             name = EXCLUDED.name,
             domain = EXCLUDED.domain,
             plan_name = EXCLUDED.plan_name,
             source_updated_at = EXCLUDED.source_updated_at,
             source_digest = EXCLUDED.source_digest,
             written_by = EXCLUDED.written_by,
             applied_at = now()
         WHERE {NEWER}"
    )
});

/// Upserts the shop row when its version is newer; `Applied` when it was written.
async fn upsert(
    conn: &mut PgConnection,
    event: &InboxEvent,
    shop: &Shop,
) -> Result<Verdict, HandlerError> {
    let version = Version::of(shop.updated_at, &event.payload);
    let written = sqlx::query(UPSERT.as_str())
        .bind(&event.shop)
        .bind(shop.id)
        .bind(&shop.name)
        .bind(&shop.domain)
        .bind(&shop.plan_name)
        .bind(version.updated_at)
        .bind(version.digest)
        .bind(event.written_by())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(version::outcome(conn, &event.shop, Key::Shop, &version, written > 0).await?)
}

/// Whether `event` of a redacted shop proves a reinstall (triggered after the redaction); if
/// so the shop is active again, and the reinstall is audited. Also true when a concurrent
/// event has just done so.
pub(super) async fn reinstalled(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<bool, HandlerError> {
    let cleared = sqlx::query!(
        r#"WITH before AS (SELECT redacted_at FROM shops WHERE shop = $1 FOR UPDATE)
         UPDATE shops s SET redacted_at = NULL, uninstalled_at = NULL, applied_at = now()
         FROM inbox i, before b
         WHERE s.shop = $1 AND i.shop = $1 AND i.id = $2 AND i.triggered_at > s.redacted_at
         RETURNING b.redacted_at AS "redacted_at!", i.triggered_at AS "triggered_at!""#,
        event.shop.as_str(),
        event.id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(cleared) = cleared else {
        // Stale, unless another event cleared the redaction while this one waited.
        return Ok(!crate::shop_lock::is_redacted(conn, &event.shop).await?);
    };
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let details = json!({
        "action": "reinstalled",
        "redacted_at": at(cleared.redacted_at),
        "event_triggered_at": at(cleared.triggered_at),
    });
    record(conn, event, &format!("shop:{}", event.shop), details).await?;
    tracing::warn!(shop = %event.shop, topic = %event.topic,
        "an event triggered after the shop's redaction: reinstalled, the redaction cleared");
    Ok(true)
}

/// `shop/update`: the shop row, guarded by its version.
pub(super) async fn update(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let shop: Shop = parse(event)?;
    upsert(conn, event, &shop).await
}

/// `app/uninstalled`: the shop row, then the uninstall, once per uninstall.
pub(super) async fn uninstalled(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let shop: Shop = parse(event)?;
    upsert(conn, event, &shop).await?;
    let details = json!({"action": "marked_uninstalled", "shopify_id": shop.id});
    if !record(conn, event, &format!("shop:{}", shop.id), details).await? {
        return Ok(Verdict::Stale("this uninstall was already recorded".into()));
    }
    sqlx::query!(
        "UPDATE shops SET uninstalled_at = now(), written_by = $2
         WHERE shop = $1 AND uninstalled_at IS NULL",
        event.shop.as_str(),
        event.written_by(),
    )
    .execute(conn)
    .await?;
    Ok(Verdict::Applied)
}
