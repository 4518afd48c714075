//! The HTTP side of the worker: `POST /webhooks`, `GET /health` and the operators'
//! `POST /internal/parked` ([`crate::recovery`]).
//!
//! A delivery is answered 200 only after its envelope is on the queue (and, when oversized,
//! in R2 first): an event is never acknowledged to Shopify while the edge holds its only copy.
//! A failure to store or enqueue answers 503 so that Shopify retries.

use futures_util::StreamExt;
use serde_json::json;
use wasm_bindgen::JsValue;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    console_error, console_log, Date, Env, Method, QueueContentType, RawMessageBuilder, Request,
    Response, Result,
};

use crate::analytics;
use crate::bindings;
use crate::count::{Count, Outcome, PayloadKind, Reason, Stage};
use crate::intake::{accept, check_declared_length, Accepted, Refusal};
use crate::log::{Level, LogLine};
use crate::message::Placement;
use crate::webcrypto;

/// Routes one request.
pub async fn handle(req: Request, env: &Env) -> Result<Response> {
    match (req.method(), req.path().as_str()) {
        (Method::Get, "/health") => Response::from_json(&json!({"status": "ok"})),
        (Method::Post, "/webhooks") => webhook(req, env).await,
        (Method::Post, "/internal/parked") => crate::recovery::handle(req, env).await,
        (_, "/webhooks" | "/health") => answer(405, "method not allowed"),
        _ => answer(404, "not found"),
    }
}

async fn webhook(mut req: Request, env: &Env) -> Result<Response> {
    let cfg = match bindings::config(env) {
        Ok(cfg) => cfg,
        Err(e) => {
            let reason = e.to_string();
            log_line(&LogLine {
                level: Level::Error,
                event: "webhook",
                outcome: "misconfigured",
                status: Some(500),
                reason: Some(&reason),
                ..LogLine::default()
            });
            analytics::record(
                env,
                &Count::intake(Outcome::Failed, Reason::Misconfigured, 0),
            );
            return answer(500, "edge is misconfigured");
        }
    };
    let received_at_ms = Date::now().as_millis() as i64;
    let declared = req.headers().get("content-length")?;
    if let Err(r) = check_declared_length(declared.as_deref(), &cfg.intake) {
        // Counted with the size it declared: the body is never read.
        let declared_bytes = declared.as_deref().and_then(|v| v.trim().parse().ok());
        return refuse(env, &r, declared_bytes);
    }
    // The body's buffer goes to WebCrypto for the HMAC and the digest; its bytes into wasm for
    // stripping. A declared body that cannot be read whole (shorter than its Content-Length,
    // the connection cut) is the sender's fault: 400, and Shopify retries.
    let (buffer, body) = match declared {
        // HTTP framing holds a declared body to its length, already checked against the cap.
        Some(_) => {
            let buffer = match read_body(&req).await {
                Ok(buffer) => buffer,
                Err(e) => return refuse(env, &Refusal::UnreadableBody(e), None),
            };
            let body = Uint8Array::new(&buffer).to_vec();
            (buffer, body)
        }
        // Chunked: counted while it streams, refused as soon as it passes the cap.
        None => match read_capped(&mut req, cfg.intake.max_body_bytes).await? {
            Ok(body) => (Uint8Array::from(body.as_slice()).into(), body),
            Err(r) => return refuse(env, &r, None),
        },
    };
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let digest = webcrypto::sha256(buffer.clone(), &body).await;
    let mac = |secret: &[u8]| webcrypto::hmac(secret.to_vec(), buffer.clone(), &body);
    let accepted = match accept(&body, pairs, &cfg.intake, received_at_ms, digest, mac).await {
        Ok(a) => a,
        Err(r) => return refuse(env, &r, Some(body.len())),
    };
    match store_and_enqueue(env, &accepted).await {
        Ok(outcome) => {
            log_accepted(&accepted, Level::Info, outcome, 200, None);
            let reason = match accepted.placement {
                Placement::Inline(_) => Reason::Inline,
                Placement::Stored { .. } => Reason::R2,
            };
            count_accepted(env, &accepted, Outcome::Accepted, reason);
            Response::from_json(&json!({
                "status": "queued",
                "webhook_id": accepted.meta.webhook_id.as_str(),
            }))
        }
        Err(e) => {
            let reason = e.to_string();
            log_accepted(
                &accepted,
                Level::Error,
                "enqueue_failed",
                503,
                Some(&reason),
            );
            count_accepted(env, &accepted, Outcome::Failed, Reason::EnqueueFailed);
            answer(503, "could not store the webhook; retry later")
        }
    }
}

/// Reads a body of undeclared length chunk by chunk, stopping (and refusing) as soon as it
/// holds more than `limit` bytes, so a chunked body past the cap is never buffered whole.
async fn read_capped(
    req: &mut Request,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, Refusal>> {
    let mut body = Vec::new();
    if req.inner().body().is_none() {
        return Ok(Ok(body));
    }
    let mut chunks = req.stream()?;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Ok(Err(Refusal::BodyTooLarge { limit }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

/// The request body's `ArrayBuffer`, or why it could not be read.
async fn read_body(req: &Request) -> std::result::Result<JsValue, String> {
    let promise = req.inner().array_buffer().map_err(|e| format!("{e:?}"))?;
    JsFuture::from(promise).await.map_err(|e| {
        e.as_string()
            .or_else(|| {
                worker::js_sys::Reflect::get(&e, &"message".into())
                    .ok()
                    .and_then(|m| m.as_string())
            })
            .unwrap_or_else(|| "the body could not be read".to_owned())
    })
}

/// Puts an oversized envelope in R2, then the message on the queue. Returns the outcome name.
async fn store_and_enqueue(env: &Env, accepted: &Accepted) -> Result<&'static str> {
    let outcome = match &accepted.placement {
        Placement::Inline(_) => "queued",
        Placement::Stored {
            pointer, envelope, ..
        } => {
            env.bucket(bindings::BUCKET)?
                .put(&pointer.key, envelope.clone())
                .execute()
                .await?;
            "stored_r2"
        }
    };
    let message = RawMessageBuilder::new(JsValue::from_str(accepted.placement.message()))
        .build_with_content_type(QueueContentType::Text);
    env.queue(bindings::QUEUE)?.send_raw(message).await?;
    Ok(outcome)
}

fn refuse(env: &Env, r: &Refusal, bytes_in: Option<usize>) -> Result<Response> {
    let reason = r.reason();
    let outcome = match r {
        Refusal::BodyTooLarge { .. } => "too_large",
        Refusal::UnreadableBody(_) => "unreadable_body",
        Refusal::Unauthorized(_) => "unauthorized",
        Refusal::BadHeaders(_) => "bad_headers",
        Refusal::ShopNotAllowed(_) => "shop_not_allowed",
    };
    log_line(&LogLine {
        level: Level::Warn,
        event: "webhook",
        outcome,
        status: Some(r.status()),
        bytes_in,
        reason: Some(&reason),
        ..LogLine::default()
    });
    let mut count = Count::intake(
        Outcome::Refused,
        Reason::of_refusal(r),
        bytes_in.unwrap_or(0),
    );
    // The only refusal after the HMAC checked out whose shop is known.
    if let Refusal::ShopNotAllowed(shop) = r {
        count.shop = shop.as_str();
    }
    analytics::record(env, &count);
    answer(r.status(), &reason)
}

fn count_accepted(env: &Env, a: &Accepted, outcome: Outcome, reason: Reason) {
    analytics::record(
        env,
        &Count {
            stage: Stage::Intake,
            outcome,
            reason,
            topic: a.meta.topic.as_str(),
            shop: a.meta.shop.as_str(),
            payload: Some(PayloadKind::of(a.stripping)),
            bytes: a.bytes_in,
            attempts: 0,
            webhook_id: a.meta.webhook_id.as_str(),
        },
    );
}

fn log_accepted(a: &Accepted, level: Level, outcome: &str, status: u16, reason: Option<&str>) {
    log_line(&LogLine {
        level,
        event: "webhook",
        outcome,
        status: Some(status),
        topic: Some(a.meta.topic.as_str()),
        shop: Some(a.meta.shop.as_str()),
        webhook_id: Some(a.meta.webhook_id.as_str()),
        bytes_in: Some(a.bytes_in),
        bytes_out: Some(a.bytes_out),
        reason,
        ..LogLine::default()
    });
}

/// Writes a log line to the console (errors to `console.error`).
pub fn log_line(line: &LogLine) {
    if line.level == Level::Error {
        console_error!("{}", line.to_json());
    } else {
        console_log!("{}", line.to_json());
    }
}

fn answer(status: u16, error: &str) -> Result<Response> {
    Ok(Response::from_json(&json!({ "error": error }))?.with_status(status))
}
