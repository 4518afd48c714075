//! What the edge counts: one [`Count`] per outcome — a delivery accepted, refused or failed at
//! intake, a queue message delivered, dead-lettered, parked or retried — in the shape of a
//! Workers Analytics Engine data point and of a JSON log line for Workers Logs and Logpush.
//! Pure: [`crate::analytics`] writes them. The fields are codes, the verified topic and shop,
//! sizes and attempts: never secrets, payload text or free-text errors.

use serde::Serialize;
use wholesail_webhook::{Stripping, VerifyError};

use crate::forward::{BatchFailure, Parking};
use crate::intake::Refusal;

/// Analytics Engine refuses an index longer than this many bytes (it drops the data point).
pub const MAX_INDEX_BYTES: usize = 96;

/// Where in the edge an outcome happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `POST /webhooks`.
    Intake,
    /// The main queue's consumer, forwarding to origin's batch intake.
    Queue,
    /// The dead-letter queue's consumer, forwarding to origin's dead-letter intake.
    DeadLetterQueue,
}

/// What happened, once per delivery (intake) or per settled or retried queue message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Intake: on the queue, answered 200 ([`Reason::Inline`] or [`Reason::R2`]).
    Accepted,
    /// Intake: refused with a 4xx, nothing enqueued.
    Refused,
    /// Intake: answered 5xx (Shopify retries).
    Failed,
    /// Main queue: origin's batch intake has it; acknowledged.
    Delivered,
    /// Dead-letter queue: origin's dead-letter intake has it; acknowledged.
    DeadLettered,
    /// Queue: written to R2 with its reason for a person to recover; acknowledged.
    Parked,
    /// Queue: not confirmed, delivered again later.
    Retried,
}

/// Why, or how, an outcome happened: a fixed code, so a query can group by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Accepted: the envelope is the queue message.
    Inline,
    /// Accepted: the envelope is too large for a queue message; it is in R2 and the queue
    /// carries a pointer.
    R2,
    /// Refused 401: the HMAC is missing, not base64 or matches no secret.
    BadHmac,
    /// Refused 413: the body is over `MAX_BODY_BYTES`.
    TooLarge,
    /// Refused 400: authentic, but the topic header is missing or malformed.
    BadTopic,
    /// Refused 400: authentic, but the shop domain header is missing or malformed.
    BadShop,
    /// Refused 400: authentic, but another required Shopify header is missing or malformed.
    BadHeader,
    /// Refused 403: the shop is not on `SHOP_ALLOWLIST`.
    ShopNotAllowed,
    /// Refused 400: the body was shorter than its `Content-Length`.
    UnreadableBody,
    /// Failed 503: the R2 put or the queue send failed.
    EnqueueFailed,
    /// Failed 500 (intake) or retried (queue): a secret or var is missing or unusable.
    Misconfigured,
    /// Delivered or dead-lettered: origin accepted it.
    New,
    /// Delivered or dead-lettered: origin already had it.
    Duplicate,
    /// Delivered: the R2 copy of an oversized envelope was already gone, so origin had
    /// confirmed it before (a redelivery).
    AlreadyDelivered,
    /// Parked: origin rejected it (`rejected/`).
    Rejected,
    /// Parked: origin stayed unreachable for every delivery the dead-letter queue allows
    /// (`undelivered/`).
    Undelivered,
    /// Parked: the queue message or its stored envelope could not be read (`unreadable/`).
    Unreadable,
    /// Retried: origin could not be reached or did not answer in time.
    OriginUnreachable,
    /// Retried: origin answered a non-2xx status.
    OriginStatus,
    /// Retried: origin's answer did not match the batch.
    OriginBadAnswer,
    /// Retried: reading an oversized envelope from R2, or parking one, failed.
    R2Error,
}

impl Reason {
    /// The reason of a refused delivery.
    pub fn of_refusal(r: &Refusal) -> Reason {
        match r {
            Refusal::BodyTooLarge { .. } => Reason::TooLarge,
            Refusal::Unauthorized(_) => Reason::BadHmac,
            Refusal::BadHeaders(
                VerifyError::MissingHeader(header) | VerifyError::MalformedHeader { header, .. },
            ) => match *header {
                "Shopify-Topic" => Reason::BadTopic,
                "Shopify-Shop-Domain" => Reason::BadShop,
                _ => Reason::BadHeader,
            },
            Refusal::BadHeaders(_) => Reason::BadHeader,
            Refusal::ShopNotAllowed(_) => Reason::ShopNotAllowed,
            Refusal::UnreadableBody(_) => Reason::UnreadableBody,
        }
    }

    /// The reason of a batch origin did not confirm.
    pub fn of_failure(f: &BatchFailure) -> Reason {
        match f {
            BatchFailure::Unreachable(_) => Reason::OriginUnreachable,
            BatchFailure::Status(_) => Reason::OriginStatus,
            BatchFailure::BadAnswer(_) => Reason::OriginBadAnswer,
        }
    }

    /// The reason of a parked message.
    pub fn of_parking(p: Parking) -> Reason {
        match p {
            Parking::Rejected => Reason::Rejected,
            Parking::Undelivered => Reason::Undelivered,
            Parking::Unreadable => Reason::Unreadable,
        }
    }
}

/// What an accepted delivery's payload was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    /// JSON reduced to the topic's allowlist.
    Stripped,
    /// JSON of a topic without an allowlist, forwarded whole.
    UnknownTopic,
    /// Not JSON (or invalid UTF-8): forwarded whole for origin to quarantine.
    Malformed,
}

impl PayloadKind {
    /// The kind of a payload stripped as `stripping` (`None`: not JSON).
    pub fn of(stripping: Option<Stripping>) -> PayloadKind {
        match stripping {
            Some(Stripping::Allowlist) => PayloadKind::Stripped,
            Some(Stripping::UnknownTopic) => PayloadKind::UnknownTopic,
            None => PayloadKind::Malformed,
        }
    }
}

/// Whether counts are also written as JSON log lines (`COUNT_LOG_LINES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineMode {
    /// Unset (or any other value): lines only when no dataset is bound, so by default each
    /// count is exported once and costs one write.
    Auto,
    /// `true`: lines as well as data points.
    Always,
    /// `false`: data points only.
    Never,
}

impl LineMode {
    /// Reads `COUNT_LOG_LINES`. An unknown value counts as unset: counting never refuses to
    /// run, and a request never fails over it.
    pub fn parse(var: Option<&str>) -> LineMode {
        match var.map(str::trim) {
            Some("true") => LineMode::Always,
            Some("false") => LineMode::Never,
            _ => LineMode::Auto,
        }
    }

    /// Whether to write the line, given whether a dataset is bound.
    pub fn writes_lines(self, dataset_bound: bool) -> bool {
        match self {
            LineMode::Auto => !dataset_bound,
            LineMode::Always => true,
            LineMode::Never => false,
        }
    }
}

/// One counted outcome. As a log line (`"event":"count"`) it carries every field, empty
/// strings and zeros included, so Logpush and Workers Logs see one fixed schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count<'a> {
    /// Where it happened.
    pub stage: Stage,
    /// What happened.
    pub outcome: Outcome,
    /// Why, or how.
    pub reason: Reason,
    /// The webhook topic, once the HMAC checked out (else empty).
    pub topic: &'a str,
    /// The shop, once the HMAC checked out (else empty).
    pub shop: &'a str,
    /// What the accepted payload was; `None` elsewhere.
    pub payload: Option<PayloadKind>,
    /// Intake: the body's bytes as Shopify sent them; queue: the envelope's bytes.
    pub bytes: usize,
    /// Queue: the message's delivery attempt; 0 at intake.
    pub attempts: u32,
    /// The webhook id (log line only: too many values for a data point), once verified.
    pub webhook_id: &'a str,
}

/// The fields of an Analytics Engine data point.
#[derive(Debug, PartialEq, Eq)]
pub struct DataPoint<'a> {
    /// `blob1`…`blob6`: outcome, reason, topic, shop, stage, payload.
    pub blobs: [&'a str; 6],
    /// `double1`…`double3`: 1 (the count), bytes, attempts.
    pub doubles: [u32; 3],
    /// `index1`: the shop, the sampling key; `None` when unknown or over [`MAX_INDEX_BYTES`].
    pub index: Option<&'a str>,
}

impl<'a> Count<'a> {
    /// A count at intake, before or without a verified delivery.
    pub fn intake(outcome: Outcome, reason: Reason, bytes: usize) -> Count<'a> {
        Count {
            stage: Stage::Intake,
            outcome,
            reason,
            topic: "",
            shop: "",
            payload: None,
            bytes,
            attempts: 0,
            webhook_id: "",
        }
    }

    /// The line for Workers Logs and Logpush: `{"level":"info","event":"count",…}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            level: &'static str,
            event: &'static str,
            stage: &'static str,
            outcome: &'static str,
            reason: &'static str,
            topic: &'a str,
            shop: &'a str,
            payload: &'static str,
            bytes: usize,
            attempts: u32,
            webhook_id: &'a str,
        }
        serde_json::to_string(&Line {
            level: "info",
            event: "count",
            stage: self.stage.as_str(),
            outcome: self.outcome.as_str(),
            reason: self.reason.as_str(),
            topic: self.topic,
            shop: self.shop,
            payload: self.payload.map_or("", PayloadKind::as_str),
            bytes: self.bytes,
            attempts: self.attempts,
            webhook_id: self.webhook_id,
        })
        .expect("count lines always serialise")
    }

    /// The Analytics Engine data point.
    pub fn data_point(&self) -> DataPoint<'a> {
        let shop = self.shop;
        DataPoint {
            blobs: [
                self.outcome.as_str(),
                self.reason.as_str(),
                self.topic,
                shop,
                self.stage.as_str(),
                self.payload.map_or("", PayloadKind::as_str),
            ],
            doubles: [
                1,
                u32::try_from(self.bytes).unwrap_or(u32::MAX),
                self.attempts,
            ],
            index: Some(shop).filter(|s| !s.is_empty() && s.len() <= MAX_INDEX_BYTES),
        }
    }
}

impl Stage {
    /// The code written in data points and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Intake => "intake",
            Stage::Queue => "queue",
            Stage::DeadLetterQueue => "dead_letter_queue",
        }
    }
}

impl Outcome {
    /// The code written in data points and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Delivered => "delivered",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Parked => "parked",
            Outcome::Retried => "retried",
        }
    }
}

impl Reason {
    /// The code written in data points and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Inline => "inline",
            Reason::R2 => "r2",
            Reason::BadHmac => "bad_hmac",
            Reason::TooLarge => "too_large",
            Reason::BadTopic => "bad_topic",
            Reason::BadShop => "bad_shop",
            Reason::BadHeader => "bad_header",
            Reason::ShopNotAllowed => "shop_not_allowed",
            Reason::UnreadableBody => "unreadable_body",
            Reason::EnqueueFailed => "enqueue_failed",
            Reason::Misconfigured => "misconfigured",
            Reason::New => "new",
            Reason::Duplicate => "duplicate",
            Reason::AlreadyDelivered => "already_delivered",
            Reason::Rejected => "rejected",
            Reason::Undelivered => "undelivered",
            Reason::Unreadable => "unreadable",
            Reason::OriginUnreachable => "origin_unreachable",
            Reason::OriginStatus => "origin_status",
            Reason::OriginBadAnswer => "origin_bad_answer",
            Reason::R2Error => "r2_error",
        }
    }
}

impl PayloadKind {
    /// The code written in data points and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Stripped => "stripped",
            PayloadKind::UnknownTopic => "unknown_topic",
            PayloadKind::Malformed => "malformed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wholesail_webhook::ShopDomain;

    fn accepted() -> Count<'static> {
        Count {
            stage: Stage::Intake,
            outcome: Outcome::Accepted,
            reason: Reason::R2,
            topic: "orders/create",
            shop: "acme.myshopify.com",
            payload: Some(PayloadKind::Stripped),
            bytes: 160_000,
            attempts: 0,
            webhook_id: "wh-1",
        }
    }

    #[test]
    fn a_count_is_one_fixed_schema_json_line() {
        assert_eq!(
            accepted().to_json(),
            r#"{"level":"info","event":"count","stage":"intake","outcome":"accepted","reason":"r2","topic":"orders/create","shop":"acme.myshopify.com","payload":"stripped","bytes":160000,"attempts":0,"webhook_id":"wh-1"}"#
        );
        assert_eq!(
            Count::intake(Outcome::Refused, Reason::BadHmac, 12).to_json(),
            r#"{"level":"info","event":"count","stage":"intake","outcome":"refused","reason":"bad_hmac","topic":"","shop":"","payload":"","bytes":12,"attempts":0,"webhook_id":""}"#
        );
    }

    #[test]
    fn the_data_point_has_the_documented_blobs_doubles_and_index() {
        assert_eq!(
            accepted().data_point(),
            DataPoint {
                blobs: [
                    "accepted",
                    "r2",
                    "orders/create",
                    "acme.myshopify.com",
                    "intake",
                    "stripped"
                ],
                doubles: [1, 160_000, 0],
                index: Some("acme.myshopify.com"),
            }
        );
        let unverified = Count::intake(Outcome::Refused, Reason::TooLarge, 0).data_point();
        assert_eq!(unverified.index, None);
        let long = "a".repeat(MAX_INDEX_BYTES + 1);
        let over = Count {
            shop: &long,
            ..accepted()
        };
        assert_eq!(over.data_point().index, None, "Analytics Engine drops it");
        assert_eq!(over.data_point().blobs[3], long);
    }

    #[test]
    fn lines_are_written_when_no_dataset_is_bound_unless_configured() {
        assert!(LineMode::parse(None).writes_lines(false));
        assert!(!LineMode::parse(None).writes_lines(true));
        assert!(!LineMode::parse(Some("yes")).writes_lines(true));
        assert!(LineMode::parse(Some(" true")).writes_lines(true));
        assert!(!LineMode::parse(Some("false")).writes_lines(false));
    }

    #[test]
    fn refusals_map_to_their_codes() {
        let cases = [
            (Refusal::BodyTooLarge { limit: 1 }, Reason::TooLarge),
            (
                Refusal::Unauthorized(VerifyError::SignatureMismatch),
                Reason::BadHmac,
            ),
            (
                Refusal::BadHeaders(VerifyError::MissingHeader("Shopify-Topic")),
                Reason::BadTopic,
            ),
            (
                Refusal::BadHeaders(VerifyError::MalformedHeader {
                    header: "Shopify-Shop-Domain",
                    reason: "x",
                }),
                Reason::BadShop,
            ),
            (
                Refusal::BadHeaders(VerifyError::MissingHeader("Shopify-Webhook-Id")),
                Reason::BadHeader,
            ),
            (
                Refusal::ShopNotAllowed(ShopDomain::parse("a.myshopify.com").unwrap()),
                Reason::ShopNotAllowed,
            ),
            (
                Refusal::UnreadableBody("cut".into()),
                Reason::UnreadableBody,
            ),
        ];
        for (refusal, reason) in cases {
            assert_eq!(Reason::of_refusal(&refusal), reason, "{refusal:?}");
        }
    }
}
