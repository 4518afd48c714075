//! Accepting one Shopify delivery: size cap, HMAC check, shop allowlist, stripping, and the
//! envelope that goes on the queue. Pure: the worker glue reads the request, calls
//! [`accept`], stores and enqueues what it returns, and only then answers 200.

use std::fmt::Write;
use std::future::Future;

use wholesail_webhook::{
    hex, strip, strip_into, stripping_for, Envelope, Payload, ShopDomain, Stripping,
    VerifiedWebhook, VerifyError, WebhookMeta,
};

use crate::config::IntakeConfig;
use crate::message::{stored_key, Placement, INLINE_PREFIX, INLINE_WRAPPING_BYTES};

/// Why a delivery was refused. Nothing is enqueued for a refused delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The body is larger than the configured cap (413).
    BodyTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The HMAC is missing, malformed or wrong (401; required for the compliance topics).
    Unauthorized(VerifyError),
    /// The HMAC is right but a required Shopify header is missing or malformed (400).
    BadHeaders(VerifyError),
    /// The shop is not on the allowlist (403).
    ShopNotAllowed(ShopDomain),
    /// The body could not be read whole, e.g. shorter than its `Content-Length` (400).
    UnreadableBody(String),
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BodyTooLarge { .. } => 413,
            Refusal::Unauthorized(_) => 401,
            Refusal::BadHeaders(_) | Refusal::UnreadableBody(_) => 400,
            Refusal::ShopNotAllowed(_) => 403,
        }
    }

    /// A short reason for the response body and the log; never contains secrets or payload.
    pub fn reason(&self) -> String {
        match self {
            Refusal::BodyTooLarge { limit } => format!("body larger than {limit} bytes"),
            Refusal::Unauthorized(e) | Refusal::BadHeaders(e) => e.to_string(),
            Refusal::ShopNotAllowed(shop) => format!("shop {shop} is not allowed"),
            Refusal::UnreadableBody(e) => format!("body could not be read whole: {e}"),
        }
    }
}

/// A delivery that passed every check, ready to be stored and enqueued.
#[derive(Debug)]
pub struct Accepted {
    /// What Shopify's headers said.
    pub meta: WebhookMeta,
    /// How the envelope goes onto the queue.
    pub placement: Placement,
    /// The body size Shopify sent.
    pub bytes_in: usize,
    /// The envelope size.
    pub bytes_out: usize,
    /// How the payload was reduced, or `None` when it is not JSON (forwarded for quarantine).
    pub stripping: Option<Stripping>,
}

/// Refuses early, before reading the body, when the declared `Content-Length` is over the cap.
pub fn check_declared_length(
    content_length: Option<&str>,
    cfg: &IntakeConfig,
) -> Result<(), Refusal> {
    match content_length.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(n) if n > cfg.max_body_bytes as u64 => Err(Refusal::BodyTooLarge {
            limit: cfg.max_body_bytes,
        }),
        _ => Ok(()),
    }
}

/// Checks a delivery and builds its envelope. `received_at_ms` is the receive time in Unix
/// milliseconds; `body_sha256` is the SHA-256 of `body` (carried in the envelope so origin can
/// tell a body replayed for another shop); `mac(secret)` computes the HMAC-SHA256 of `body`
/// under `secret` (the worker uses WebCrypto, see [`VerifiedWebhook::verify_with`]).
pub async fn accept<'h, F, Fut>(
    body: &[u8],
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    cfg: &IntakeConfig,
    received_at_ms: i64,
    body_sha256: [u8; 32],
    mac: F,
) -> Result<Accepted, Refusal>
where
    F: FnMut(&[u8]) -> Fut,
    Fut: Future<Output = [u8; 32]>,
{
    if body.len() > cfg.max_body_bytes {
        return Err(Refusal::BodyTooLarge {
            limit: cfg.max_body_bytes,
        });
    }
    let verified = VerifiedWebhook::verify_with(headers, &cfg.secrets, mac)
        .await
        .map_err(|e| {
            if e.is_unauthorized() {
                Refusal::Unauthorized(e)
            } else {
                Refusal::BadHeaders(e)
            }
        })?;
    let meta = verified.into_meta();
    if !cfg.shops.allows(&meta.shop) {
        return Err(Refusal::ShopNotAllowed(meta.shop));
    }
    let (message, stripping) = inline_message(&meta, received_at_ms, body, &body_sha256);
    let bytes_out = message.len() - INLINE_WRAPPING_BYTES;
    let key = stored_key(meta.shop.as_str(), &meta.webhook_id, received_at_ms);
    let placement = Placement::for_inline_message(message, &meta.webhook_id, key);
    Ok(Accepted {
        meta,
        placement,
        bytes_in: body.len(),
        bytes_out,
        stripping,
    })
}

/// The queue message `{"inline":ENVELOPE}` for a body, and how its payload was stripped
/// (`None`: not JSON). The stripper writes the kept values straight into the message, after
/// the envelope's other fields: the text is what `serde_json` writes for the [`Envelope`] (its
/// field order), without re-parsing the stripped document or copying it again. A body that
/// does not strip takes the serde path: its envelope carries the body in base64.
fn inline_message(
    meta: &WebhookMeta,
    received_at_ms: i64,
    body: &[u8],
    body_sha256: &[u8; 32],
) -> (String, Option<Stripping>) {
    let topic = meta.topic.as_str();
    let stripping = stripping_for(topic);
    let meta_json = serde_json::to_string(meta).expect("metadata always serialises");
    let mut text = String::with_capacity(body.len() / 4 + meta_json.len() + 256);
    text.push_str(INLINE_PREFIX);
    let envelope_start = text.len();
    text.push_str(r#"{"meta":"#);
    text.push_str(&meta_json);
    let digest = hex(body_sha256);
    let stripping_json = serde_json::to_string(&stripping).expect("a stripping serialises");
    write!(
        text,
        r#","received_at_ms":{received_at_ms},"original_bytes":{},"body_sha256":"{digest}","payload":{{"json":{{"stripping":{stripping_json},"body":"#,
        body.len()
    )
    .expect("writing to a String cannot fail");
    if strip_into(topic, body, &mut text).is_ok() {
        text.push_str("}}}}");
        return (text, Some(stripping));
    }
    text.truncate(envelope_start);
    let envelope = Envelope {
        meta: meta.clone(),
        received_at_ms,
        original_bytes: body.len() as u64,
        body_sha256: Some(digest),
        payload: Payload::from_strip(strip(topic, body), body),
    };
    let stripping = match &envelope.payload {
        Payload::Json { stripping, .. } => Some(*stripping),
        Payload::Malformed { .. } => None,
    };
    text.push_str(&serde_json::to_string(&envelope).expect("envelopes always serialise"));
    text.push('}');
    (text, stripping)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShopAllowlist;
    use crate::message::{parse, QueueMessage};
    use shopify_simulator::payloads::{order, OrderSpec};
    use wholesail_webhook::ShopifySecrets;

    const SECRET: &str = "shpss_test";

    fn cfg() -> IntakeConfig {
        IntakeConfig {
            secrets: ShopifySecrets::new(SECRET, None::<&str>),
            shops: ShopAllowlist::default(),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }

    fn headers<'a>(hmac: &'a str, topic: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("x-shopify-hmac-sha256", hmac),
            ("x-shopify-topic", topic),
            ("x-shopify-shop-domain", "acme.myshopify.com"),
            ("x-shopify-api-version", "2025-07"),
            ("x-shopify-webhook-id", "wh-1"),
            ("x-shopify-event-id", "ev-1"),
            ("content-type", "application/json"),
        ]
    }

    fn sign(body: &[u8]) -> String {
        ShopifySecrets::new(SECRET, None::<&str>).sign(body)
    }

    /// `accept` with the HMAC computed in Rust, as a ready future.
    fn accept_now<'h>(
        body: &[u8],
        headers: Vec<(&'h str, &'h str)>,
        cfg: &IntakeConfig,
        received_at_ms: i64,
    ) -> Result<Accepted, Refusal> {
        let mac = |secret: &[u8]| std::future::ready(crate::webcrypto::hmac_in_rust(secret, body));
        let digest = wholesail_webhook::body_sha256(body);
        let mut f = std::pin::pin!(accept(body, headers, cfg, received_at_ms, digest, mac));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => panic!("accept does not wait on a ready MAC"),
        }
    }

    fn envelope_of(a: &Accepted) -> Envelope {
        match parse(a.placement.message()).unwrap() {
            QueueMessage::Inline(raw) => serde_json::from_str(raw.get()).unwrap(),
            QueueMessage::Stored(_) => panic!("expected inline"),
        }
    }

    /// The message as the serde path writes it: `{"inline":` + the serialised [`Envelope`].
    fn serde_message(meta: &WebhookMeta, received_at_ms: i64, body: &[u8]) -> String {
        let envelope = Envelope {
            meta: meta.clone(),
            received_at_ms,
            original_bytes: body.len() as u64,
            body_sha256: Some(hex(&wholesail_webhook::body_sha256(body))),
            payload: Payload::from_strip(strip(meta.topic.as_str(), body), body),
        };
        format!(
            "{INLINE_PREFIX}{}}}",
            serde_json::to_string(&envelope).unwrap()
        )
    }

    #[test]
    fn message_written_in_place_is_byte_identical_to_the_serde_envelope() {
        let order = order(&OrderSpec::new(7, 3)).to_string().into_bytes();
        let cases: [(&str, &[u8]); 5] = [
            ("orders/create", &order),
            (
                "orders/create",
                br#"{"id":1,"note":"caf\u00e9 \"x\"","line_items":[]}"#,
            ),
            ("carts/update", br#"{"anything": [1, 2, {"x": null}]}"#),
            ("orders/create", b"{oops"),
            ("orders/create", b"\xff\xfe"),
        ];
        for (topic, body) in cases {
            let signed = br#"{"id":1}"#;
            let meta = accept_now(signed, headers(&sign(signed), topic), &cfg(), 1)
                .unwrap()
                .meta;
            let digest = wholesail_webhook::body_sha256(body);
            let (text, stripping) = inline_message(&meta, 1_700_000_000_123, body, &digest);
            assert_eq!(
                text,
                serde_message(&meta, 1_700_000_000_123, body),
                "{topic}"
            );
            let expected = match topic {
                "carts/update" => Some(Stripping::UnknownTopic),
                _ if body.starts_with(b"{\"") => Some(Stripping::Allowlist),
                _ => None,
            };
            assert_eq!(stripping, expected, "{topic}");
        }
    }

    #[test]
    fn valid_order_is_stripped_into_an_inline_envelope() {
        let body = order(&OrderSpec::new(7, 3)).to_string().into_bytes();
        let a = accept_now(&body, headers(&sign(&body), "orders/create"), &cfg(), 42).unwrap();
        assert_eq!(a.meta.webhook_id.as_str(), "wh-1");
        assert_eq!(a.stripping, Some(Stripping::Allowlist));
        assert!(a.bytes_out < a.bytes_in);
        let env = envelope_of(&a);
        assert_eq!(env.received_at_ms, 42);
        assert_eq!(env.original_bytes, body.len() as u64);
        assert_eq!(env.meta.event_id.as_deref(), Some("ev-1"));
        assert_eq!(
            env.body_sha256,
            Some(hex(&wholesail_webhook::body_sha256(&body)))
        );
        let Payload::Json { body: stripped, .. } = env.payload else {
            panic!("expected JSON payload")
        };
        let v: serde_json::Value = serde_json::from_str(stripped.get()).unwrap();
        assert_eq!(v["line_items"].as_array().unwrap().len(), 3);
        assert!(v.get("browser_ip").is_none());
    }

    #[test]
    fn wrong_hmac_is_unauthorized_even_for_compliance_topics() {
        let body = br#"{"shop_domain":"acme.myshopify.com"}"#;
        let other = ShopifySecrets::new("other", None::<&str>).sign(body);
        let r = accept_now(body, headers(&other, "shop/redact"), &cfg(), 0).unwrap_err();
        assert_eq!(r.status(), 401);
        let r = accept_now(body, headers("garbage", "shop/redact"), &cfg(), 0).unwrap_err();
        assert_eq!(r.status(), 401);
    }

    #[test]
    fn authentic_delivery_with_a_broken_header_is_a_bad_request() {
        let body = b"{}";
        let r = accept_now(body, headers(&sign(body), "Orders"), &cfg(), 0).unwrap_err();
        assert_eq!(r.status(), 400);
        assert!(r.reason().contains("Shopify-Topic"), "{}", r.reason());
    }

    #[test]
    fn shop_outside_the_allowlist_is_forbidden() {
        let mut c = cfg();
        c.shops = ShopAllowlist::parse("other.myshopify.com").unwrap();
        let body = b"{}";
        let r = accept_now(body, headers(&sign(body), "orders/create"), &c, 0).unwrap_err();
        assert_eq!(r.status(), 403);
    }

    #[test]
    fn body_over_the_cap_is_refused_before_and_after_reading() {
        let mut c = cfg();
        c.max_body_bytes = 10;
        assert_eq!(
            check_declared_length(Some("11"), &c).unwrap_err().status(),
            413
        );
        assert!(check_declared_length(Some("10"), &c).is_ok());
        assert!(check_declared_length(None, &c).is_ok());
        let body = b"{\"a\":\"0123456789\"}";
        let r = accept_now(body, headers(&sign(body), "orders/create"), &c, 0).unwrap_err();
        assert_eq!(r, Refusal::BodyTooLarge { limit: 10 });
    }

    #[test]
    fn malformed_json_is_forwarded_for_quarantine_not_dropped() {
        let body = b"{\"id\": 1, oops";
        let a = accept_now(body, headers(&sign(body), "orders/create"), &cfg(), 0).unwrap();
        assert_eq!(a.stripping, None);
        assert!(matches!(envelope_of(&a).payload, Payload::Malformed { .. }));
    }

    #[test]
    fn invalid_utf8_in_a_dropped_field_is_forwarded_for_quarantine() {
        // Fails before the fix: the stripper skipped the dropped `note` without decoding it.
        let body = b"{\"id\":1,\"note\":\"\xff\",\"name\":\"#1\"}";
        let a = accept_now(body, headers(&sign(body), "orders/create"), &cfg(), 0).unwrap();
        assert_eq!(a.stripping, None);
        match envelope_of(&a).payload {
            Payload::Malformed { reason, .. } => assert!(reason.contains("UTF-8"), "{reason}"),
            Payload::Json { .. } => panic!("invalid UTF-8 must not be stripped away"),
        }
    }

    #[test]
    fn order_of_a_thousand_lines_is_placed_in_r2() {
        let body = order(&OrderSpec::new(7, 1000)).to_string().into_bytes();
        let a = accept_now(&body, headers(&sign(&body), "orders/create"), &cfg(), 5).unwrap();
        match &a.placement {
            Placement::Stored {
                pointer, envelope, ..
            } => {
                assert_eq!(pointer.key, "oversized/acme.myshopify.com/wh-1/5.json");
                assert_eq!(envelope.len(), a.bytes_out);
                let env: Envelope = serde_json::from_str(envelope).unwrap();
                assert_eq!(env.meta.webhook_id.as_str(), "wh-1");
            }
            Placement::Inline(_) => panic!("a 1,000-line order should not fit a queue message"),
        }
    }

    #[test]
    fn order_of_five_hundred_lines_fits_a_queue_message() {
        let body = order(&OrderSpec::new(7, 500)).to_string().into_bytes();
        let a = accept_now(&body, headers(&sign(&body), "orders/create"), &cfg(), 5).unwrap();
        assert!(
            matches!(a.placement, Placement::Inline(_)),
            "{}",
            a.bytes_out
        );
    }
}
