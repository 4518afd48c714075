//! The HTTP API, for tokens with the `integrator` scope ([`crate::auth`]; 401 without a valid
//! token, 403 without the scope). A job belongs to the token that submitted it: another token
//! gets 404 for it, and 409 for its quote id.
//!
//! - `POST /v1/draft-orders` with a [`QuoteRequest`] → `202 Accepted` and the job's status
//!   (`"status": "processing"`) for a new quote, `200` and the existing job for a quote id
//!   submitted before with the same content, `409` with different content, `422` with every
//!   structural error (`{"error", "errors": [{code, line, message}]}`), `400` for bad JSON.
//!   `Location: /v1/draft-orders/{job}`.
//! - `GET /v1/draft-orders/{job}` → the [`JobStatus`] (404 when absent).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use sqlx::PgPool;

use super::jobs::{self, JobStatus, SubmitError};
use super::quote::{QuoteRequest, QuoteViolation};
use super::CallbackPolicy;
use crate::auth::{audit, Caller};
use crate::http_error::ApiError;
use crate::shops::Shops;

/// Largest quote body accepted (50,000 lines fit comfortably).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What the routes need.
#[derive(Clone)]
pub struct DraftOrdersApi {
    /// The database.
    pub pool: PgPool,
    /// The configured shops (a quote for another shop is refused).
    pub shops: Arc<Shops>,
    /// Which callback URLs quotes may name.
    pub callbacks: CallbackPolicy,
}

/// The routes, behind [`crate::auth::guard`].
pub fn router<S: Clone + Send + Sync + 'static>(api: DraftOrdersApi) -> Router<S> {
    Router::new()
        .route("/v1/draft-orders", post(create))
        .route("/v1/draft-orders/{job}", get(show))
        .route_layer(axum::middleware::from_fn_with_state(
            api.pool.clone(),
            crate::auth::guard,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    ApiError::status_only(status, message.to_string()).into_response()
}

fn database(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "draft-order request failed");
    error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
}

/// Why a submission was refused before it became a job.
#[derive(Debug)]
pub enum Refused {
    /// Structural errors, all of them.
    Invalid(Vec<QuoteViolation>),
    /// Same quote id, different content.
    Conflict(String),
    /// The database failed.
    Database(sqlx::Error),
}

/// Checks `quote` and stores it as a job of `token` (`None`: the CLI), or finds its existing
/// job: the job's status and whether it was created now. Shared by the HTTP API and the CLI.
pub async fn submit(
    pool: &PgPool,
    shops: &Shops,
    callbacks: &CallbackPolicy,
    quote: &QuoteRequest,
    token: Option<i64>,
) -> Result<(JobStatus, bool), Refused> {
    let mut errors = quote.check(callbacks);
    if shops.client(&quote.shop).is_err() {
        errors.insert(
            0,
            QuoteViolation {
                code: "INVALID_FIELD".into(),
                line: None,
                message: format!("shop {} is not configured", quote.shop),
            },
        );
    }
    if !errors.is_empty() {
        return Err(Refused::Invalid(errors));
    }
    let (id, created) = match jobs::submit(pool, quote, token).await {
        Ok(r) => r,
        Err(SubmitError::Conflict { job, quote_id }) => {
            return Err(Refused::Conflict(format!(
                "quote {quote_id} was already submitted with different content or by another token (job {job})"
            )))
        }
        Err(SubmitError::Database(e)) => return Err(Refused::Database(e)),
    };
    let status = jobs::status(pool, &id)
        .await
        .map_err(Refused::Database)?
        .ok_or(Refused::Database(sqlx::Error::RowNotFound))?;
    if created {
        metrics::counter!("wholesail_draft_order_quotes_total").increment(1);
        tracing::info!(job = %id, shop = %quote.shop, quote_id = %quote.quote_id, lines = quote.lines.len(), "quote accepted");
    }
    Ok((status, created))
}

async fn create(
    State(api): State<DraftOrdersApi>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let quote: QuoteRequest = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid quote JSON: {e}")),
    };
    // Callbacks are signed with the submitting token's callback secret.
    let callbacks = CallbackPolicy {
        signed: caller.has_callback_secret,
        ..api.callbacks.clone()
    };
    match submit(
        &api.pool,
        &api.shops,
        &callbacks,
        &quote,
        Some(caller.token_id),
    )
    .await
    {
        Ok((status, created)) => {
            let code = if created {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            let location = format!("/v1/draft-orders/{}", status.job);
            let detail = audit::Detail(format!("job {}", status.job));
            let mut response = (code, [(header::LOCATION, location)], Json(status)).into_response();
            response.extensions_mut().insert(detail);
            response
        }
        Err(Refused::Invalid(errors)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quote",
            "invalid quote",
        )
        .with_details(json!(errors))
        .into_response(),
        Err(Refused::Conflict(message)) => error(StatusCode::CONFLICT, message),
        Err(Refused::Database(e)) => database(e),
    }
}

async fn show(
    State(api): State<DraftOrdersApi>,
    Extension(caller): Extension<Caller>,
    Path(job): Path<String>,
) -> Response {
    match jobs::owner(&api.pool, &job).await {
        Ok(Some(owner)) if owner == caller.token_id => {}
        Ok(_) => return error(StatusCode::NOT_FOUND, "no such job"),
        Err(e) => return database(e),
    }
    match jobs::status(&api.pool, &job).await {
        Ok(Some(s)) => Json(s).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such job"),
        Err(e) => database(e),
    }
}
