//! The queue consumers: the main queue forwards to origin's batch intake, the dead-letter
//! queue to origin's dead-letter intake. One export serves both; the batch's queue name says
//! which.
//!
//! Each message is acknowledged only once origin confirmed it (`accepted` or `duplicate`) or
//! once it is parked in R2 with the reason (`rejected` by origin, unreadable, or — on the
//! dead-letter queue — origin unreachable for every delivery allowed). Everything else is
//! retried with an increasing delay; after the main queue's `max_retries` Cloudflare moves the
//! message to the dead-letter queue.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use serde_json::value::RawValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;
use wholesail_webhook::SIGNATURE_HEADER;
use worker::{
    AbortController, Bucket, Date, Delay, Env, Fetch, Headers, Method, Request, RequestInit,
};

use crate::analytics;
use crate::batch::{QueueBatch, QueueMessage as Message};
use crate::bindings;
use crate::config::{EdgeConfig, DEFAULT_DEAD_LETTER_QUEUE};
use crate::count::{Count, Outcome, Reason, Stage};
use crate::forward::{
    batch_body, envelope_head, groups, verdicts, BatchFailure, EnvelopeHead, Intake, ParkedRecord,
    Parking, Verdict,
};
use crate::ingress::log_line;
use crate::log::{Level, LogLine};
use crate::message::{self, QueueMessage};

/// The consumer entry point the runtime calls with each batch (exported as `queue`).
#[wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
pub async fn queue(batch: QueueBatch, env: Env, _ctx: JsValue) -> Result<JsValue, JsValue> {
    std::panic::AssertUnwindSafe(consume(batch, env)).await;
    Ok(JsValue::UNDEFINED)
}

/// A message whose envelope is in hand.
struct Pending {
    message: Message,
    envelope: Box<RawValue>,
    head: EnvelopeHead,
    /// The R2 key of an oversized envelope, deleted once origin confirmed it.
    stored_key: Option<String>,
}

impl Pending {
    fn subject(&self) -> Subject<'_> {
        Subject {
            webhook_id: &self.head.webhook_id,
            topic: &self.head.topic,
            shop: &self.head.shop,
            bytes: self.envelope.get().len(),
        }
    }
}

/// What the logs and counts say about a message: as much as could be read of it.
struct Subject<'a> {
    webhook_id: &'a str,
    topic: &'a str,
    shop: &'a str,
    /// The envelope's size.
    bytes: usize,
}

impl<'a> Subject<'a> {
    /// A message known only by its webhook id (a pointer not yet read, an unreadable message).
    fn id(webhook_id: &'a str, bytes: usize) -> Self {
        Subject {
            webhook_id,
            topic: "",
            shop: "",
            bytes,
        }
    }
}

struct Consumer {
    env: Env,
    cfg: Rc<EdgeConfig>,
    bucket: Bucket,
    queue: String,
    intake: Intake,
}

async fn consume(batch: QueueBatch, env: Env) {
    let messages = batch.message_list();
    let queue = batch.queue();
    let setup = bindings::config(&env)
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            let bucket = env.bucket(bindings::BUCKET).map_err(|e| e.to_string())?;
            Ok((cfg, bucket))
        });
    let (cfg, bucket) = match setup {
        Ok(s) => s,
        Err(reason) => {
            log_line(&LogLine {
                level: Level::Error,
                event: "forward",
                outcome: "misconfigured",
                count: Some(messages.len()),
                reason: Some(&reason),
                ..LogLine::default()
            });
            // Without configuration nothing can be decided: deliver again later.
            let dead_letter_queue = env
                .var("DEAD_LETTER_QUEUE")
                .map(|v| v.to_string())
                .unwrap_or_else(|_| DEFAULT_DEAD_LETTER_QUEUE.to_owned());
            let stage = if queue == dead_letter_queue {
                Stage::DeadLetterQueue
            } else {
                Stage::Queue
            };
            for m in &messages {
                m.retry_after(60);
                analytics::record(
                    &env,
                    &Count {
                        stage,
                        attempts: m.attempts(),
                        ..Count::intake(Outcome::Retried, Reason::Misconfigured, 0)
                    },
                );
            }
            return;
        }
    };
    let intake = if queue == cfg.forward.dead_letter_queue {
        Intake::DeadLetters
    } else {
        Intake::Webhooks
    };
    let consumer = Consumer {
        env,
        cfg,
        bucket,
        queue,
        intake,
    };

    let mut pending = Vec::with_capacity(messages.len());
    for m in messages {
        if let Some(p) = consumer.resolve(m).await {
            pending.push(p);
        }
    }
    let sizes: Vec<usize> = pending.iter().map(|p| p.envelope.get().len()).collect();
    let ranges = groups(&sizes);
    let mut rest = pending.into_iter();
    for range in ranges {
        let group: Vec<Pending> = rest.by_ref().take(range.len()).collect();
        consumer.forward(group).await;
    }
}

impl Consumer {
    /// Reads a message's envelope (from R2 for a pointer). Messages that cannot be read are
    /// parked or retried here and yield `None`.
    async fn resolve(&self, m: Message) -> Option<Pending> {
        let text = m.body().as_string().unwrap_or_default();
        match message::parse(&text) {
            Ok(QueueMessage::Inline(envelope)) => {
                let head = envelope_head(&envelope).unwrap_or_default();
                Some(Pending {
                    message: m,
                    envelope,
                    head,
                    stored_key: None,
                })
            }
            Ok(QueueMessage::Stored(pointer)) => {
                let subject = Subject::id(pointer.webhook_id.as_str(), pointer.bytes);
                let object = match self.bucket.get(&pointer.key).execute().await {
                    Ok(o) => o,
                    Err(e) => {
                        self.retry(&m, &subject, &e.to_string(), Reason::R2Error);
                        return None;
                    }
                };
                let Some(object) = object else {
                    // Deleted only after origin confirmed it: this is a redelivery of a message
                    // whose acknowledgement was lost.
                    self.log(
                        Level::Warn,
                        "already_delivered",
                        &m,
                        pointer.webhook_id.as_str(),
                        None,
                    );
                    self.count(&m, &subject, self.delivered(), Reason::AlreadyDelivered);
                    m.ack();
                    return None;
                };
                let text = match object.body() {
                    Some(body) => body.text().await,
                    None => Ok(String::new()),
                };
                match text.map(RawValue::from_string) {
                    Ok(Ok(envelope)) => {
                        let head = envelope_head(&envelope).unwrap_or_else(|| EnvelopeHead {
                            webhook_id: pointer.webhook_id.to_string(),
                            ..EnvelopeHead::default()
                        });
                        Some(Pending {
                            message: m,
                            envelope,
                            head,
                            stored_key: Some(pointer.key),
                        })
                    }
                    Ok(Err(e)) => {
                        let reason = format!("stored envelope is not JSON: {e}");
                        self.park_raw(&m, &subject, &reason, &pointer.key).await;
                        None
                    }
                    Err(e) => {
                        self.retry(&m, &subject, &e.to_string(), Reason::R2Error);
                        None
                    }
                }
            }
            Err(e) => {
                let reason = format!("unreadable queue message: {e}");
                self.park_raw(&m, &Subject::id("unknown", text.len()), &reason, &text)
                    .await;
                None
            }
        }
    }

    /// Sends one group to origin and settles each of its messages.
    async fn forward(&self, group: Vec<Pending>) {
        let body = batch_body(group.iter().map(|p| p.envelope.as_ref()));
        let ids: Vec<&str> = group.iter().map(|p| p.head.webhook_id.as_str()).collect();
        let outcome = match self.post(&body).await {
            Ok((status, text)) => verdicts(status, &text, &ids),
            Err(failure) => Err(failure),
        };
        match outcome {
            Ok(vs) => {
                log_line(&LogLine {
                    level: Level::Info,
                    event: "forward",
                    outcome: "answered",
                    status: Some(200),
                    count: Some(group.len()),
                    bytes_out: Some(body.len()),
                    reason: Some(self.intake.path()),
                    ..LogLine::default()
                });
                for (p, v) in group.into_iter().zip(vs) {
                    self.settle(p, v).await;
                }
            }
            Err(failure) => {
                let code = Reason::of_failure(&failure);
                let reason = format!("{}: {failure}", self.intake.path());
                let status = match failure {
                    BatchFailure::Status(s) => Some(s),
                    _ => None,
                };
                log_line(&LogLine {
                    level: Level::Warn,
                    event: "forward",
                    outcome: "failed",
                    status,
                    count: Some(group.len()),
                    bytes_out: Some(body.len()),
                    reason: Some(&reason),
                    ..LogLine::default()
                });
                for p in group {
                    self.undelivered(p, &reason, code).await;
                }
            }
        }
    }

    /// Applies origin's verdict to one message.
    async fn settle(&self, p: Pending, verdict: Verdict) {
        match verdict {
            Verdict::Ack { duplicate } => {
                let (outcome, code) = if duplicate {
                    ("duplicate", Reason::Duplicate)
                } else {
                    ("accepted", Reason::New)
                };
                self.log(Level::Info, outcome, &p.message, &p.head.webhook_id, None);
                self.count(&p.message, &p.subject(), self.delivered(), code);
                self.finish(p).await;
            }
            Verdict::Reject { reason } => {
                self.park(p, Parking::Rejected, &reason).await;
            }
        }
    }

    /// A message origin did not confirm: retry it, or on the dead-letter queue park it once it
    /// has had every delivery allowed.
    async fn undelivered(&self, p: Pending, reason: &str, code: Reason) {
        let last = self.intake == Intake::DeadLetters
            && p.message.attempts() >= self.cfg.forward.park_after_attempts;
        if last {
            self.park(p, Parking::Undelivered, reason).await;
        } else {
            self.retry(&p.message, &p.subject(), reason, code);
        }
    }

    /// Stores the envelope in R2 under the parking prefix with the reason, then acknowledges;
    /// if storing fails, retries instead.
    async fn park(&self, p: Pending, parking: Parking, reason: &str) {
        let key = parking.key(&p.head.webhook_id, &p.message.id());
        let record = ParkedRecord {
            reason,
            queue: &self.queue,
            attempts: p.message.attempts(),
            envelope: Some(&p.envelope),
            message: None,
        }
        .to_json();
        match self.bucket.put(&key, record).execute().await {
            Ok(_) => {
                self.log(
                    Level::Error,
                    parking.prefix().trim_end_matches('/'),
                    &p.message,
                    &p.head.webhook_id,
                    Some(reason),
                );
                let code = Reason::of_parking(parking);
                self.count(&p.message, &p.subject(), Outcome::Parked, code);
                self.finish(p).await;
            }
            Err(e) => self.retry(
                &p.message,
                &p.subject(),
                &format!("parking failed: {e}"),
                Reason::R2Error,
            ),
        }
    }

    /// Parks a message whose envelope could not be read, keeping its text.
    async fn park_raw(&self, m: &Message, subject: &Subject<'_>, reason: &str, text: &str) {
        let key = Parking::Unreadable.key(subject.webhook_id, &m.id());
        let record = ParkedRecord {
            reason,
            queue: &self.queue,
            attempts: m.attempts(),
            envelope: None,
            message: Some(text),
        }
        .to_json();
        match self.bucket.put(&key, record).execute().await {
            Ok(_) => {
                let webhook_id = subject.webhook_id;
                self.log(Level::Error, "unreadable", m, webhook_id, Some(reason));
                self.count(m, subject, Outcome::Parked, Reason::Unreadable);
                m.ack();
            }
            Err(e) => self.retry(m, subject, &format!("parking failed: {e}"), Reason::R2Error),
        }
    }

    /// Acknowledges a settled message and deletes its R2 copy, if it had one.
    async fn finish(&self, p: Pending) {
        if let Some(key) = &p.stored_key {
            if let Err(e) = self.bucket.delete(key).await {
                let reason = format!("stored envelope {key} not deleted: {e}");
                self.log(
                    Level::Warn,
                    "cleanup_failed",
                    &p.message,
                    &p.head.webhook_id,
                    Some(&reason),
                );
            }
        }
        p.message.ack();
    }

    fn retry(&self, m: &Message, subject: &Subject<'_>, reason: &str, code: Reason) {
        let attempts = m.attempts();
        let delay = self
            .cfg
            .forward
            .retry
            .delay_secs(attempts, worker::js_sys::Math::random());
        log_line(&LogLine {
            level: Level::Warn,
            event: "forward",
            outcome: "retry",
            webhook_id: Some(subject.webhook_id),
            attempts: Some(attempts),
            retry_in_secs: Some(delay),
            reason: Some(reason),
            ..LogLine::default()
        });
        self.count(m, subject, Outcome::Retried, code);
        m.retry_after(delay);
    }

    /// What an acknowledged message counts as on this consumer's queue.
    fn delivered(&self) -> Outcome {
        match self.intake {
            Intake::Webhooks => Outcome::Delivered,
            Intake::DeadLetters => Outcome::DeadLettered,
        }
    }

    fn count(&self, m: &Message, subject: &Subject<'_>, outcome: Outcome, reason: Reason) {
        let stage = match self.intake {
            Intake::Webhooks => Stage::Queue,
            Intake::DeadLetters => Stage::DeadLetterQueue,
        };
        analytics::record(
            &self.env,
            &Count {
                stage,
                outcome,
                reason,
                topic: subject.topic,
                shop: subject.shop,
                payload: None,
                bytes: subject.bytes,
                attempts: m.attempts(),
                webhook_id: subject.webhook_id,
            },
        );
    }

    fn log(
        &self,
        level: Level,
        outcome: &str,
        m: &Message,
        webhook_id: &str,
        reason: Option<&str>,
    ) {
        log_line(&LogLine {
            level,
            event: "forward",
            outcome,
            webhook_id: Some(webhook_id),
            attempts: Some(m.attempts()),
            reason,
            ..LogLine::default()
        });
    }

    /// Posts a signed batch to origin within the timeout; returns the status and body text.
    async fn post(&self, body: &str) -> Result<(u16, String), BatchFailure> {
        let unreachable = |e: worker::Error| BatchFailure::Unreachable(e.to_string());
        let url = format!("{}{}", self.cfg.forward.origin_url, self.intake.path());
        let now_secs = (Date::now().as_millis() / 1000) as i64;
        let headers = Headers::new();
        headers
            .set("content-type", "application/json")
            .map_err(unreachable)?;
        headers
            .set(
                SIGNATURE_HEADER,
                &self.cfg.forward.signing_key.sign_request(
                    self.intake.path(),
                    body.as_bytes(),
                    now_secs,
                ),
            )
            .map_err(unreachable)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(JsValue::from_str(body)));
        let request = Request::new_with_init(&url, &init).map_err(unreachable)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = Box::pin(async move {
            let mut resp = Fetch::Request(request).send_with_signal(&signal).await?;
            let text = resp.text().await?;
            Ok::<_, worker::Error>((resp.status_code(), text))
        });
        let timeout = Delay::from(Duration::from_millis(self.cfg.forward.origin_timeout_ms));
        match select(exchange, timeout).await {
            Either::Left((result, _)) => result.map_err(unreachable),
            Either::Right(_) => {
                controller.abort();
                Err(BatchFailure::Unreachable(format!(
                    "no answer within {} ms",
                    self.cfg.forward.origin_timeout_ms
                )))
            }
        }
    }
}
