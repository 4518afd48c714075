//! Bodies replayed under another shop or as a delete: quarantined at intake, never applied.
//!
//! Shopify's HMAC covers only the body; the topic, shop and webhook id are unsigned headers,
//! and one app secret signs every shop's deliveries. A captured signed body can therefore be
//! re-sent with another shop's domain, or under a delete topic, with a fresh webhook id. Each
//! inbox row keeps the SHA-256 of the body Shopify sent (`inbox.body_sha256`, indexed, purged
//! with the row by the inbox retention), and a new row is quarantined with the reason when:
//!
//! - the same body was already accepted for **another shop**: Shopify's ids are global, so no
//!   genuine body belongs to two shops;
//! - it arrives under a **delete topic** and the same body was already accepted for the shop
//!   under another topic: a genuine delete body is never another topic's body.
//!
//! The same body under several non-delete topics of one shop stays accepted (`orders/paid` and
//! `orders/updated` carry one payload), and so does a redelivery under the same topic.
//! Quarantined rows do not count as accepted.
//!
//! Which bytes are hashed: the raw body, by the edge (`Envelope::body_sha256`) or by origin in
//! direct mode. An envelope from an edge that predates the field is hashed on its stripped
//! payload instead: stripping is deterministic per topic, so the same body under the same
//! allowlist still matches, but a body sent once through an old edge and once through a new
//! one is not recognised (a rollout-only gap). Two deliveries of one body for two shops whose
//! intake transactions overlap can both be accepted: the check reads committed rows only.

use std::collections::HashMap;

use sqlx::PgConnection;
use wholesail_webhook::delete_shape::is_delete_topic;
use wholesail_webhook::ShopDomain;

use crate::pipeline::inbox::{Body, NewEvent};

/// An accepted inbox row with a given body digest.
struct Seen {
    shop: ShopDomain,
    topic: String,
    webhook_id: String,
}

/// For each event, in order, why it must be quarantined (`None`: it may be stored as usual).
/// Reads the accepted rows sharing a digest with the batch, and judges later events of the
/// batch against earlier ones too.
pub async fn replay_reasons(
    conn: &mut PgConnection,
    events: &[NewEvent],
) -> Result<Vec<Option<String>>, sqlx::Error> {
    let digests: Vec<&[u8]> = events.iter().map(|e| &e.body_sha256[..]).collect();
    let seen = sqlx::query!(
        r#"SELECT body_sha256 AS "body_sha256!", shop AS "shop: ShopDomain", topic, webhook_id
         FROM inbox
         WHERE body_sha256 = ANY($1::bytea[]) AND status <> 'quarantined'"#,
        &digests as &[&[u8]],
    )
    .fetch_all(conn)
    .await?;
    // Keyed by the fixed-size digest: no allocation per event to look a digest up.
    let mut by_digest: HashMap<[u8; 32], Vec<Seen>> = HashMap::new();
    for row in seen {
        if let Ok(digest) = <[u8; 32]>::try_from(row.body_sha256.as_slice()) {
            by_digest.entry(digest).or_default().push(Seen {
                shop: row.shop,
                topic: row.topic,
                webhook_id: row.webhook_id,
            });
        }
    }
    let mut reasons = Vec::with_capacity(events.len());
    for e in events {
        let earlier = by_digest.entry(e.body_sha256).or_default();
        let reason = judge(e, earlier);
        if reason.is_none() && matches!(e.body, Body::Json(_)) {
            earlier.push(Seen {
                shop: e.shop.clone(),
                topic: e.topic.clone(),
                webhook_id: e.webhook_id.clone(),
            });
        }
        reasons.push(reason);
    }
    Ok(reasons)
}

/// Why `e` must be quarantined given the accepted rows with its digest, if it must.
fn judge(e: &NewEvent, earlier: &[Seen]) -> Option<String> {
    if !matches!(e.body, Body::Json(_)) {
        return None;
    }
    // Its own earlier delivery (same webhook id) is a duplicate, not a replay.
    let others = earlier.iter().filter(|s| s.webhook_id != e.webhook_id);
    for s in others {
        if s.shop != e.shop {
            return Some(format!(
                "body already accepted for shop {} (webhook {}); a genuine Shopify body never \
                 belongs to two shops",
                s.shop, s.webhook_id
            ));
        }
        if is_delete_topic(&e.topic) && s.topic != e.topic {
            return Some(format!(
                "body already accepted under {} (webhook {}); a genuine {} body is never \
                 another topic's body",
                s.topic, s.webhook_id, e.topic
            ));
        }
    }
    None
}
