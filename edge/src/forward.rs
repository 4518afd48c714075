//! Forwarding queued envelopes to origin and reading its verdicts. Pure: the consumer glue
//! builds the request from [`batch_body`], sends it, and applies [`verdicts`] to the messages.
//!
//! Origin answers one result per envelope, in input order. `accepted` and `duplicate` are
//! durable at origin and are acknowledged; `rejected` will never be accepted, so the envelope is
//! parked in R2 with the reason (never dropped silently) and acknowledged; anything else —
//! a non-2xx status, a timeout, an answer that does not match the batch — retries the batch.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wholesail_webhook::{BatchResponse, ItemStatus};

/// Origin's batch intake takes at most 100 envelopes per request (one queue batch).
pub const MAX_ENVELOPES_PER_REQUEST: usize = 100;

/// Envelopes are grouped so that one request body stays under this many bytes; an envelope
/// larger than this goes alone.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// Which origin intake a batch goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intake {
    /// `POST /internal/webhooks`: the main queue.
    Webhooks,
    /// `POST /internal/dead-letters`: the dead-letter queue.
    DeadLetters,
}

impl Intake {
    /// The intake's path on origin.
    pub fn path(self) -> &'static str {
        match self {
            Intake::Webhooks => "/internal/webhooks",
            Intake::DeadLetters => "/internal/dead-letters",
        }
    }
}

/// The body of a batch request: `{"envelopes":[…]}` with each envelope's JSON as queued.
pub fn batch_body<'a>(envelopes: impl IntoIterator<Item = &'a RawValue>) -> String {
    let mut out = String::from(r#"{"envelopes":["#);
    for (i, e) in envelopes.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e.get());
    }
    out.push_str("]}");
    out
}

/// Splits envelopes of the given sizes into consecutive groups of at most
/// [`MAX_ENVELOPES_PER_REQUEST`] envelopes and about [`MAX_REQUEST_BYTES`] bytes.
pub fn groups(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == MAX_ENVELOPES_PER_REQUEST || bytes + size > MAX_REQUEST_BYTES;
        if i > start && full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// What the consumer reads of a queued envelope's `meta` to log and count it.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
pub struct EnvelopeHead {
    /// `meta.webhook_id`.
    pub webhook_id: String,
    /// `meta.topic`.
    #[serde(default)]
    pub topic: String,
    /// `meta.shop`.
    #[serde(default)]
    pub shop: String,
}

/// The head of a queued envelope, read without materialising the rest; `None` when the
/// envelope has no webhook id.
pub fn envelope_head(envelope: &RawValue) -> Option<EnvelopeHead> {
    #[derive(Deserialize)]
    struct Head {
        meta: EnvelopeHead,
    }
    serde_json::from_str::<Head>(envelope.get())
        .ok()
        .map(|h| h.meta)
}

/// What to do with one message after origin answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Durable at origin (accepted or duplicate): acknowledge.
    Ack {
        /// Whether origin already had it.
        duplicate: bool,
    },
    /// Origin will never accept it: park it with the reason, then acknowledge.
    Reject {
        /// Origin's reason.
        reason: String,
    },
}

/// Why a whole batch must be retried.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchFailure {
    /// Origin could not be reached or did not answer in time.
    #[error("origin unreachable: {0}")]
    Unreachable(String),
    /// Origin answered with a non-2xx status.
    #[error("origin answered HTTP {0}")]
    Status(u16),
    /// Origin's 2xx answer is not a `BatchResponse` matching the batch.
    #[error("origin's answer does not match the batch: {0}")]
    BadAnswer(String),
}

/// Reads origin's answer to a batch of envelopes whose webhook ids are `ids`, in order.
pub fn verdicts(status: u16, body: &str, ids: &[&str]) -> Result<Vec<Verdict>, BatchFailure> {
    if !(200..300).contains(&status) {
        return Err(BatchFailure::Status(status));
    }
    let answer: BatchResponse =
        serde_json::from_str(body).map_err(|e| BatchFailure::BadAnswer(e.to_string()))?;
    if answer.results.len() != ids.len() {
        return Err(BatchFailure::BadAnswer(format!(
            "{} results for {} envelopes",
            answer.results.len(),
            ids.len()
        )));
    }
    answer
        .results
        .into_iter()
        .zip(ids)
        .map(|(r, id)| {
            if let Some(got) = r.webhook_id.as_deref().filter(|got| got != id) {
                return Err(BatchFailure::BadAnswer(format!(
                    "result for {got:?} where {id:?} was sent"
                )));
            }
            Ok(match r.status {
                ItemStatus::Accepted => Verdict::Ack { duplicate: false },
                ItemStatus::Duplicate => Verdict::Ack { duplicate: true },
                ItemStatus::Rejected => Verdict::Reject {
                    reason: r.reason.unwrap_or_else(|| "no reason given".to_owned()),
                },
            })
        })
        .collect()
}

/// Why an envelope is parked in R2 instead of reaching origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parking {
    /// Origin rejected it: it will never be accepted.
    Rejected,
    /// On the dead-letter queue, origin stayed unreachable for every delivery allowed.
    Undelivered,
    /// The queue message itself could not be read.
    Unreadable,
}

impl Parking {
    /// The R2 key prefix for this kind of parked envelope.
    pub fn prefix(self) -> &'static str {
        match self {
            Parking::Rejected => "rejected/",
            Parking::Undelivered => "undelivered/",
            Parking::Unreadable => "unreadable/",
        }
    }

    /// The R2 key for a parked message.
    pub fn key(self, webhook_id: &str, message_id: &str) -> String {
        format!("{}{webhook_id}/{message_id}.json", self.prefix())
    }
}

/// The R2 object of a parked message: why, from which queue, and the message as it was.
#[derive(Serialize)]
pub struct ParkedRecord<'a> {
    /// Why it is parked.
    pub reason: &'a str,
    /// The queue it came from.
    pub queue: &'a str,
    /// How many times it was delivered.
    pub attempts: u32,
    /// The envelope, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope: Option<&'a RawValue>,
    /// The raw message text, when the envelope could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

impl ParkedRecord<'_> {
    /// The record as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("parked records always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn the_head_is_read_from_the_envelope_meta() {
        let env = raw(
            r#"{"payload":{"json":{"body":{"meta":1}}},"meta":{"topic":"a/b","shop":"s.myshopify.com","webhook_id":"w-9"}}"#,
        );
        assert_eq!(
            envelope_head(&env),
            Some(EnvelopeHead {
                webhook_id: "w-9".into(),
                topic: "a/b".into(),
                shop: "s.myshopify.com".into(),
            })
        );
        assert_eq!(envelope_head(&raw(r#"{"meta":{}}"#)), None);
    }

    #[test]
    fn batch_body_is_an_envelope_batch() {
        let a = raw(r#"{"x":1}"#);
        let b = raw(r#"{"y":[2]}"#);
        let body = batch_body([a.as_ref(), b.as_ref()]);
        assert_eq!(body, r#"{"envelopes":[{"x":1},{"y":[2]}]}"#);
        let parsed: wholesail_webhook::EnvelopeBatch = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.envelopes.len(), 2);
        assert_eq!(batch_body([]), r#"{"envelopes":[]}"#);
    }

    #[test]
    fn groups_respect_count_and_byte_limits() {
        assert_eq!(groups(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(groups(&[10; 3]), vec![0..3]);
        assert_eq!(groups(&[1; 250]), vec![0..100, 100..200, 200..250]);
        let mb = 1024 * 1024;
        assert_eq!(
            groups(&[5 * mb, 5 * mb, 20 * mb, mb]),
            vec![0..1, 1..2, 2..3, 3..4]
        );
        assert_eq!(groups(&[3 * mb, 3 * mb, 3 * mb]), vec![0..2, 2..3]);
    }

    #[test]
    fn accepted_and_duplicate_are_acked_and_rejected_carries_its_reason() {
        let body = r#"{"results":[
            {"webhook_id":"a","status":"accepted"},
            {"webhook_id":"b","status":"duplicate"},
            {"webhook_id":"c","status":"rejected","reason":"unknown shop"}]}"#;
        assert_eq!(
            verdicts(200, body, &["a", "b", "c"]).unwrap(),
            vec![
                Verdict::Ack { duplicate: false },
                Verdict::Ack { duplicate: true },
                Verdict::Reject {
                    reason: "unknown shop".into()
                }
            ]
        );
    }

    #[test]
    fn non_2xx_and_mismatched_answers_retry_the_batch() {
        assert_eq!(verdicts(500, "", &["a"]), Err(BatchFailure::Status(500)));
        assert_eq!(verdicts(302, "", &["a"]), Err(BatchFailure::Status(302)));
        assert!(matches!(
            verdicts(200, "<html>", &["a"]),
            Err(BatchFailure::BadAnswer(_))
        ));
        let one = r#"{"results":[{"webhook_id":"a","status":"accepted"}]}"#;
        assert!(matches!(
            verdicts(200, one, &["a", "b"]),
            Err(BatchFailure::BadAnswer(_))
        ));
        assert!(matches!(
            verdicts(200, one, &["z"]),
            Err(BatchFailure::BadAnswer(_))
        ));
    }

    #[test]
    fn results_without_webhook_id_are_matched_by_position() {
        let body = r#"{"results":[{"webhook_id":null,"status":"rejected"}]}"#;
        assert_eq!(
            verdicts(200, body, &["a"]).unwrap(),
            vec![Verdict::Reject {
                reason: "no reason given".into()
            }]
        );
    }

    #[test]
    fn parked_record_keeps_reason_and_envelope() {
        let env = raw(r#"{"meta":{}}"#);
        let json = ParkedRecord {
            reason: "unknown shop",
            queue: "wholesail-webhooks",
            attempts: 1,
            envelope: Some(&env),
            message: None,
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"reason":"unknown shop","queue":"wholesail-webhooks","attempts":1,"envelope":{"meta":{}}}"#
        );
        assert_eq!(Parking::Rejected.key("w1", "m1"), "rejected/w1/m1.json");
    }
}
