//! Dead letters: inspection and replay, shared by the CLI and the admin API.
//!
//! A dead letter is an inbox row with status `dead`: a handler refused it (invalid payload),
//! it failed `max_attempts` times, or the edge gave up delivering it. Replay puts the selected
//! rows back to `pending` with their attempts reset; the handlers are guarded by the source's
//! `updated_at` and the row's done mark commits with the effect, so a replay applies an event
//! at most once more and never duplicates an effect.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use crate::pipeline::inbox::{self, InboxStatus};

/// Which dead letters to list or replay. Empty fields do not filter.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only these inbox row ids.
    #[serde(default)]
    pub ids: Vec<i64>,
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this shop domain.
    pub shop: Option<ShopDomain>,
    /// Received at or after (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Received before (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

impl Filter {
    /// Whether the filter selects something narrower than "every dead letter".
    pub fn is_narrowed(&self) -> bool {
        !self.ids.is_empty()
            || self.topic.is_some()
            || self.shop.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }
}

/// One dead letter in a listing.
#[derive(Debug, Serialize)]
pub struct DeadLetter {
    /// Inbox row id (what `show` and `replay --id` take).
    pub id: i64,
    /// Shopify's per-delivery id.
    pub webhook_id: String,
    /// Shopify's per-action id.
    pub event_id: Option<String>,
    /// Shop domain.
    pub shop: ShopDomain,
    /// Topic.
    pub topic: String,
    /// How it arrived: `edge`, `direct` or `edge_dlq`.
    pub source: String,
    /// Claims before it died.
    pub attempts: i32,
    /// Times it was replayed before.
    pub replays: i32,
    /// Why it died.
    pub last_error: Option<String>,
    /// When origin stored it.
    #[serde(with = "time::serde::rfc3339")]
    pub inserted_at: OffsetDateTime,
}

/// One inbox row in full, for `show` (any status, so a replayed row can be followed).
#[derive(Debug, Serialize)]
pub struct Detail {
    /// The row's listing fields.
    #[serde(flatten)]
    pub summary: DeadLetter,
    /// Current status.
    pub status: InboxStatus,
    /// The Admin API version.
    pub api_version: String,
    /// Times the row was marked done (never above 1).
    pub processed_count: i32,
    /// The stored payload.
    pub payload: Option<serde_json::Value>,
    /// The body as received when it is not JSON (quarantined rows), base64.
    pub raw_body_base64: Option<String>,
}

/// Which failed rows to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shelf {
    /// Dead letters (replayable).
    #[default]
    Dead,
    /// Quarantined rows: payloads that could not be stored as JSON, kept with the reason and
    /// the raw body (replayed through today's parsing by [`crate::pipeline::quarantine::replay`]).
    Quarantined,
}

impl Shelf {
    fn status(self) -> InboxStatus {
        match self {
            Shelf::Dead => InboxStatus::Dead,
            Shelf::Quarantined => InboxStatus::Quarantined,
        }
    }
}

/// Rows on `shelf` matching `filter`, oldest first, at most `limit`.
pub async fn list(
    pool: &PgPool,
    shelf: Shelf,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as!(
        DeadLetter,
        r#"SELECT id, webhook_id, event_id, shop AS "shop: ShopDomain", topic, source, attempts,
                replays, last_error, inserted_at
         FROM inbox
         WHERE status = $7
           AND wholesail_inbox_matches(id, topic, shop, inserted_at, $1, $2, $3, $4, $5)
         ORDER BY inserted_at, id LIMIT $6"#,
        &filter.ids,
        filter.topic.as_deref(),
        filter.shop.as_ref().map(ShopDomain::as_str),
        filter.since,
        filter.until,
        limit,
        shelf.status() as _,
    )
    .fetch_all(pool)
    .await
}

/// How many rows on `shelf` match `filter` (what a limited listing leaves out is the rest).
pub async fn count(pool: &PgPool, shelf: Shelf, filter: &Filter) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "rows!" FROM inbox
         WHERE status = $6
           AND wholesail_inbox_matches(id, topic, shop, inserted_at, $1, $2, $3, $4, $5)"#,
        &filter.ids,
        filter.topic.as_deref(),
        filter.shop.as_ref().map(ShopDomain::as_str),
        filter.since,
        filter.until,
        shelf.status() as _,
    )
    .fetch_one(pool)
    .await
}

/// The inbox row `id`, whatever its status.
pub async fn show(pool: &PgPool, id: i64) -> Result<Option<Detail>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, webhook_id, event_id, shop AS "shop: ShopDomain", topic, source, attempts,
                replays, last_error, inserted_at, status AS "status: InboxStatus", api_version, processed_count,
                payload, encode(raw_body, 'base64') AS raw_body_base64
         FROM inbox WHERE id = $1"#,
        id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Detail {
        summary: DeadLetter {
            id: r.id,
            webhook_id: r.webhook_id,
            event_id: r.event_id,
            shop: r.shop,
            topic: r.topic,
            source: r.source,
            attempts: r.attempts,
            replays: r.replays,
            last_error: r.last_error,
            inserted_at: r.inserted_at,
        },
        status: r.status,
        api_version: r.api_version,
        processed_count: r.processed_count,
        payload: r.payload,
        raw_body_base64: r.raw_body_base64,
    }))
}

/// Puts the matching dead letters back to `pending` (attempts reset, due now) and wakes the
/// workers. Returns the replayed row ids.
pub async fn replay(pool: &PgPool, filter: &Filter) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids = sqlx::query_scalar!(
        "UPDATE inbox SET status = 'pending', attempts = 0, run_at = now(),
                          replays = replays + 1
         WHERE status = 'dead' AND payload IS NOT NULL
           AND wholesail_inbox_matches(id, topic, shop, inserted_at, $1, $2, $3, $4, $5)
         RETURNING id",
        &filter.ids,
        filter.topic.as_deref(),
        filter.shop.as_ref().map(ShopDomain::as_str),
        filter.since,
        filter.until,
    )
    .fetch_all(&mut *tx)
    .await?;
    if !ids.is_empty() {
        inbox::notify(&mut *tx).await?;
    }
    tx.commit().await?;
    metrics::counter!("wholesail_dead_letters_replayed_total").increment(ids.len() as u64);
    tracing::info!(replayed = ids.len(), "dead letters replayed");
    Ok(ids)
}
