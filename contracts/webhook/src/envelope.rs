//! The internal envelope the edge sends to origin, and its signature.
//!
//! The edge wraps each verified, stripped delivery in an [`Envelope`] and posts batches of them
//! to origin. Every request carries [`SIGNATURE_HEADER`]:
//!
//! ```text
//! X-Wholesail-Signature: v2,kid=<key id>,t=<unix seconds>,sig=<base64 HMAC-SHA256>
//! ```
//!
//! The v2 MAC covers `wholesail-v2\n<kid>\n<t>\n<request path>\n<body>`, so the key id, the
//! timestamp, the intake path and the body are all bound: a captured request cannot be replayed
//! once it is older than the tolerance window, nor sent to another intake (a batch for
//! `/internal/webhooks` is not valid for `/internal/dead-letters`), and keys rotate by adding
//! a new id to origin's [`Keyring`] before the edge uses it.
//!
//! v1 (`wholesail-v1\n<kid>\n<t>\n<body>`, no path) is what edges before v2 send; origin
//! accepts it on the intakes only while its rollout setting allows
//! ([`Keyring::accepting_v1`]). Draft-order callbacks still use v1
//! ([`SigningKey::sign`], [`Keyring::verify`]): they have a single destination.

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
    /// SHA-256 of the body Shopify sent (lowercase hex), before stripping. Shopify's ids are
    /// global, so one genuine body never belongs to two shops: origin quarantines a body
    /// already accepted for another shop. Absent from edges that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// The payload.
    pub payload: Payload,
}

/// The SHA-256 of `body`.
pub fn body_sha256(body: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(body).into()
}

/// A digest as lowercase hex, the form [`Envelope::body_sha256`] carries.
pub fn hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    digest
        .iter()
        .fold(String::with_capacity(digest.len() * 2), |mut out, b| {
            write!(out, "{b:02x}").expect("writing to a String cannot fail");
            out
        })
}

/// The bytes of a lowercase or uppercase hex SHA-256, if `text` is one.
pub fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
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

    /// The v1 signature header value for `body` sent at `unix_secs` (no path bound): for
    /// draft-order callbacks, and what edges before v2 sent to the intakes.
    pub fn sign(&self, body: &[u8], unix_secs: i64) -> String {
        let t = unix_secs.to_string();
        let mac = hmac_sha256::mac(self.secret.expose(), &v1_parts(&self.id, &t, body));
        format!("v1,kid={},t={t},sig={}", self.id, STANDARD.encode(mac))
    }

    /// The v2 signature header value for a request to `path` (e.g. `/internal/webhooks`)
    /// with `body`, sent at `unix_secs`.
    pub fn sign_request(&self, path: &str, body: &[u8], unix_secs: i64) -> String {
        let t = unix_secs.to_string();
        let mac = hmac_sha256::mac(self.secret.expose(), &v2_parts(&self.id, &t, path, body));
        format!("v2,kid={},t={t},sig={}", self.id, STANDARD.encode(mac))
    }
}

fn v1_parts<'a>(kid: &'a str, t: &'a str, body: &'a [u8]) -> [&'a [u8]; 6] {
    [
        b"wholesail-v1\n",
        kid.as_bytes(),
        b"\n",
        t.as_bytes(),
        b"\n",
        body,
    ]
}

fn v2_parts<'a>(kid: &'a str, t: &'a str, path: &'a str, body: &'a [u8]) -> [&'a [u8]; 8] {
    [
        b"wholesail-v2\n",
        kid.as_bytes(),
        b"\n",
        t.as_bytes(),
        b"\n",
        path.as_bytes(),
        b"\n",
        body,
    ]
}

/// The signature scheme a verified request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `v1`: key id, timestamp and body.
    V1,
    /// `v2`: key id, timestamp, request path and body.
    V2,
}

/// Why an envelope signature was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The header is not of the `v2,kid=…,t=…,sig=…` (or `v1,…`) form.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// A v1 signature where only v2 is accepted (origin's rollout window is over).
    #[error("signature version v1 is no longer accepted; the sender must sign v2 (with the path)")]
    VersionRetired,
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

/// The keys origin accepts, by id, how far a timestamp may be from now, and whether request
/// signatures may still be v1.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<SigningKey>,
    tolerance_secs: i64,
    accept_v1: bool,
}

impl Keyring {
    /// A keyring accepting `keys` with timestamps within `tolerance_secs` of now; requests
    /// must be signed v2 (see [`Keyring::accepting_v1`]).
    pub fn new(keys: Vec<SigningKey>, tolerance_secs: i64) -> Self {
        Keyring {
            keys,
            tolerance_secs,
            accept_v1: false,
        }
    }

    /// The same keyring, accepting v1 request signatures too when `accept` (the rollout
    /// window while edges still sign v1).
    pub fn accepting_v1(mut self, accept: bool) -> Self {
        self.accept_v1 = accept;
        self
    }

    /// Checks what a signature header says before the body is read: its form, a version this
    /// keyring accepts, a known key id and a timestamp within the window. Returns the key id;
    /// [`Keyring::verify_request`] still has to check the MAC over the path and body.
    pub fn precheck(&self, header: &str, now_unix_secs: i64) -> Result<&str, SignatureError> {
        let h = Header::parse(header)?;
        if h.version == SignatureVersion::V1 && !self.accept_v1 {
            return Err(SignatureError::VersionRetired);
        }
        self.check(&h, now_unix_secs).map(|key| key.id.as_str())
    }

    /// Verifies a v1 signature header for `body` at `now_unix_secs`; returns the key id used.
    /// For draft-order callbacks; the intakes use [`Keyring::verify_request`].
    pub fn verify(
        &self,
        header: &str,
        body: &[u8],
        now_unix_secs: i64,
    ) -> Result<&str, SignatureError> {
        let h = Header::parse(header)?;
        if h.version != SignatureVersion::V1 {
            return Err(SignatureError::Malformed("unsupported version"));
        }
        let key = self.check(&h, now_unix_secs)?;
        let parts = v1_parts(h.kid, h.t, body);
        self.finish(key, &parts, &h.sig)
    }

    /// Verifies the signature header of a request to `path` with `body` at `now_unix_secs`:
    /// v2 (path bound), or v1 while the keyring is [`Keyring::accepting_v1`]. Returns the key
    /// id and the version used.
    pub fn verify_request(
        &self,
        header: &str,
        path: &str,
        body: &[u8],
        now_unix_secs: i64,
    ) -> Result<(&str, SignatureVersion), SignatureError> {
        let h = Header::parse(header)?;
        if h.version == SignatureVersion::V1 && !self.accept_v1 {
            return Err(SignatureError::VersionRetired);
        }
        let key = self.check(&h, now_unix_secs)?;
        let kid = match h.version {
            SignatureVersion::V1 => self.finish(key, &v1_parts(h.kid, h.t, body), &h.sig)?,
            SignatureVersion::V2 => self.finish(key, &v2_parts(h.kid, h.t, path, body), &h.sig)?,
        };
        Ok((kid, h.version))
    }

    /// The key of the header's id, if its timestamp is within the window.
    fn check(&self, h: &Header<'_>, now_unix_secs: i64) -> Result<&SigningKey, SignatureError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == h.kid)
            .ok_or_else(|| SignatureError::UnknownKey(h.kid.to_owned()))?;
        // Saturating and unsigned: t = i64::MIN must be refused, not overflow.
        let skew = h.t_secs.saturating_sub(now_unix_secs);
        if skew.unsigned_abs() > self.tolerance_secs.unsigned_abs() {
            return Err(SignatureError::OutsideWindow(skew));
        }
        Ok(key)
    }

    fn finish<'k>(
        &'k self,
        key: &'k SigningKey,
        parts: &[&[u8]],
        sig: &[u8],
    ) -> Result<&'k str, SignatureError> {
        if !hmac_sha256::verify(key.secret.expose(), parts, sig) {
            return Err(SignatureError::Mismatch);
        }
        Ok(&key.id)
    }
}

/// A parsed signature header.
struct Header<'a> {
    version: SignatureVersion,
    kid: &'a str,
    t: &'a str,
    t_secs: i64,
    sig: Vec<u8>,
}

impl<'a> Header<'a> {
    fn parse(header: &'a str) -> Result<Self, SignatureError> {
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
        let version = match version {
            Some("v1") => SignatureVersion::V1,
            Some("v2") => SignatureVersion::V2,
            _ => return Err(SignatureError::Malformed("unsupported version")),
        };
        let kid = kid.ok_or(SignatureError::Malformed("missing kid"))?;
        let t = t.ok_or(SignatureError::Malformed("missing t"))?;
        let sig = sig.ok_or(SignatureError::Malformed("missing sig"))?;
        let t_secs: i64 = t
            .parse()
            .map_err(|_| SignatureError::Malformed("t is not an integer"))?;
        let sig = STANDARD
            .decode(sig)
            .map_err(|_| SignatureError::Malformed("sig is not base64"))?;
        Ok(Header {
            version,
            kid,
            t,
            t_secs,
            sig,
        })
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
    fn precheck_needs_a_known_key_and_a_fresh_timestamp_but_no_body() {
        let key = SigningKey::new("k2", "new-secret").unwrap();
        let h = key.sign_request("/v1/events", b"x", NOW);
        assert_eq!(ring().precheck(&h, NOW), Ok("k2"));
        assert_eq!(
            ring().precheck(&h, NOW + 301),
            Err(SignatureError::OutsideWindow(-301))
        );
        let unknown = SigningKey::new("k9", "s")
            .unwrap()
            .sign_request("/p", b"x", NOW);
        assert_eq!(
            ring().precheck(&unknown, NOW),
            Err(SignatureError::UnknownKey("k9".into()))
        );
        assert!(matches!(
            ring().precheck("v2,kid=k2", NOW),
            Err(SignatureError::Malformed(_))
        ));
        let v1 = key.sign(b"x", NOW);
        assert_eq!(ring().accepting_v1(true).precheck(&v1, NOW), Ok("k2"));
        assert_eq!(
            ring().precheck(&v1, NOW),
            Err(SignatureError::VersionRetired)
        );
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
        // The far past saturates (found writing the envelope_signature fuzz target).
        let far = SigningKey::new("k2", "new-secret")
            .unwrap()
            .sign(b"x", i64::MIN);
        assert_eq!(
            ring().verify(&far, b"x", NOW),
            Err(SignatureError::OutsideWindow(i64::MIN))
        );
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
            "v3,kid=k1,t=1,sig=AA==",
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
    fn timestamp_at_the_integer_limits_is_outside_the_window() {
        // Fails before the fix: `(i64::MIN - now).abs()` overflowed (a panic in debug builds;
        // in release it wrapped negative and passed the window check).
        let key = SigningKey::new("k1", "old-secret").unwrap();
        for t in [i64::MIN, i64::MAX] {
            let h = format!("v2,kid=k1,t={t},sig=AA==");
            assert!(
                matches!(
                    ring().verify_request(&h, "/p", b"x", NOW),
                    Err(SignatureError::OutsideWindow(_))
                ),
                "{t}"
            );
            let v1 = key.sign(b"x", t);
            assert!(matches!(
                ring().verify(&v1, b"x", NOW),
                Err(SignatureError::OutsideWindow(_))
            ));
        }
    }

    #[test]
    fn v2_binds_the_request_path() {
        let key = SigningKey::new("k2", "new-secret").unwrap();
        let h = key.sign_request("/internal/webhooks", b"{}", NOW);
        assert!(h.starts_with("v2,kid=k2,t=1795000000,sig="), "{h}");
        assert_eq!(
            ring().verify_request(&h, "/internal/webhooks", b"{}", NOW),
            Ok(("k2", SignatureVersion::V2))
        );
        assert_eq!(
            ring()
                .accepting_v1(true)
                .verify_request(&h, "/internal/dead-letters", b"{}", NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn v1_is_accepted_on_requests_only_during_the_rollout() {
        let h = SigningKey::new("k1", "old-secret")
            .unwrap()
            .sign(b"{}", NOW);
        assert_eq!(
            ring()
                .accepting_v1(true)
                .verify_request(&h, "/internal/webhooks", b"{}", NOW),
            Ok(("k1", SignatureVersion::V1))
        );
        assert_eq!(
            ring().verify_request(&h, "/internal/webhooks", b"{}", NOW),
            Err(SignatureError::VersionRetired)
        );
        // A v2 header is not a v1 callback signature.
        let v2 = SigningKey::new("k1", "old-secret")
            .unwrap()
            .sign_request("/", b"{}", NOW);
        assert!(ring().verify(&v2, b"{}", NOW).is_err());
    }

    #[test]
    fn sha256_hex_round_trips() {
        let d = body_sha256(b"abc");
        let h = hex(&d);
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_sha256_hex(&h), Some(d));
        assert_eq!(parse_sha256_hex("zz"), None);
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
            body_sha256: Some(hex(&body_sha256(body))),
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
