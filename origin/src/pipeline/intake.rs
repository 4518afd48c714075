//! Intake: the HTTP routes that put events into the inbox.
//!
//! - `POST /internal/webhooks`: an [`EnvelopeBatch`] (or one [`Envelope`]) from the edge,
//!   signed with `X-Wholesail-Signature`. Each envelope is parsed on its own, so one bad item
//!   is rejected with its reason while the others are stored; all rows go in one statement
//!   (one transaction), after which the workers are woken ([`Wake`], coalesced).
//! - `POST /internal/dead-letters`: the same body from the edge's dead-letter queue; rows are
//!   stored as dead letters for an operator to inspect and replay.
//! - `POST /webhooks/shopify`: direct mode without the edge: Shopify's HMAC, stripping here.
//!
//! [`routes`] puts them behind their limits: the internal routes check the signature header
//! (form, known key id, timestamp in the window) before a byte of the body is read; each route
//! has its own body cap (refused with 413 from `Content-Length` alone when it says too much);
//! a request not answered within `http.request_timeout_ms`, upload included, gets 408.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::value::RawValue;
use sqlx::PgPool;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use wholesail_webhook::{
    parse_sha256_hex, BatchResponse, Envelope, EnvelopeBatch, ItemResult, ItemStatus, Keyring,
    Payload, ShopifySecrets, SignatureVersion, VerifiedWebhook, SIGNATURE_HEADER,
};

use crate::config::HttpConfig;
use crate::http_error::ApiError;
use crate::pipeline::inbox::{self, Body, NewEvent, Source, Stored};
use crate::pipeline::wake::Wake;
use crate::state::AppState;

/// Why an intake request was refused as a whole.
#[derive(Debug, Error)]
pub enum IntakeError {
    /// Signature missing or wrong: 401 with the reason.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request cannot be read (not JSON, bad Shopify headers): 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Direct mode without a configured Shopify secret: 503.
    #[error("direct mode is not configured (shopify.secret)")]
    NotConfigured,
    /// The inbox could not be written; the sender retries: 503.
    #[error("inbox unavailable")]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for IntakeError {
    fn into_response(self) -> Response {
        let status = match &self {
            IntakeError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IntakeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IntakeError::NotConfigured | IntakeError::Database(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        match &self {
            IntakeError::Database(e) => tracing::error!(error = %e, "inbox write failed"),
            other => tracing::warn!(error = %other, "intake request refused"),
        }
        let code = match &self {
            IntakeError::Unauthorized(_) => "unauthorized",
            IntakeError::BadRequest(_) => "bad_request",
            IntakeError::NotConfigured => "not_configured",
            IntakeError::Database(_) => "database_unavailable",
        };
        // Database details stay in the log; the client learns only the class of failure.
        ApiError::new(status, code, self.to_string()).into_response()
    }
}

/// What the intake routes need.
#[derive(Clone)]
pub struct Intake {
    /// The database.
    pub pool: PgPool,
    /// Keys for envelope signatures.
    pub keyring: Arc<Keyring>,
    /// Shopify secrets for direct mode, when configured.
    pub shopify: Option<Arc<ShopifySecrets>>,
    /// Wakes the workers after a due row was stored.
    pub wake: Wake,
}

impl Intake {
    /// The intake of `state`, with its wake-up task started ([`Wake::start`]).
    pub fn start(state: &AppState) -> Self {
        Intake {
            pool: state.pool.clone(),
            keyring: state.keyring.clone(),
            shopify: state.shopify.clone(),
            wake: Wake::start(state.pool.clone()),
        }
    }

    /// Inserts `events` ([`inbox::insert`]) and wakes the workers if one is due.
    async fn store(&self, source: Source, events: &[NewEvent]) -> Result<Vec<Stored>, sqlx::Error> {
        let stored = inbox::insert(&self.pool, source, events).await?;
        if stored.contains(&Stored::Pending) {
            self.wake.wake();
        }
        Ok(stored)
    }
}

/// The intake routes behind their limits (see the module documentation): the internal routes
/// capped at `max_body_bytes`, direct mode at `http.direct_max_body_bytes`.
pub fn routes<S: Clone + Send + Sync + 'static>(
    state: Intake,
    max_body_bytes: usize,
    http: &HttpConfig,
) -> Router<S> {
    let internal = Router::new()
        .route("/internal/webhooks", post(internal_webhooks))
        .route("/internal/dead-letters", post(internal_dead_letters))
        .route_layer(RequestBodyLimitLayer::new(max_body_bytes))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            signature_precheck,
        ));
    let direct = Router::new()
        .route("/webhooks/shopify", post(shopify_direct))
        .route_layer(RequestBodyLimitLayer::new(http.direct_max_body_bytes));
    internal
        .merge(direct)
        .route_layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            http.request_timeout(),
        ))
        .with_state(state)
}

/// Refuses with 401, before the body is read, a request whose signature header is missing,
/// malformed, names an unknown key or carries a timestamp outside the window.
async fn signature_precheck(State(app): State<Intake>, req: Request, next: Next) -> Response {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match signature_header(req.headers())
        .and_then(|h| app.keyring.precheck(h, now).map_err(unauthorized))
    {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn signature_header(headers: &HeaderMap) -> Result<&str, IntakeError> {
    headers
        .get(SIGNATURE_HEADER)
        .ok_or_else(|| IntakeError::Unauthorized(format!("missing {SIGNATURE_HEADER}")))?
        .to_str()
        .map_err(|_| IntakeError::Unauthorized(format!("{SIGNATURE_HEADER} is not ASCII")))
}

fn unauthorized(e: wholesail_webhook::SignatureError) -> IntakeError {
    IntakeError::Unauthorized(e.to_string())
}

/// `POST /internal/webhooks`.
pub async fn internal_webhooks(
    State(app): State<Intake>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchResponse>, IntakeError> {
    envelopes(&app, uri.path(), &headers, &body, Source::Edge).await
}

/// `POST /internal/dead-letters`.
pub async fn internal_dead_letters(
    State(app): State<Intake>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchResponse>, IntakeError> {
    envelopes(&app, uri.path(), &headers, &body, Source::EdgeDeadLetter).await
}

async fn envelopes(
    app: &Intake,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    source: Source,
) -> Result<Json<BatchResponse>, IntakeError> {
    let signature = signature_header(headers)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (_, version) = app
        .keyring
        .verify_request(signature, path, body, now)
        .map_err(unauthorized)?;
    let version = match version {
        SignatureVersion::V1 => "v1",
        SignatureVersion::V2 => "v2",
    };
    metrics::counter!("wholesail_intake_signatures_total", "version" => version).increment(1);

    let items = split_items(body)?;
    let mut results: Vec<ItemResult> = Vec::with_capacity(items.len());
    let mut events = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for raw in &items {
        match parse_item(raw.get()) {
            Ok(event) => {
                results.push(ItemResult {
                    webhook_id: Some(event.webhook_id.clone()),
                    status: ItemStatus::Accepted,
                    reason: None,
                });
                slots.push(results.len() - 1);
                events.push(event);
            }
            Err((webhook_id, reason)) => {
                tracing::warn!(webhook_id = webhook_id.as_deref(), %reason, "envelope rejected");
                results.push(ItemResult {
                    webhook_id,
                    status: ItemStatus::Rejected,
                    reason: Some(reason),
                });
            }
        }
    }
    let stored = app.store(source, &events).await?;
    for ((slot, event), stored) in slots.iter().zip(&events).zip(&stored) {
        if *stored == Stored::Duplicate {
            results[*slot].status = ItemStatus::Duplicate;
        }
        log_stored(source, event, *stored);
    }
    let rejected = results
        .iter()
        .filter(|r| r.status == ItemStatus::Rejected)
        .count();
    metrics::counter!("wholesail_intake_events_total", "source" => source.as_str(), "result" => "rejected")
        .increment(rejected as u64);
    Ok(Json(BatchResponse { results }))
}

fn log_stored(source: Source, event: &NewEvent, stored: Stored) {
    let result = match stored {
        Stored::Pending => "accepted",
        Stored::Quarantined => "quarantined",
        Stored::Dead => "dead_letter",
        Stored::Duplicate => "duplicate",
    };
    metrics::counter!("wholesail_intake_events_total", "source" => source.as_str(), "result" => result)
        .increment(1);
    tracing::info!(
        webhook_id = %event.webhook_id,
        shop = %event.shop,
        topic = %event.topic,
        result,
        "event received"
    );
}

/// The envelopes of a body: `{"envelopes": [...]}` or one envelope object.
fn split_items(body: &[u8]) -> Result<Vec<Box<RawValue>>, IntakeError> {
    let whole: Box<RawValue> = serde_json::from_slice(body)
        .map_err(|e| IntakeError::BadRequest(format!("body is not JSON: {e}")))?;
    if let Ok(batch) = serde_json::from_str::<EnvelopeBatch>(whole.get()) {
        return Ok(batch.envelopes);
    }
    Ok(vec![whole])
}

/// Parses one envelope into a row, or says why not (with the webhook id if it could be read).
fn parse_item(raw: &str) -> Result<NewEvent, (Option<String>, String)> {
    let envelope: Envelope = serde_json::from_str(raw).map_err(|e| {
        let id = serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| v.pointer("/meta/webhook_id")?.as_str().map(str::to_owned));
        (id, format!("invalid envelope: {e}"))
    })?;
    let webhook_id = envelope.meta.webhook_id.to_string();
    let reject = |reason: String| (Some(webhook_id.clone()), reason);
    let received_at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(envelope.received_at_ms) * 1_000_000)
            .map_err(|_| reject("received_at_ms is out of range".into()))?;
    let original_bytes = i64::try_from(envelope.original_bytes)
        .map_err(|_| reject("original_bytes is out of range".into()))?;
    let topic = envelope.meta.topic.as_str();
    let (stripping, body) = match envelope.payload {
        Payload::Json { stripping, body } => (
            serde_json::to_value(stripping)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into()),
            json_body(topic, body.get()),
        ),
        Payload::Malformed {
            reason,
            body_base64,
        } => {
            let bytes = STANDARD
                .decode(body_base64)
                .map_err(|_| reject("malformed payload's body_base64 is not base64".into()))?;
            ("malformed".into(), Body::Malformed { bytes, reason })
        }
    };
    let body_sha256 = match envelope.body_sha256.as_deref() {
        Some(hex) => parse_sha256_hex(hex)
            .ok_or_else(|| reject("body_sha256 is not a hex SHA-256".into()))?,
        // An edge before body_sha256: the digest of what it sent (see body_guard).
        None => match &body {
            Body::Json(json) => wholesail_webhook::body_sha256(json.as_bytes()),
            Body::Malformed { bytes, .. } => wholesail_webhook::body_sha256(bytes),
        },
    };
    let event = NewEvent {
        webhook_id: webhook_id.clone(),
        event_id: envelope.meta.event_id,
        shop: envelope.meta.shop,
        topic: envelope.meta.topic.to_string(),
        api_version: envelope.meta.api_version,
        triggered_at: envelope
            .meta
            .triggered_at
            .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()),
        received_at,
        stripping,
        original_bytes,
        body_sha256,
        body,
    };
    // PostgreSQL text cannot hold NUL; one such field would fail the whole batch's statement.
    let texts = [
        event.api_version.as_str(),
        event.event_id.as_deref().unwrap_or(""),
    ];
    if texts.iter().any(|t| t.contains('\0')) {
        return Err(reject("a header field contains a NUL character".into()));
    }
    Ok(event)
}

/// A JSON payload as a row body: quarantined when PostgreSQL's `jsonb` cannot store it, or
/// when a delete topic's payload is not a delete payload (`wholesail_webhook::delete_shape`;
/// the edge checks the raw body already, this covers edges that predate the check).
fn json_body(topic: &str, json: &str) -> Body {
    if json.contains("\\u0000") {
        return Body::Malformed {
            bytes: json.as_bytes().to_vec(),
            reason: "payload contains \\u0000, which PostgreSQL jsonb cannot store".into(),
        };
    }
    if let Err(e) = wholesail_webhook::delete_shape::check(topic, json) {
        return Body::Malformed {
            bytes: json.as_bytes().to_vec(),
            reason: e.to_string(),
        };
    }
    Body::Json(json.to_owned())
}

/// `POST /webhooks/shopify`: direct mode. 401 on a bad HMAC (Shopify's compliance topics
/// require it), 400 on other header errors, 200 once the event is durable (or a duplicate).
pub async fn shopify_direct(
    State(app): State<Intake>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, IntakeError> {
    let secrets = app.shopify.as_ref().ok_or(IntakeError::NotConfigured)?;
    let pairs = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let verified = VerifiedWebhook::verify(&body, pairs, secrets).map_err(|e| {
        if e.is_unauthorized() {
            IntakeError::Unauthorized(e.to_string())
        } else {
            IntakeError::BadRequest(e.to_string())
        }
    })?;
    let meta = verified.into_meta();
    let original_bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
    let body_sha256 = wholesail_webhook::body_sha256(&body);
    let (stripping, body) =
        match Payload::from_strip(wholesail_webhook::strip(meta.topic.as_str(), &body), &body) {
            Payload::Json { stripping, body } => (
                serde_json::to_value(stripping)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".into()),
                json_body(meta.topic.as_str(), body.get()),
            ),
            Payload::Malformed { reason, .. } => (
                "malformed".to_owned(),
                Body::Malformed {
                    bytes: body.to_vec(),
                    reason,
                },
            ),
        };
    let event = NewEvent {
        webhook_id: meta.webhook_id.to_string(),
        event_id: meta.event_id,
        shop: meta.shop,
        topic: meta.topic.to_string(),
        api_version: meta.api_version,
        triggered_at: meta
            .triggered_at
            .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()),
        received_at: OffsetDateTime::now_utc(),
        stripping,
        original_bytes,
        body_sha256,
        body,
    };
    let stored = app
        .store(Source::Direct, std::slice::from_ref(&event))
        .await?;
    log_stored(Source::Direct, &event, stored[0]);
    Ok(StatusCode::OK)
}
