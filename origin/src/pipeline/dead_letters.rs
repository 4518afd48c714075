//! Dead letters: inspection and replay, shared by the CLI and the admin API.
//!
//! A dead letter is an inbox row with status `dead`: a handler refused it (invalid payload),
//! it failed `max_attempts` times, or the edge gave up delivering it. Replay puts the selected
//! rows back to `pending` with their attempts reset; the handlers are guarded by the source's
//! `updated_at` and the row's done mark commits with the effect, so a replay applies an event
//! at most once more and never duplicates an effect.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgPool};
use time::OffsetDateTime;

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
    pub shop: Option<String>,
    /// Received at or after (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Received before (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

impl Filter {
    /// The filter's values as arguments `$1`–`$5` of a query using [`MATCHES`] (callers bind
    /// theirs from `$6` on).
    pub(crate) fn arguments(&self) -> Result<PgArguments, sqlx::Error> {
        let mut args = PgArguments::default();
        args.add(&self.ids).map_err(sqlx::Error::Encode)?;
        args.add(&self.topic).map_err(sqlx::Error::Encode)?;
        args.add(&self.shop).map_err(sqlx::Error::Encode)?;
        args.add(self.since).map_err(sqlx::Error::Encode)?;
        args.add(self.until).map_err(sqlx::Error::Encode)?;
        Ok(args)
    }

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
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    /// Inbox row id (what `show` and `replay --id` take).
    pub id: i64,
    /// Shopify's per-delivery id.
    pub webhook_id: String,
    /// Shopify's per-action id.
    pub event_id: Option<String>,
    /// Shop domain.
    pub shop: String,
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
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Detail {
    /// The row's listing fields.
    #[sqlx(flatten)]
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

const COLUMNS: &str = "id, webhook_id, event_id, shop, topic, source, attempts, replays, \
                       last_error, inserted_at";

/// The [`Filter`] as SQL over binds $1..$5 (ids, topic, shop, since, until).
pub(crate) const MATCHES: &str = "(cardinality($1::int8[]) = 0 OR id = ANY($1))
    AND ($2::text IS NULL OR topic = $2)
    AND ($3::text IS NULL OR shop = $3)
    AND ($4::timestamptz IS NULL OR inserted_at >= $4)
    AND ($5::timestamptz IS NULL OR inserted_at < $5)";

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
    sqlx::query_as_with(
        &format!(
            "SELECT {COLUMNS} FROM inbox WHERE status = $7 AND {MATCHES}
             ORDER BY inserted_at, id LIMIT $6"
        ),
        filter.arguments()?,
    )
    .bind(limit)
    .bind(shelf.status())
    .fetch_all(pool)
    .await
}

/// How many rows on `shelf` match `filter` (what a limited listing leaves out is the rest).
pub async fn count(pool: &PgPool, shelf: Shelf, filter: &Filter) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar_with(
        &format!("SELECT count(*) FROM inbox WHERE status = $6 AND {MATCHES}"),
        filter.arguments()?,
    )
    .bind(shelf.status())
    .fetch_one(pool)
    .await
}

/// The inbox row `id`, whatever its status.
pub async fn show(pool: &PgPool, id: i64) -> Result<Option<Detail>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS}, status, api_version, processed_count, payload,
                encode(raw_body, 'base64') AS raw_body_base64
         FROM inbox WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Puts the matching dead letters back to `pending` (attempts reset, due now) and wakes the
/// workers. Returns the replayed row ids.
pub async fn replay(pool: &PgPool, filter: &Filter) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar_with(
        &format!(
            "UPDATE inbox SET status = 'pending', attempts = 0, run_at = now(),
                              replays = replays + 1
             WHERE status = 'dead' AND {MATCHES} AND payload IS NOT NULL
             RETURNING id"
        ),
        filter.arguments()?,
    )
    .fetch_all(&mut *tx)
    .await?;
    if !ids.is_empty() {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(inbox::CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    metrics::counter!("wholesail_dead_letters_replayed_total").increment(ids.len() as u64);
    tracing::info!(replayed = ids.len(), "dead letters replayed");
    Ok(ids)
}
