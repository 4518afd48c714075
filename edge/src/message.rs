//! What the worker puts on the queue: the signed-for-origin envelope itself, or — when the
//! envelope is too large for a queue message — a pointer to where it is stored in R2.
//!
//! Messages are sent as text (`contentType: "text"`), so their size is the UTF-8 length of the
//! JSON and the decision below is exact.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wholesail_webhook::WebhookId;

/// Cloudflare Queues accept messages up to 128 KB including ~100 bytes of metadata (Miniflare
/// enforces 128,000 bytes). Envelopes whose message would be larger go to R2; the margin
/// keeps room for the metadata.
pub const MAX_INLINE_MESSAGE_BYTES: usize = 120_000;

/// How an inline message starts: [`QueueMessage::Inline`]'s serde form, then the envelope.
pub const INLINE_PREFIX: &str = r#"{"inline":"#;

/// The bytes an inline message adds around its envelope: the prefix and the closing brace.
pub const INLINE_WRAPPING_BYTES: usize = INLINE_PREFIX.len() + 1;

/// A queue message as the consumer reads it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueMessage {
    /// The envelope itself, as the JSON origin receives.
    Inline(Box<RawValue>),
    /// An envelope too large for a queue message, stored in R2.
    Stored(StoredEnvelope),
}

/// Where an oversized envelope is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEnvelope {
    /// The R2 object key.
    pub key: String,
    /// The delivery's webhook id, for logs while the object is not read.
    pub webhook_id: WebhookId,
    /// The envelope's size in bytes.
    pub bytes: usize,
}

/// How one accepted delivery goes onto the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// Send this text as the message.
    Inline(String),
    /// Store `envelope` in R2 under `pointer.key`, then send `message`.
    Stored {
        /// Where the envelope is stored.
        pointer: StoredEnvelope,
        /// The envelope JSON to store.
        envelope: String,
        /// The message text to send once the envelope is stored.
        message: String,
    },
}

impl Placement {
    /// Places an envelope (its JSON text) by size. `key` names the R2 object should the
    /// envelope need one.
    pub fn for_envelope(envelope: String, webhook_id: &WebhookId, key: String) -> Placement {
        // `{"inline":` + envelope + `}`: the enum's serde form, written without re-parsing the
        // envelope (serde would re-validate the RawValue).
        let mut text = String::with_capacity(envelope.len() + INLINE_WRAPPING_BYTES);
        text.push_str(INLINE_PREFIX);
        text.push_str(&envelope);
        text.push('}');
        Placement::for_inline_message(text, webhook_id, key)
    }

    /// Places the inline message `{"inline":ENVELOPE}` (as [`Placement::for_envelope`] writes
    /// it) by size: sent as it is when it fits, else its envelope goes to R2 under `key`.
    pub fn for_inline_message(text: String, webhook_id: &WebhookId, key: String) -> Placement {
        debug_assert!(text.starts_with(INLINE_PREFIX) && text.ends_with('}'));
        if text.len() <= MAX_INLINE_MESSAGE_BYTES {
            return Placement::Inline(text);
        }
        let envelope = text[INLINE_PREFIX.len()..text.len() - 1].to_owned();
        let pointer = StoredEnvelope {
            key,
            webhook_id: webhook_id.clone(),
            bytes: envelope.len(),
        };
        let message = serde_json::to_string(&QueueMessage::Stored(pointer.clone()))
            .expect("a pointer always serialises");
        Placement::Stored {
            pointer,
            envelope,
            message,
        }
    }

    /// The text sent on the queue.
    pub fn message(&self) -> &str {
        match self {
            Placement::Inline(text) => text,
            Placement::Stored { message, .. } => message,
        }
    }
}

/// The R2 key of an oversized envelope. The receive time keeps two deliveries of one webhook
/// id apart, so deleting one after origin confirmed it cannot remove the other.
pub fn stored_key(shop: &str, webhook_id: &WebhookId, received_at_ms: i64) -> String {
    format!("oversized/{shop}/{webhook_id}/{received_at_ms}.json")
}

/// Parses a message read from the queue.
pub fn parse(text: &str) -> Result<QueueMessage, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> WebhookId {
        WebhookId::parse("w-1").unwrap()
    }

    #[test]
    fn small_envelope_goes_inline_and_reads_back_identical() {
        let env = r#"{"meta":{"webhook_id":"w-1"},"payload":{"json":{"body":{"a":"é"}}}}"#;
        let p = Placement::for_envelope(env.to_owned(), &id(), "k".into());
        let Placement::Inline(text) = &p else {
            panic!("expected inline, got {p:?}")
        };
        match parse(text).unwrap() {
            QueueMessage::Inline(raw) => assert_eq!(raw.get(), env),
            other => panic!("expected inline, got {other:?}"),
        }
    }

    #[test]
    fn envelope_over_the_limit_goes_to_r2_with_a_small_pointer() {
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_INLINE_MESSAGE_BYTES));
        let key = stored_key("a.myshopify.com", &id(), 1_700_000_000_000);
        let p = Placement::for_envelope(big.clone(), &id(), key.clone());
        let Placement::Stored {
            pointer,
            envelope,
            message,
        } = &p
        else {
            panic!("expected stored")
        };
        assert_eq!(envelope, &big);
        assert_eq!(pointer.bytes, big.len());
        assert!(message.len() < 200, "{message}");
        assert_eq!(p.message(), message);
        match parse(message).unwrap() {
            QueueMessage::Stored(back) => {
                assert_eq!(back.key, key);
                assert_eq!(back.webhook_id, id());
            }
            other => panic!("expected stored, got {other:?}"),
        }
    }

    #[test]
    fn inline_limit_is_measured_on_the_whole_message() {
        let exact = MAX_INLINE_MESSAGE_BYTES - r#"{"inline":}"#.len();
        let fits = format!(r#""{}""#, "x".repeat(exact - 2));
        assert!(matches!(
            Placement::for_envelope(fits, &id(), "k".into()),
            Placement::Inline(t) if t.len() == MAX_INLINE_MESSAGE_BYTES
        ));
        let over = format!(r#""{}""#, "x".repeat(exact - 1));
        assert!(matches!(
            Placement::for_envelope(over, &id(), "k".into()),
            Placement::Stored { .. }
        ));
    }

    #[test]
    fn stored_keys_differ_per_receipt() {
        assert_ne!(
            stored_key("a.myshopify.com", &id(), 1),
            stored_key("a.myshopify.com", &id(), 2)
        );
    }

    #[test]
    fn unreadable_message_is_an_error() {
        assert!(parse("{\"other\":1}").is_err());
        assert!(parse("not json").is_err());
    }
}
