//! The parked-objects API origin's operators use to recover and purge what the edge parked in
//! R2: `POST /internal/parked`, signed like the edge's own requests to origin
//! (`X-Wholesail-Signature`, the contract's envelope scheme, verified against the edge's
//! `EDGE_SIGNING_KEY` with a 300 s window). The operation is in the signed body, so a captured
//! request cannot be turned into another operation, and works only under the parking prefixes
//! (and `oversized/`, for redaction), never on other keys of the bucket.
//!
//! - `{"op":"list","prefix":"undelivered/","cursor":…,"limit":…}` → `{"objects":[{"key",
//!   "size","uploaded_ms"}],"cursor":…,"truncated":bool}`
//! - `{"op":"get","key":…}` → the object's JSON (404 when absent)
//! - `{"op":"delete","key":…}` → `{"deleted":key}`
//!
//! Pure: [`authorize`] and [`ParkedOp::check`] decide; the glue in [`crate::recovery`] calls R2.

use serde::{Deserialize, Serialize};
use wholesail_webhook::{Keyring, SigningKey};

use crate::forward::Parking;

/// Signatures older or newer than this many seconds are refused.
pub const TOLERANCE_SECS: i64 = 300;

/// Most objects one `list` returns (R2's own maximum).
pub const MAX_LIST: u32 = 1000;

/// The prefix of oversized envelopes still in flight (`oversized/<shop>/…`): listed, fetched
/// and deleted only to purge a redacted shop's data.
pub const OVERSIZED_PREFIX: &str = "oversized/";

/// One request to the parked-objects API.
#[derive(Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ParkedOp {
    /// One page of the objects under `prefix`.
    List {
        /// A parking prefix (`rejected/`, `undelivered/`, `unreadable/`) or `oversized/`, or a
        /// longer prefix under one of them.
        prefix: String,
        /// The cursor of the previous page.
        #[serde(default)]
        cursor: Option<String>,
        /// At most this many objects (default and cap [`MAX_LIST`]).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// One object's content.
    Get {
        /// The object key.
        key: String,
    },
    /// Deletes one object.
    Delete {
        /// The object key.
        key: String,
    },
}

/// One object in a listing.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedObject {
    /// The R2 key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written, in ms since the epoch.
    pub uploaded_ms: u64,
}

/// The answer to `list`.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The page's objects.
    pub objects: Vec<ListedObject>,
    /// Where the next page starts, when `truncated`.
    pub cursor: Option<String>,
    /// Whether more objects follow.
    pub truncated: bool,
}

/// Why a parked-objects request is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Missing or invalid signature: 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The body is not a known operation, or names a key outside the parked prefixes: 400.
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl Refused {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refused::Unauthorized(_) => 401,
            Refused::BadRequest(_) => 400,
        }
    }
}

/// Checks the signature header over `body` with the edge's own key, then parses the operation.
pub fn authorize(
    key: &SigningKey,
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<ParkedOp, Refused> {
    let header = header.ok_or_else(|| Refused::Unauthorized("missing signature".into()))?;
    Keyring::new(vec![key.clone()], TOLERANCE_SECS)
        .verify(header, body, now_secs)
        .map_err(|e| Refused::Unauthorized(e.to_string()))?;
    let op: ParkedOp = serde_json::from_slice(body)
        .map_err(|e| Refused::BadRequest(format!("not a parked-objects operation: {e}")))?;
    op.check()?;
    Ok(op)
}

impl ParkedOp {
    /// Refuses keys and prefixes outside the parked ones.
    pub fn check(&self) -> Result<(), Refused> {
        let name = match self {
            ParkedOp::List { prefix, .. } => prefix,
            ParkedOp::Get { key } | ParkedOp::Delete { key } => key,
        };
        let allowed = [
            Parking::Rejected.prefix(),
            Parking::Undelivered.prefix(),
            Parking::Unreadable.prefix(),
            OVERSIZED_PREFIX,
        ];
        if allowed.iter().any(|p| name.starts_with(p)) && !name.contains("..") {
            Ok(())
        } else {
            Err(Refused::BadRequest(format!(
                "{name:?} is not under {}",
                allowed.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::new("edge-1", "secret").unwrap()
    }

    #[test]
    fn a_signed_operation_is_accepted_and_parsed() {
        let body = br#"{"op":"list","prefix":"undelivered/"}"#;
        let sig = key().sign(body, 1_000);
        assert_eq!(
            authorize(&key(), Some(&sig), body, 1_010),
            Ok(ParkedOp::List {
                prefix: "undelivered/".into(),
                cursor: None,
                limit: None
            })
        );
    }

    #[test]
    fn unsigned_wrongly_signed_or_stale_requests_are_unauthorized() {
        let body = br#"{"op":"delete","key":"rejected/w/m.json"}"#;
        let other = SigningKey::new("edge-1", "other")
            .unwrap()
            .sign(body, 1_000);
        let stale = key().sign(body, 1_000);
        for (header, now) in [
            (None, 1_000),
            (Some(other.as_str()), 1_000),
            (Some(stale.as_str()), 1_000 + 301),
        ] {
            let refused = authorize(&key(), header, body, now).unwrap_err();
            assert_eq!(refused.status(), 401, "{refused}");
        }
        // The signature binds the operation: the same signature on another body fails.
        let sig = key().sign(body, 1_000);
        let get = br#"{"op":"get","key":"rejected/w/m.json"}"#;
        assert_eq!(
            authorize(&key(), Some(&sig), get, 1_000)
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn keys_outside_the_parked_prefixes_are_refused() {
        for body in [
            &br#"{"op":"get","key":"secrets/x"}"#[..],
            br#"{"op":"list","prefix":""}"#,
            br#"{"op":"delete","key":"rejected/../other"}"#,
            br#"{"op":"rename","key":"rejected/a"}"#,
        ] {
            let sig = key().sign(body, 1_000);
            assert_eq!(
                authorize(&key(), Some(&sig), body, 1_000)
                    .unwrap_err()
                    .status(),
                400
            );
        }
        let body = br#"{"op":"get","key":"oversized/a.myshopify.com/w/1.json"}"#;
        let sig = key().sign(body, 1_000);
        assert!(authorize(&key(), Some(&sig), body, 1_000).is_ok());
    }
}
