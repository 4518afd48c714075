//! The HTTP API, behind the admin bearer token (`Authorization: Bearer <admin.token>`; 401
//! without it, 404 when no admin token is configured):
//!
//! - `POST /v1/draft-orders` with a [`QuoteRequest`] → `202 Accepted` and the job's status
//!   (`"status": "processing"`) for a new quote, `200` and the existing job for a quote id
//!   submitted before with the same content, `409` with different content, `422` with every
//!   structural error (`{"error", "errors": [{code, line, message}]}`), `400` for bad JSON.
//!   `Location: /v1/draft-orders/{job}`.
//! - `GET /v1/draft-orders/{job}` → the [`JobStatus`] (404 when absent).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;

use super::jobs::{self, JobStatus, SubmitError};
use super::quote::{QuoteRequest, QuoteViolation};
use super::CallbackPolicy;
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
    /// The admin bearer token; `None` disables the routes (404).
    pub admin_token: Option<Arc<SecretString>>,
    /// Which callback URLs quotes may name.
    pub callbacks: CallbackPolicy,
}

/// The routes, with their bearer-token check.
pub fn router<S: Clone + Send + Sync + 'static>(api: DraftOrdersApi) -> Router<S> {
    Router::new()
        .route("/v1/draft-orders", post(create))
        .route("/v1/draft-orders/{job}", get(show))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

fn database(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "draft-order request failed");
    error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
}

async fn authorize(
    State(api): State<DraftOrdersApi>,
    request: Request,
    next: Next,
) -> Result<Response, crate::admin::AdminError> {
    crate::admin::check_bearer(api.admin_token.as_deref(), request.headers())?;
    Ok(next.run(request).await)
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

/// Checks `quote` and stores it as a job (or finds its existing job): the job's status and
/// whether it was created now. Shared by the HTTP API and the CLI.
pub async fn submit(
    pool: &PgPool,
    shops: &Shops,
    callbacks: &CallbackPolicy,
    quote: &QuoteRequest,
) -> Result<(JobStatus, bool), Refused> {
    let mut errors = quote.check(callbacks);
    if !quote.shop.is_empty() && shops.client(&quote.shop).is_err() {
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
    let (id, created) = match jobs::submit(pool, quote).await {
        Ok(r) => r,
        Err(SubmitError::Conflict { job, quote_id }) => {
            return Err(Refused::Conflict(format!(
                "quote {quote_id} was already submitted with different content (job {job})"
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

async fn create(State(api): State<DraftOrdersApi>, body: Bytes) -> Response {
    let quote: QuoteRequest = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid quote JSON: {e}")),
    };
    match submit(&api.pool, &api.shops, &api.callbacks, &quote).await {
        Ok((status, created)) => {
            let code = if created {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            let location = format!("/v1/draft-orders/{}", status.job);
            (code, [(header::LOCATION, location)], Json(status)).into_response()
        }
        Err(Refused::Invalid(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "invalid quote", "errors": errors})),
        )
            .into_response(),
        Err(Refused::Conflict(message)) => error(StatusCode::CONFLICT, message),
        Err(Refused::Database(e)) => database(e),
    }
}

async fn show(State(api): State<DraftOrdersApi>, Path(job): Path<String>) -> Response {
    match jobs::status(&api.pool, &job).await {
        Ok(Some(s)) => Json(s).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such job"),
        Err(e) => database(e),
    }
}
