//! The internal envelope the edge sends to origin, and its signature.
//!
//! The edge wraps each verified, stripped delivery in an [`Envelope`] and posts batches of them
//! to origin. Every request carries [`SIGNATURE_HEADER`]:
//!
//! ```text
//! X-Wholesail-Signature: v1,kid=<key id>,t=<unix seconds>,sig=<base64 HMAC-SHA256>
//! ```
//!
//! The MAC covers `wholesail-v1\n<kid>\n<t>\n<body>`, so the key id, the timestamp and the body
//! are all bound: a captured request cannot be replayed once it is older than the tolerance
//! window, and keys rotate by adding a new id to origin's [`Keyring`] before the edge uses it.

use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::allowlist::Stripping;
use crate::hmac_sha256;
use crate::shopify::{Secret, WebhookMeta};

/// The HTTP header carrying the envelope signature.
pub const SIGNATURE_HEADER: &str = "X-Wholesail-Signature";

/// One verified webhook delivery as origin receives it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// What Shopify's headers said (webhook id, event id, topic, shop, API version, …).
    pub meta: WebhookMeta,
    /// When the edge received it, in Unix milliseconds.
    pub received_at_ms: i64,
    /// Size of the body Shopify sent, in bytes.
    pub original_bytes: u64,
    /// The payload.
    pub payload: Payload,
}

/// An envelope's payload: the stripped JSON, or the raw body of a payload that is not JSON,
/// kept so origin can quarantine it with the reason instead of it being lost.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// A JSON document and how it was reduced.
    Json {
        /// How the document was reduced.
        stripping: Stripping,
        /// The document.
        body: Box<RawValue>,
    },
    /// A body that did not parse as JSON.
    Malformed {
        /// The parser's message.
        reason: String,
        /// The body as received, base64.
        body_base64: String,
    },
}

impl Payload {
    /// A payload from the stripper's result for a body: JSON when it stripped, otherwise the
    /// body kept whole with the reason.
    pub fn from_strip(result: Result<crate::Stripped, crate::StripError>, body: &[u8]) -> Payload {
        match result.and_then(|s| {
            let raw = RawValue::from_string(s.json)?;
            Ok((s.stripping, raw))
        }) {
            Ok((stripping, body)) => Payload::Json { stripping, body },
            Err(e) => Payload::Malformed {
                reason: e.to_string(),
                body_base64: STANDARD.encode(body),
            },
        }
    }
}

/// A batch of envelopes, the body of `POST /internal/webhooks`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnvelopeBatch {
    /// The envelopes, each parsed separately by origin so one bad item cannot reject the rest.
    pub envelopes: Vec<Box<RawValue>>,
}

/// Origin's verdict on one envelope of a batch, in the batch's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The envelope's webhook id, when it could be read.
    pub webhook_id: Option<String>,
    /// What origin did with it.
    pub status: ItemStatus,
    /// Why it was rejected, for `Rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What origin did with one envelope. `Accepted` and `Duplicate` are both durable: the edge
/// acknowledges them. `Rejected` items will never be accepted (retrying cannot help): the edge
/// sends them to its dead-letter path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Stored in the inbox (possibly quarantined, if its payload was malformed).
    Accepted,
    /// Already in the inbox under the same webhook id.
    Duplicate,
    /// Not stored.
    Rejected,
}

/// Origin's answer to a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// One result per envelope, in order.
    pub results: Vec<ItemResult>,
}

/// A key the edge signs envelopes with.
#[derive(Clone, Debug)]
pub struct SigningKey {
    id: String,
    secret: Secret,
}

impl SigningKey {
    /// A key with an id (printable ASCII, no commas or `=`) and secret bytes.
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self, SignatureError> {
        let id = id.into();
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b',' && b != b'=')
        {
            return Err(SignatureError::Malformed(
                "key id must be printable, without , or =",
            ));
        }
        Ok(SigningKey {
            id,
            secret: Secret::new(secret),
        })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signature header value for `body` sent at `unix_secs`.
    pub fn sign(&self, body: &[u8], unix_secs: i64) -> String {
        let t = unix_secs.to_string();
        let mac = self.mac(&t, body);
        format!("v1,kid={},t={t},sig={}", self.id, STANDARD.encode(mac))
    }

    fn mac(&self, t: &str, body: &[u8]) -> [u8; 32] {
        hmac_sha256::mac(self.secret.expose(), &Self::parts(&self.id, t, body))
    }

    fn parts<'a>(kid: &'a str, t: &'a str, body: &'a [u8]) -> [&'a [u8]; 6] {
        [
            b"wholesail-v1\n",
            kid.as_bytes(),
            b"\n",
            t.as_bytes(),
            b"\n",
            body,
        ]
    }
}

/// Why an envelope signature was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The header is not of the `v1,kid=…,t=…,sig=…` form.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// No key with this id is configured.
    #[error("unknown signing key id {0:?}")]
    UnknownKey(String),
    /// The timestamp is outside the tolerance window (seconds from now, negative = past).
    #[error("signature timestamp is {0} s away from now, outside the tolerance window")]
    OutsideWindow(i64),
    /// The MAC does not match.
    #[error("signature does not match")]
    Mismatch,
}

/// The keys origin accepts, by id, and how far a timestamp may be from now.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<SigningKey>,
    tolerance_secs: i64,
}

impl Keyring {
    /// A keyring accepting `keys` with timestamps within `tolerance_secs` of now.
    pub fn new(keys: Vec<SigningKey>, tolerance_secs: i64) -> Self {
        Keyring {
            keys,
            tolerance_secs,
        }
    }

    /// Checks what a signature header says before the body is read: its form, a known key
    /// id and a timestamp within the window. Returns the key id; [`Keyring::verify`] still
    /// has to check the MAC over the body.
    pub fn precheck(&self, header: &str, now_unix_secs: i64) -> Result<&str, SignatureError> {
        self.parse(header, now_unix_secs)
            .map(|(key, ..)| key.id.as_str())
    }

    /// Verifies a signature header for `body` at `now_unix_secs`; returns the key id used.
    pub fn verify(
        &self,
        header: &str,
        body: &[u8],
        now_unix_secs: i64,
    ) -> Result<&str, SignatureError> {
        let (key, t_str, sig) = self.parse(header, now_unix_secs)?;
        if !hmac_sha256::verify(
            key.secret.expose(),
            &SigningKey::parts(&key.id, t_str, body),
            &sig,
        ) {
            return Err(SignatureError::Mismatch);
        }
        Ok(&key.id)
    }

    /// The key, the timestamp as sent and the MAC of a header whose key is known and whose
    /// timestamp is within the window.
    fn parse<'h>(
        &self,
        header: &'h str,
        now_unix_secs: i64,
    ) -> Result<(&SigningKey, &'h str, Vec<u8>), SignatureError> {
        let mut version = None;
        let (mut kid, mut t, mut sig) = (None, None, None);
        for (i, part) in header.trim().split(',').enumerate() {
            if i == 0 {
                version = Some(part);
                continue;
            }
            match part.split_once('=') {
                Some(("kid", v)) => kid = Some(v),
                Some(("t", v)) => t = Some(v),
                Some(("sig", v)) => sig = Some(v),
                _ => return Err(SignatureError::Malformed("unexpected field")),
            }
        }
        if version != Some("v1") {
            return Err(SignatureError::Malformed("unsupported version"));
        }
        let kid = kid.ok_or(SignatureError::Malformed("missing kid"))?;
        let t_str = t.ok_or(SignatureError::Malformed("missing t"))?;
        let sig = sig.ok_or(SignatureError::Malformed("missing sig"))?;
        let t: i64 = t_str
            .parse()
            .map_err(|_| SignatureError::Malformed("t is not an integer"))?;
        let sig = STANDARD
            .decode(sig)
            .map_err(|_| SignatureError::Malformed("sig is not base64"))?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or_else(|| SignatureError::UnknownKey(kid.to_owned()))?;
        let skew = t.saturating_sub(now_unix_secs);
        if skew.abs() > self.tolerance_secs {
            return Err(SignatureError::OutsideWindow(skew));
        }
        Ok((key, t_str, sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::{ShopDomain, Topic, WebhookId};

    const NOW: i64 = 1_795_000_000;

    fn ring() -> Keyring {
        Keyring::new(
            vec![
                SigningKey::new("k2", "new-secret").unwrap(),
                SigningKey::new("k1", "old-secret").unwrap(),
            ],
            300,
        )
    }

    #[test]
    fn signed_body_verifies_with_its_key_id() {
        let key = SigningKey::new("k1", "old-secret").unwrap();
        let h = key.sign(b"{\"a\":1}", NOW);
        assert!(h.starts_with("v1,kid=k1,t=1795000000,sig="));
        assert_eq!(ring().verify(&h, b"{\"a\":1}", NOW + 10), Ok("k1"));
    }

    #[test]
    fn altered_body_or_timestamp_is_a_mismatch() {
        let key = SigningKey::new("k2", "new-secret").unwrap();
        let h = key.sign(b"{\"a\":1}", NOW);
        assert_eq!(
            ring().verify(&h, b"{\"a\":2}", NOW),
            Err(SignatureError::Mismatch)
        );
        let moved = h.replace("t=1795000000", "t=1795000001");
        assert_eq!(
            ring().verify(&moved, b"{\"a\":1}", NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn key_id_is_bound_into_the_mac() {
        // Same secret under two ids: a signature made for one id must not pass for the other.
        let ring = Keyring::new(
            vec![
                SigningKey::new("a", "same").unwrap(),
                SigningKey::new("b", "same").unwrap(),
            ],
            300,
        );
        let h = SigningKey::new("a", "same").unwrap().sign(b"x", NOW);
        assert_eq!(
            ring.verify(&h.replace("kid=a", "kid=b"), b"x", NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn replay_outside_the_window_is_refused() {
        let h = SigningKey::new("k2", "new-secret").unwrap().sign(b"x", NOW);
        assert_eq!(
            ring().verify(&h, b"x", NOW + 301),
            Err(SignatureError::OutsideWindow(-301))
        );
        assert_eq!(
            ring().verify(&h, b"x", NOW - 400),
            Err(SignatureError::OutsideWindow(400))
        );
    }

    #[test]
    fn precheck_needs_a_known_key_and_a_fresh_timestamp_but_no_body() {
        let h = SigningKey::new("k2", "new-secret").unwrap().sign(b"x", NOW);
        assert_eq!(ring().precheck(&h, NOW), Ok("k2"));
        assert_eq!(
            ring().precheck(&h, NOW + 301),
            Err(SignatureError::OutsideWindow(-301))
        );
        let unknown = SigningKey::new("k9", "s").unwrap().sign(b"x", NOW);
        assert_eq!(
            ring().precheck(&unknown, NOW),
            Err(SignatureError::UnknownKey("k9".into()))
        );
        assert!(matches!(
            ring().precheck("v1,kid=k2", NOW),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_key_and_garbage_headers_are_distinct_errors() {
        let h = SigningKey::new("k9", "s").unwrap().sign(b"x", NOW);
        assert_eq!(
            ring().verify(&h, b"x", NOW),
            Err(SignatureError::UnknownKey("k9".into()))
        );
        for bad in [
            "",
            "v2,kid=k1,t=1,sig=AA==",
            "v1,kid=k1,t=x,sig=AA==",
            "v1,kid=k1",
            "token",
        ] {
            assert!(
                matches!(
                    ring().verify(bad, b"x", NOW),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn envelope_round_trips_with_raw_payload() {
        let body = br#"{"id":1,"line_items":[{"id":2,"sku":"A"}]}"#;
        let env = Envelope {
            meta: WebhookMeta {
                webhook_id: WebhookId::parse("w1").unwrap(),
                event_id: Some("e1".into()),
                topic: Topic::parse("orders/create").unwrap(),
                shop: ShopDomain::parse("a.myshopify.com").unwrap(),
                api_version: "2025-07".into(),
                triggered_at: None,
                name: None,
            },
            received_at_ms: 1,
            original_bytes: body.len() as u64,
            payload: Payload::from_strip(crate::strip("orders/create", body), body),
        };
        let text = serde_json::to_string(&env).unwrap();
        assert!(text.contains(r#""body":{"id":1,"line_items":[{"id":2,"sku":"A"}]}"#));
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.meta, env.meta);
        match back.payload {
            Payload::Json { stripping, body } => {
                assert_eq!(stripping, Stripping::Allowlist);
                assert_eq!(body.get(), r#"{"id":1,"line_items":[{"id":2,"sku":"A"}]}"#);
            }
            Payload::Malformed { .. } => panic!("payload should be JSON"),
        }
    }

    #[test]
    fn malformed_body_is_kept_with_its_reason() {
        let p = Payload::from_strip(crate::strip("orders/create", b"{oops"), b"{oops");
        match p {
            Payload::Malformed {
                reason,
                body_base64,
            } => {
                assert!(reason.contains("not valid JSON"), "{reason}");
                assert_eq!(STANDARD.decode(body_base64).unwrap(), b"{oops");
            }
            Payload::Json { .. } => panic!("should be malformed"),
        }
    }
}
