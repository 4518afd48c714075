//! Verifying a Shopify webhook delivery.
//!
//! Shopify signs the raw body with the app's client secret (HMAC-SHA256, base64) in
//! `X-Shopify-Hmac-Sha256`. After a secret rotation it may keep signing with the old secret for
//! up to an hour, so both the current and the previous secret are accepted. Header names are
//! case-insensitive, and the newer Events delivery sends them without the `X-` prefix.

use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hmac_sha256;

/// Why a delivery was not accepted as a genuine Shopify webhook.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A required header is absent (the name is given without prefix, e.g. `Shopify-Topic`).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but its value is not acceptable.
    #[error("malformed header {header}: {reason}")]
    MalformedHeader {
        /// The header, without prefix.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HMAC header is not base64 of a 32-byte digest.
    #[error("HMAC header is not a base64 SHA-256 digest")]
    BadSignatureEncoding,
    /// The HMAC matches neither the current nor the previous secret.
    #[error("HMAC does not match")]
    SignatureMismatch,
}

impl VerifyError {
    /// Whether the failure is about authenticity (answer 401) rather than a malformed request
    /// (answer 400). Shopify's compliance topics require 401 on an invalid HMAC.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            VerifyError::SignatureMismatch
                | VerifyError::BadSignatureEncoding
                | VerifyError::MissingHeader(HMAC)
        )
    }
}

const HMAC: &str = "Shopify-Hmac-Sha256";
const TOPIC: &str = "Shopify-Topic";
const SHOP: &str = "Shopify-Shop-Domain";
const API_VERSION: &str = "Shopify-API-Version";
const WEBHOOK_ID: &str = "Shopify-Webhook-Id";
const EVENT_ID: &str = "Shopify-Event-Id";
const TRIGGERED_AT: &str = "Shopify-Triggered-At";
const NAME: &str = "Shopify-Name";

/// A secret that never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The secret's bytes, for computing a MAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The app's Shopify client secrets: the current one and, during a rotation, the previous one.
#[derive(Clone, Debug)]
pub struct ShopifySecrets {
    current: Secret,
    previous: Option<Secret>,
}

/// Which of the two secrets verified a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSlot {
    /// The current secret.
    Current,
    /// The previous secret (Shopify may use it for up to an hour after a rotation).
    Previous,
}

impl ShopifySecrets {
    /// Secrets from the current and, optionally, the previous client secret. An empty previous
    /// secret counts as none.
    pub fn new(current: impl Into<Vec<u8>>, previous: Option<impl Into<Vec<u8>>>) -> Self {
        let previous = previous.map(Secret::new).filter(|s| !s.0.is_empty());
        ShopifySecrets {
            current: Secret::new(current),
            previous,
        }
    }

    /// The secrets to try, current first.
    fn slots(&self) -> impl Iterator<Item = (&Secret, SecretSlot)> {
        std::iter::once((&self.current, SecretSlot::Current))
            .chain(self.previous.iter().map(|p| (p, SecretSlot::Previous)))
    }

    /// Which secret, if any, produced `digest` over `body`, compared in constant time.
    fn check(&self, body: &[u8], digest: &[u8]) -> Option<SecretSlot> {
        if hmac_sha256::verify(self.current.expose(), &[body], digest) {
            return Some(SecretSlot::Current);
        }
        match &self.previous {
            Some(p) if hmac_sha256::verify(p.expose(), &[body], digest) => {
                Some(SecretSlot::Previous)
            }
            _ => None,
        }
    }

    /// The base64 HMAC that Shopify would send for `body` with the current secret (for
    /// simulators and tests).
    pub fn sign(&self, body: &[u8]) -> String {
        STANDARD.encode(hmac_sha256::mac(self.current.expose(), &[body]))
    }
}

/// Shopify's per-delivery id (`X-Shopify-Webhook-Id`): the deduplication key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookId(String);

impl WebhookId {
    /// Parses a webhook id: non-empty, at most 255 printable ASCII characters.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("empty");
        }
        if s.len() > 255 {
            return Err("longer than 255 characters");
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("not printable ASCII");
        }
        Ok(WebhookId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A webhook topic such as `orders/create`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

impl Topic {
    /// Parses a topic: `resource/event`, lowercase ASCII letters, digits and underscores,
    /// at most 100 characters.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let ok_part = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match s.split_once('/') {
            Some((a, b)) if s.len() <= 100 && ok_part(a) && ok_part(b) => Ok(Topic(s.to_owned())),
            _ => Err("expected resource/event in lowercase"),
        }
    }

    /// The topic as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A shop's permanent `*.myshopify.com` domain, lowercased. With the `sqlx` feature it is
/// stored as text; a value read back is trusted as it was parsed on the way in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
pub struct ShopDomain(String);

impl ShopDomain {
    /// Parses a shop domain: `<name>.myshopify.com`, where the name is letters, digits and
    /// hyphens. Upper case is folded to lower case.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let lower = s.to_ascii_lowercase();
        let name = lower
            .strip_suffix(".myshopify.com")
            .ok_or("not a .myshopify.com domain")?;
        if name.is_empty()
            || name.len() > 63
            || name.starts_with('-')
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("invalid shop name");
        }
        Ok(ShopDomain(lower))
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ShopDomain {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ShopDomain::parse(s)
    }
}

impl AsRef<str> for ShopDomain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = &'static str;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                <$t>::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_conversions!(WebhookId, Topic, ShopDomain);

/// What Shopify's headers say about one delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMeta {
    /// Unique per delivery: the deduplication key.
    pub webhook_id: WebhookId,
    /// Shared by every delivery of one merchant action (several subscriptions, retries).
    pub event_id: Option<String>,
    /// The topic, e.g. `orders/create`.
    pub topic: Topic,
    /// The shop the event belongs to.
    pub shop: ShopDomain,
    /// The Admin API version the payload is shaped by, e.g. `2025-07`.
    pub api_version: String,
    /// When Shopify triggered the event (RFC 3339, as Shopify sent it).
    pub triggered_at: Option<String>,
    /// The subscription's name, when it has one.
    pub name: Option<String>,
}

/// A delivery whose HMAC checked out. Only [`VerifiedWebhook::verify`] builds one.
#[derive(Debug)]
pub struct VerifiedWebhook {
    meta: WebhookMeta,
    secret: SecretSlot,
}

impl VerifiedWebhook {
    /// Verifies a raw delivery: `headers` are the request's (name, value) pairs in any case,
    /// with or without the `X-` prefix. The HMAC is checked first, over the exact bytes
    /// received; the other headers are parsed only for an authentic request.
    pub fn verify<'h, I>(
        body: &[u8],
        headers: I,
        secrets: &ShopifySecrets,
    ) -> Result<Self, VerifyError>
    where
        I: IntoIterator<Item = (&'h str, &'h str)>,
    {
        let h = ShopifyHeaders::collect(headers);
        let digest = h.digest()?;
        let secret = secrets
            .check(body, &digest)
            .ok_or(VerifyError::SignatureMismatch)?;
        Self::authentic(h, secret)
    }

    /// [`VerifiedWebhook::verify`] for runtimes with a faster HMAC of their own (the edge
    /// worker uses WebCrypto's native `crypto.subtle`, several times faster than HMAC compiled
    /// to wasm on a 600 kB body). `mac(secret)` must return the HMAC-SHA256 of the raw body
    /// under `secret`; it is called for the current secret, then for the previous one if the
    /// first does not match. The comparison with the header's digest happens here, in constant
    /// time, and the rest of the checks are the same.
    pub async fn verify_with<'h, I, F, Fut>(
        headers: I,
        secrets: &ShopifySecrets,
        mut mac: F,
    ) -> Result<Self, VerifyError>
    where
        I: IntoIterator<Item = (&'h str, &'h str)>,
        F: FnMut(&[u8]) -> Fut,
        Fut: std::future::Future<Output = [u8; 32]>,
    {
        let h = ShopifyHeaders::collect(headers);
        let digest = h.digest()?;
        for (secret, slot) in secrets.slots() {
            if hmac_sha256::constant_time_eq(&mac(secret.expose()).await, &digest) {
                return Self::authentic(h, slot);
            }
        }
        Err(VerifyError::SignatureMismatch)
    }

    /// The checks after the HMAC: the other headers, parsed only for an authentic request.
    fn authentic(h: ShopifyHeaders<'_>, secret: SecretSlot) -> Result<Self, VerifyError> {
        let malformed = |header, reason| VerifyError::MalformedHeader { header, reason };
        let webhook_id =
            WebhookId::parse(h.webhook_id.ok_or(VerifyError::MissingHeader(WEBHOOK_ID))?)
                .map_err(|r| malformed(WEBHOOK_ID, r))?;
        let topic = Topic::parse(h.topic.ok_or(VerifyError::MissingHeader(TOPIC))?)
            .map_err(|r| malformed(TOPIC, r))?;
        let shop = ShopDomain::parse(h.shop.ok_or(VerifyError::MissingHeader(SHOP))?)
            .map_err(|r| malformed(SHOP, r))?;
        let api_version = h
            .api_version
            .ok_or(VerifyError::MissingHeader(API_VERSION))?;
        if !is_api_version(api_version) {
            return Err(malformed(API_VERSION, "expected YYYY-MM or unstable"));
        }
        Ok(VerifiedWebhook {
            meta: WebhookMeta {
                webhook_id,
                event_id: h.event_id.map(str::to_owned),
                topic,
                shop,
                api_version: api_version.to_owned(),
                triggered_at: h.triggered_at.map(str::to_owned),
                name: h.name.map(str::to_owned),
            },
            secret,
        })
    }

    /// The delivery's metadata.
    pub fn meta(&self) -> &WebhookMeta {
        &self.meta
    }

    /// Consumes the verification into its metadata.
    pub fn into_meta(self) -> WebhookMeta {
        self.meta
    }

    /// Which secret verified it (a delivery on `Previous` means a rotation is in progress).
    pub fn secret(&self) -> SecretSlot {
        self.secret
    }
}

fn is_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    v == "unstable"
        || (b.len() == 7
            && b[4] == b'-'
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[5..].iter().all(u8::is_ascii_digit))
}

/// The Shopify headers of one request, found case-insensitively with or without `X-`.
#[derive(Default)]
struct ShopifyHeaders<'h> {
    hmac: Option<&'h str>,
    topic: Option<&'h str>,
    shop: Option<&'h str>,
    api_version: Option<&'h str>,
    webhook_id: Option<&'h str>,
    event_id: Option<&'h str>,
    triggered_at: Option<&'h str>,
    name: Option<&'h str>,
}

impl<'h> ShopifyHeaders<'h> {
    /// The HMAC header's digest: base64 of 32 bytes.
    fn digest(&self) -> Result<Vec<u8>, VerifyError> {
        let hmac = self.hmac.ok_or(VerifyError::MissingHeader(HMAC))?;
        let digest = STANDARD
            .decode(hmac.trim())
            .map_err(|_| VerifyError::BadSignatureEncoding)?;
        if digest.len() != 32 {
            return Err(VerifyError::BadSignatureEncoding);
        }
        Ok(digest)
    }

    fn collect<I: IntoIterator<Item = (&'h str, &'h str)>>(headers: I) -> Self {
        let mut h = ShopifyHeaders::default();
        for (name, value) in headers {
            let bare = match name.get(..2) {
                Some(p) if p.eq_ignore_ascii_case("x-") => &name[2..],
                _ => name,
            };
            let slot = [
                (HMAC, &mut h.hmac),
                (TOPIC, &mut h.topic),
                (SHOP, &mut h.shop),
                (API_VERSION, &mut h.api_version),
                (WEBHOOK_ID, &mut h.webhook_id),
                (EVENT_ID, &mut h.event_id),
                (TRIGGERED_AT, &mut h.triggered_at),
                (NAME, &mut h.name),
            ]
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(bare));
            if let Some((_, slot)) = slot {
                slot.get_or_insert(value.trim());
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hmac: &str) -> Vec<(&str, &str)> {
        vec![
            ("X-Shopify-Hmac-Sha256", hmac),
            ("X-Shopify-Topic", "orders/create"),
            ("X-Shopify-Shop-Domain", "acme-wholesale.myshopify.com"),
            ("X-Shopify-API-Version", "2025-07"),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
            ("X-Shopify-Triggered-At", "2026-11-23T10:00:00.000Z"),
        ]
    }

    fn secrets() -> ShopifySecrets {
        ShopifySecrets::new("test_secret_key", None::<&str>)
    }

    #[test]
    fn shopify_published_vectors_verify() {
        let body = br#"{"foo": "bar"}"#;
        let v = VerifiedWebhook::verify(
            body,
            headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
            &secrets(),
        )
        .unwrap();
        assert_eq!(v.meta().topic.as_str(), "orders/create");
        assert_eq!(v.secret(), SecretSlot::Current);

        let s2 = ShopifySecrets::new("7008c5f4da4718b9b45d26d3fcbbb157", None::<&str>);
        assert_eq!(
            s2.sign(br#"{"foo":"bar"}"#),
            "+R9TwYM4mbLTk3hEAOBkpA7zW2lc9vNFmVKs2u2jtyY="
        );
        VerifiedWebhook::verify(
            br#"{"foo":"bar"}"#,
            headers("+R9TwYM4mbLTk3hEAOBkpA7zW2lc9vNFmVKs2u2jtyY="),
            &s2,
        )
        .unwrap();
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let other = ShopifySecrets::new("not_the_secret", None::<&str>);
        let err = VerifiedWebhook::verify(
            br#"{"foo": "bar"}"#,
            headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
            &other,
        )
        .unwrap_err();
        assert_eq!(err, VerifyError::SignatureMismatch);
        assert!(err.is_unauthorized());
    }

    #[test]
    fn body_altered_by_one_byte_is_a_mismatch() {
        let err = VerifiedWebhook::verify(
            br#"{"foo": "bas"}"#,
            headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
            &secrets(),
        )
        .unwrap_err();
        assert_eq!(err, VerifyError::SignatureMismatch);
    }

    #[test]
    fn previous_secret_is_accepted_during_rotation() {
        let rotated = ShopifySecrets::new("new_secret", Some("test_secret_key"));
        let v = VerifiedWebhook::verify(
            br#"{"foo": "bar"}"#,
            headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
            &rotated,
        )
        .unwrap();
        assert_eq!(v.secret(), SecretSlot::Previous);
    }

    #[test]
    fn bad_base64_and_wrong_length_are_encoding_errors() {
        for bad in ["not base64!!", "AAAA"] {
            let err = VerifiedWebhook::verify(br#"{"foo": "bar"}"#, headers(bad), &secrets())
                .unwrap_err();
            assert_eq!(err, VerifyError::BadSignatureEncoding, "{bad}");
            assert!(err.is_unauthorized());
        }
    }

    #[test]
    fn missing_hmac_is_unauthorized() {
        let h: Vec<_> = headers("x").into_iter().skip(1).collect();
        let err = VerifiedWebhook::verify(b"{}", h, &secrets()).unwrap_err();
        assert_eq!(err, VerifyError::MissingHeader("Shopify-Hmac-Sha256"));
        assert!(err.is_unauthorized());
    }

    #[test]
    fn missing_webhook_id_is_a_distinct_error() {
        let h: Vec<_> = headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=")
            .into_iter()
            .filter(|(n, _)| *n != "X-Shopify-Webhook-Id")
            .collect();
        let err = VerifiedWebhook::verify(br#"{"foo": "bar"}"#, h, &secrets()).unwrap_err();
        assert_eq!(err, VerifyError::MissingHeader("Shopify-Webhook-Id"));
        assert!(!err.is_unauthorized());
    }

    #[test]
    fn malformed_shop_domain_is_rejected() {
        let h: Vec<_> = headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=")
            .into_iter()
            .map(|(n, v)| {
                if n == "X-Shopify-Shop-Domain" {
                    (n, "evil.example.com")
                } else {
                    (n, v)
                }
            })
            .collect();
        let err = VerifiedWebhook::verify(br#"{"foo": "bar"}"#, h, &secrets()).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::MalformedHeader {
                header: "Shopify-Shop-Domain",
                ..
            }
        ));
    }

    #[test]
    fn header_names_are_case_insensitive_and_prefix_optional() {
        let h = vec![
            (
                "shopify-hmac-sha256",
                "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",
            ),
            ("SHOPIFY-TOPIC", "orders/paid"),
            ("x-shopify-shop-domain", "Acme-Wholesale.myshopify.com"),
            ("Shopify-Api-Version", "2026-01"),
            ("shopify-webhook-id", "w-1"),
            ("X-SHOPIFY-NAME", "ops"),
        ];
        let v = VerifiedWebhook::verify(br#"{"foo": "bar"}"#, h, &secrets()).unwrap();
        let m = v.into_meta();
        assert_eq!(m.topic.as_str(), "orders/paid");
        assert_eq!(m.shop.as_str(), "acme-wholesale.myshopify.com");
        assert_eq!(m.webhook_id.as_str(), "w-1");
        assert_eq!(m.name.as_deref(), Some("ops"));
        assert_eq!(m.event_id, None);
    }

    /// Polls a future that never waits (the test MACs are computed inline).
    fn ready<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the future should be ready"),
        }
    }

    fn external_mac(body: &'static [u8]) -> impl FnMut(&[u8]) -> std::future::Ready<[u8; 32]> {
        move |secret| std::future::ready(hmac_sha256::mac(secret, &[body]))
    }

    #[test]
    fn verify_with_an_external_mac_agrees_with_verify() {
        let body: &[u8] = br#"{"foo": "bar"}"#;
        let good = headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=");
        let v = ready(VerifiedWebhook::verify_with(
            good.clone(),
            &secrets(),
            external_mac(body),
        ))
        .unwrap();
        assert_eq!(
            v.meta(),
            VerifiedWebhook::verify(body, good, &secrets())
                .unwrap()
                .meta()
        );

        let rotated = ShopifySecrets::new("new_secret", Some("test_secret_key"));
        let v = ready(VerifiedWebhook::verify_with(
            headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
            &rotated,
            external_mac(body),
        ))
        .unwrap();
        assert_eq!(v.secret(), SecretSlot::Previous);

        let err = ready(VerifiedWebhook::verify_with(
            headers("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
            &secrets(),
            external_mac(br#"{"foo": "bas"}"#),
        ))
        .unwrap_err();
        assert_eq!(err, VerifyError::SignatureMismatch);

        let err = ready(VerifiedWebhook::verify_with(
            headers("AAAA"),
            &secrets(),
            external_mac(body),
        ))
        .unwrap_err();
        assert_eq!(err, VerifyError::BadSignatureEncoding);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = ShopifySecrets::new("super-secret-value", Some("older-secret"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("super-secret-value") && !shown.contains("older-secret"));
    }

    #[test]
    fn domain_types_reject_garbage() {
        assert!(Topic::parse("orders").is_err());
        assert!(Topic::parse("Orders/Create").is_err());
        assert!(Topic::parse("company_locations/update").is_ok());
        assert!(WebhookId::parse("").is_err());
        assert!(WebhookId::parse("a b").is_err());
        assert!(ShopDomain::parse("-x.myshopify.com").is_err());
    }
}
