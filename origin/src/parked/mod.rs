//! Envelopes the edge parked in its R2 bucket: list them, recover them into origin's intake,
//! purge a redacted shop's. R2 is reachable only through the Worker, so origin calls the
//! edge's `POST /internal/parked` ([`EdgeClient`]), signed with the edge's envelope key (the
//! same `internal.keys` entry origin verifies the edge with; no other secret).
//!
//! - recover ([`recover`]): every `undelivered/` and `rejected/` object is fetched, its envelope
//!   posted to origin's `POST /internal/webhooks` (signed the same way, in batches), and the
//!   object deleted once origin answered `accepted` or `duplicate`; a `rejected` envelope stays
//!   parked and its reason is reported. Running it twice is harmless (origin deduplicates on
//!   the webhook id; deleted objects are not listed again). `unreadable/` objects hold a queue
//!   message that never was an envelope: listed, never recovered automatically.
//! - purge ([`purge`]): for `shop/redact` (and, with `contains`, `customers/redact`): deletes
//!   the shop's `oversized/<shop>/` objects and the parked objects whose envelope names the
//!   shop (or, for `unreadable/`, whose text does), optionally only those containing a text
//!   such as the customer's email.

pub mod cli;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use thiserror::Error;
use wholesail_webhook::{BatchResponse, ItemStatus, ShopDomain, SigningKey, SIGNATURE_HEADER};

/// The prefixes of envelopes parked by the edge's queue consumer.
pub const PARKED_PREFIXES: [&str; 3] = ["undelivered/", "rejected/", "unreadable/"];

/// The prefixes whose objects hold an envelope origin can take again.
pub const RECOVERABLE_PREFIXES: [&str; 2] = ["undelivered/", "rejected/"];

/// Envelopes per request to origin's intake.
const RESUBMIT_BATCH: usize = 50;

/// Why a parked-objects operation failed.
#[derive(Debug, Error)]
pub enum ParkedError {
    /// The edge or origin could not be reached.
    #[error("{0}: {1}")]
    Http(&'static str, reqwest::Error),
    /// The edge or origin answered with an error status.
    #[error("{what} answered HTTP {status}: {body}")]
    Status {
        /// Which side.
        what: &'static str,
        /// The status.
        status: u16,
        /// Its body.
        body: String,
    },
    /// An answer was not what the protocol says.
    #[error("{0}")]
    Protocol(String),
}

/// One object in the edge's listing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParkedObject {
    /// The R2 key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When the edge wrote it (ms since the epoch).
    pub uploaded_ms: u64,
}

#[derive(Deserialize)]
struct Listing {
    objects: Vec<ParkedObject>,
    cursor: Option<String>,
    truncated: bool,
}

/// A parked object's content: `{"reason","queue","attempts","envelope"|"message"}`.
#[derive(Debug, Deserialize)]
pub struct ParkedRecord {
    /// Why the edge parked it.
    #[serde(default)]
    pub reason: Option<String>,
    /// The envelope, when the edge could read it.
    #[serde(default)]
    pub envelope: Option<Box<RawValue>>,
    /// The raw queue message, when it could not.
    #[serde(default)]
    pub message: Option<String>,
}

/// A client of the edge's `POST /internal/parked`.
pub struct EdgeClient {
    http: reqwest::Client,
    url: String,
    key: SigningKey,
}

/// Seconds since the epoch.
fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl EdgeClient {
    /// A client for the edge at `base_url`, signing with `key`.
    pub fn new(base_url: &str, key: SigningKey) -> EdgeClient {
        EdgeClient {
            http: reqwest::Client::new(),
            url: format!("{}/internal/parked", base_url.trim_end_matches('/')),
            key,
        }
    }

    async fn call(&self, op: &Value) -> Result<reqwest::Response, ParkedError> {
        let body = serde_json::to_vec(op).expect("operations serialise");
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, self.key.sign(&body, now_secs()))
            .body(body)
            .send()
            .await
            .map_err(|e| ParkedError::Http("edge", e))?;
        Ok(resp)
    }

    async fn ok(resp: reqwest::Response) -> Result<reqwest::Response, ParkedError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(ParkedError::Status {
            what: "edge",
            status: resp.status().as_u16(),
            body: resp.text().await.unwrap_or_default(),
        })
    }

    /// Every object under `prefix`, page by page.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ParkedObject>, ParkedError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let resp = self
                .call(&json!({"op": "list", "prefix": prefix, "cursor": cursor}))
                .await?;
            let page: Listing = Self::ok(resp)
                .await?
                .json()
                .await
                .map_err(|e| ParkedError::Protocol(format!("edge listing: {e}")))?;
            all.extend(page.objects);
            match page.cursor.filter(|_| page.truncated) {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// The object's text, `None` when it is gone.
    pub async fn get(&self, key: &str) -> Result<Option<String>, ParkedError> {
        let resp = self.call(&json!({"op": "get", "key": key})).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = Self::ok(resp)
            .await?
            .text()
            .await
            .map_err(|e| ParkedError::Http("edge", e))?;
        Ok(Some(text))
    }

    /// Deletes the object.
    pub async fn delete(&self, key: &str) -> Result<(), ParkedError> {
        let resp = self.call(&json!({"op": "delete", "key": key})).await?;
        Self::ok(resp).await?;
        Ok(())
    }
}

/// What happened to one parked object.
#[derive(Debug, Serialize)]
pub struct Recovered {
    /// The R2 key.
    pub key: String,
    /// The envelope's webhook id, when readable.
    pub webhook_id: Option<String>,
    /// `accepted`, `duplicate` (both: deleted from R2), `rejected` or `unreadable` (kept).
    pub result: &'static str,
    /// Why it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The webhook id of an envelope (`meta.webhook_id`).
fn webhook_id(envelope: &RawValue) -> Option<String> {
    let v: Value = serde_json::from_str(envelope.get()).ok()?;
    v.pointer("/meta/webhook_id")?.as_str().map(str::to_owned)
}

/// Re-submits every recoverable parked envelope to origin's intake at `origin_url` (signed
/// with `key`) and deletes each object origin confirmed. Returns one line per object.
pub async fn recover(
    edge: &EdgeClient,
    origin_url: &str,
    key: &SigningKey,
) -> Result<Vec<Recovered>, ParkedError> {
    let mut out = Vec::new();
    let mut ready: Vec<(String, Box<RawValue>)> = Vec::new();
    for prefix in RECOVERABLE_PREFIXES {
        for object in edge.list(prefix).await? {
            let Some(text) = edge.get(&object.key).await? else {
                continue; // Deleted meanwhile (another recovery).
            };
            match serde_json::from_str::<ParkedRecord>(&text)
                .ok()
                .and_then(|r| r.envelope)
            {
                Some(envelope) => ready.push((object.key, envelope)),
                None => out.push(Recovered {
                    key: object.key,
                    webhook_id: None,
                    result: "unreadable",
                    reason: Some("the object holds no envelope".into()),
                }),
            }
        }
    }
    let http = reqwest::Client::new();
    let intake = format!("{}/internal/webhooks", origin_url.trim_end_matches('/'));
    for chunk in ready.chunks(RESUBMIT_BATCH) {
        let mut body = String::from(r#"{"envelopes":["#);
        for (i, (_, envelope)) in chunk.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(envelope.get());
        }
        body.push_str("]}");
        let resp = http
            .post(&intake)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, key.sign(body.as_bytes(), now_secs()))
            .body(body)
            .send()
            .await
            .map_err(|e| ParkedError::Http("origin", e))?;
        if !resp.status().is_success() {
            return Err(ParkedError::Status {
                what: "origin",
                status: resp.status().as_u16(),
                body: resp.text().await.unwrap_or_default(),
            });
        }
        let answer: BatchResponse = resp
            .json()
            .await
            .map_err(|e| ParkedError::Protocol(format!("origin's answer: {e}")))?;
        if answer.results.len() != chunk.len() {
            return Err(ParkedError::Protocol(format!(
                "origin answered {} results for {} envelopes",
                answer.results.len(),
                chunk.len()
            )));
        }
        for ((key, envelope), result) in chunk.iter().zip(answer.results) {
            let result_name = match result.status {
                ItemStatus::Accepted => "accepted",
                ItemStatus::Duplicate => "duplicate",
                ItemStatus::Rejected => "rejected",
            };
            if result.status != ItemStatus::Rejected {
                edge.delete(key).await?;
            }
            tracing::info!(key = %key, result = result_name, "parked envelope re-submitted");
            out.push(Recovered {
                key: key.clone(),
                webhook_id: webhook_id(envelope),
                result: result_name,
                reason: result.reason,
            });
        }
    }
    Ok(out)
}

/// Deletes the parked and oversized objects of `shop` (only those whose text contains
/// `contains`, when given). Returns the deleted keys.
pub async fn purge(
    edge: &EdgeClient,
    shop: &ShopDomain,
    contains: Option<&str>,
) -> Result<Vec<String>, ParkedError> {
    let mut deleted = Vec::new();
    let oversized = format!("oversized/{shop}/");
    let mut candidates = edge.list(&oversized).await?;
    for prefix in PARKED_PREFIXES {
        candidates.extend(edge.list(prefix).await?);
    }
    for object in candidates {
        let Some(text) = edge.get(&object.key).await? else {
            continue;
        };
        let of_shop = object.key.starts_with(&oversized) || names_shop(&text, shop);
        if of_shop && contains.is_none_or(|needle| text.contains(needle)) {
            edge.delete(&object.key).await?;
            deleted.push(object.key);
        }
    }
    Ok(deleted)
}

/// Whether a parked object's text is about `shop`: its envelope's `meta.shop`, or for an
/// unreadable message, the shop's domain anywhere in it.
fn names_shop(text: &str, shop: &ShopDomain) -> bool {
    match serde_json::from_str::<ParkedRecord>(text) {
        Ok(ParkedRecord {
            envelope: Some(envelope),
            ..
        }) => serde_json::from_str::<Value>(envelope.get())
            .ok()
            .and_then(|v| {
                v.pointer("/meta/shop")?
                    .as_str()
                    .map(|s| s == shop.as_str())
            })
            .unwrap_or(false),
        _ => text.contains(shop.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_object_is_the_shops_by_its_envelope_or_its_text() {
        let parked = r#"{"reason":"r","queue":"q","attempts":1,
            "envelope":{"meta":{"shop":"a.myshopify.com","webhook_id":"w"}}}"#;
        assert!(names_shop(
            parked,
            &ShopDomain::parse("a.myshopify.com").unwrap()
        ));
        assert!(!names_shop(
            parked,
            &ShopDomain::parse("b.myshopify.com").unwrap()
        ));
        let unreadable = r#"{"reason":"r","queue":"q","attempts":1,"message":"x b.myshopify.com"}"#;
        assert!(names_shop(
            unreadable,
            &ShopDomain::parse("b.myshopify.com").unwrap()
        ));
        assert!(!names_shop(
            unreadable,
            &ShopDomain::parse("a.myshopify.com").unwrap()
        ));
    }
}
