//! Replaying quarantined inbox rows: bodies that could not be stored as a JSON payload when
//! they arrived (not JSON, or JSON PostgreSQL's `jsonb` cannot hold). Replay runs each body
//! through today's parsing and topic allowlist (`wholesail_webhook::strip`), as intake would
//! now: a body that is now usable becomes an ordinary `pending` row (payload stored, raw body
//! dropped, attempts reset, `replays` bumped) and goes through the handlers like any event;
//! one that still is not stays quarantined with today's reason. Rows that are not quarantined
//! are never touched, so replaying twice changes nothing the second time, and the handlers'
//! version guards make the effect itself idempotent.

use serde::Serialize;
use sqlx::PgPool;
use wholesail_webhook::{Payload, ShopDomain};

use crate::pipeline::dead_letters::Filter;
use crate::pipeline::inbox;

/// A quarantined row that replay could not make usable.
#[derive(Debug, Serialize)]
pub struct StillQuarantined {
    /// The inbox row id.
    pub id: i64,
    /// Why the body is still not usable.
    pub reason: String,
}

/// What a replay did.
#[derive(Debug, Default, Serialize)]
pub struct Replayed {
    /// Rows now `pending`, in id order.
    pub replayed: Vec<i64>,
    /// Rows left quarantined, with today's reason.
    pub still_quarantined: Vec<StillQuarantined>,
}

/// Re-parses the quarantined rows matching `filter` and queues those now usable; wakes the
/// workers when any was queued.
pub async fn replay(pool: &PgPool, filter: &Filter) -> Result<Replayed, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query!(
        r#"SELECT shop, id, topic,
                  coalesce(raw_body, convert_to(payload::text, 'UTF8')) AS "body!"
         FROM inbox
         WHERE status = 'quarantined'
           AND wholesail_inbox_matches(id, topic, shop, inserted_at, $1, $2, $3, $4, $5)
         ORDER BY id FOR UPDATE"#,
        &filter.ids,
        filter.topic.as_deref(),
        filter.shop.as_ref().map(ShopDomain::as_str),
        filter.since,
        filter.until,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Replayed::default();
    for row in rows {
        match parse(&row.topic, &row.body) {
            Ok((stripping, json)) => {
                sqlx::query!(
                    "UPDATE inbox SET payload = $3::text::jsonb, raw_body = NULL, stripping = $4,
                                      status = 'pending', attempts = 0, run_at = now(),
                                      last_error = NULL, replays = replays + 1
                     WHERE shop = $1 AND id = $2",
                    row.shop,
                    row.id,
                    json,
                    stripping,
                )
                .execute(&mut *tx)
                .await?;
                out.replayed.push(row.id);
            }
            Err(reason) => {
                sqlx::query!(
                    "UPDATE inbox SET last_error = $3 WHERE shop = $1 AND id = $2",
                    row.shop,
                    row.id,
                    reason,
                )
                .execute(&mut *tx)
                .await?;
                out.still_quarantined
                    .push(StillQuarantined { id: row.id, reason });
            }
        }
    }
    if !out.replayed.is_empty() {
        inbox::notify(&mut *tx).await?;
    }
    tx.commit().await?;
    metrics::counter!("wholesail_quarantine_replayed_total").increment(out.replayed.len() as u64);
    tracing::info!(
        replayed = out.replayed.len(),
        still_quarantined = out.still_quarantined.len(),
        "quarantined rows replayed"
    );
    Ok(out)
}

/// The stripped JSON payload and its stripping for `body` of `topic`, as intake stores it
/// today, or why it still cannot be stored.
fn parse(topic: &str, body: &[u8]) -> Result<(String, String), String> {
    match Payload::from_strip(wholesail_webhook::strip(topic, body), body) {
        Payload::Json { stripping, body } => {
            if body.get().contains("\\u0000") {
                return Err("payload contains \\u0000, which PostgreSQL jsonb cannot store".into());
            }
            let stripping = serde_json::to_value(stripping)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            Ok((stripping, body.get().to_owned()))
        }
        Payload::Malformed { reason, .. } => Err(reason),
    }
}
