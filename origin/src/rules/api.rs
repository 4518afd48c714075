//! The rules over HTTP, behind the admin bearer token (merged into `admin::routes`):
//!
//! - `GET    /admin/rules?shop=S[&location=GID]` → `{"rules": [row…]}` (rows in the file format)
//! - `PUT    /admin/rules` `{"shop": S, "rules": [row…]}` → `{"written": n}`; any bad row → 422
//!   `{"error": {"code": "invalid_rules", "details": [{"row", "message"}…]}}` and nothing written
//! - `DELETE /admin/rules` `{"shop": S, "rules": [row…]}` (key fields only) → `{"deleted": n}`
//! - `POST   /admin/rules/import?shop=S&format=csv|json` with the file as body → as `PUT`
//! - `POST   /admin/rules/push?shop=S[&all=true]` → the push report (dirty buyers, or all)
//! - `POST   /v1/carts/validate` `{"shop", "company_location", "lines": [{"variant_id",
//!   "quantity"}]}` → `{"valid", "currency", "subtotal", "lines": [priced…], "errors":
//!   [{"code", "target", "message"}…]}` (amounts in hundredths of the currency)

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use wholesail_webhook::ShopDomain;

use super::file::{self, Format, RowError};
use super::push::PushError;
use super::quote::{self, QuoteError, QuoteLine};
use super::store::{self, StoreError};
use super::{push, scheduler};
use crate::http_error::ApiError;
use crate::shops::Shops;

/// Why a rules request failed.
#[derive(Debug, thiserror::Error)]
pub enum RulesApiError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Rows are invalid; nothing was written.
    #[error("invalid rules")]
    Invalid(Vec<RowError>),
    /// The cart cannot be priced (unknown location or variant, zero quantity).
    #[error(transparent)]
    Quote(QuoteError),
    /// The shop has no Admin API client configured.
    #[error("{0}")]
    Shop(String),
    /// The push failed.
    #[error(transparent)]
    Push(PushError),
    /// The database failed.
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
}

impl From<StoreError> for RulesApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(rows) => RulesApiError::Invalid(rows),
            StoreError::Database(e) => RulesApiError::Database(e),
        }
    }
}

impl IntoResponse for RulesApiError {
    fn into_response(self) -> Response {
        match &self {
            RulesApiError::BadRequest(m) => ApiError::bad_request(m.as_str()),
            RulesApiError::Invalid(rows) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_rules",
                "invalid rules, nothing written",
            )
            .with_details(json!(rows)),
            RulesApiError::Quote(QuoteError::Database(e)) | RulesApiError::Database(e) => {
                ApiError::database(e)
            }
            RulesApiError::Quote(e @ QuoteError::UnknownLocation(_)) => {
                ApiError::not_found(e.to_string())
            }
            RulesApiError::Quote(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_cart",
                e.to_string(),
            ),
            RulesApiError::Shop(m) => ApiError::not_found(m.as_str()),
            RulesApiError::Push(e) => {
                tracing::error!(error = %e, "rules push failed");
                ApiError::new(StatusCode::BAD_GATEWAY, "shopify_failed", e.to_string())
            }
        }
        .into_response()
    }
}

/// What the rules routes need.
#[derive(Clone)]
pub struct RulesApi {
    /// The database.
    pub pool: PgPool,
    /// The configured shops (pushes go through their clients).
    pub shops: Arc<Shops>,
}

/// The rules routes; the caller adds the bearer-token layer.
pub fn routes<S: Clone + Send + Sync + 'static>(api: RulesApi) -> Router<S> {
    Router::new()
        .route("/admin/rules", get(list).put(put).delete(delete))
        .route("/admin/rules/import", post(import))
        .route("/admin/rules/push", post(push_now))
        .route("/v1/carts/validate", post(validate))
        .with_state(api)
}

#[derive(Deserialize)]
struct ListQuery {
    shop: ShopDomain,
    location: Option<String>,
}

async fn list(
    State(app): State<RulesApi>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, RulesApiError> {
    let rules = store::list(&app.pool, &q.shop, q.location.as_deref()).await?;
    let rows: Vec<_> = rules.iter().map(|r| r.to_row()).collect();
    Ok(Json(json!({ "rules": rows })))
}

#[derive(Deserialize)]
struct RulesBody {
    shop: ShopDomain,
    rules: Vec<Map<String, Value>>,
}

async fn put(
    State(app): State<RulesApi>,
    Json(body): Json<RulesBody>,
) -> Result<Json<Value>, RulesApiError> {
    let rules = file::parse_rows(&body.rules).map_err(RulesApiError::Invalid)?;
    let written = store::upsert(&app.pool, &body.shop, rules).await?;
    Ok(Json(json!({ "written": written })))
}

async fn delete(
    State(app): State<RulesApi>,
    Json(body): Json<RulesBody>,
) -> Result<Json<Value>, RulesApiError> {
    let rules = file::parse_rows(&body.rules).map_err(RulesApiError::Invalid)?;
    let deleted = store::delete(&app.pool, &body.shop, rules).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

#[derive(Deserialize)]
struct ImportQuery {
    shop: ShopDomain,
    format: String,
}

async fn import(
    State(app): State<RulesApi>,
    Query(q): Query<ImportQuery>,
    body: String,
) -> Result<Json<Value>, RulesApiError> {
    let format = match q.format.as_str() {
        "csv" => Format::Csv,
        "json" => Format::Json,
        other => {
            return Err(RulesApiError::BadRequest(format!(
                "format {other:?}: expected csv or json"
            )))
        }
    };
    let rules = file::parse(&body, format).map_err(RulesApiError::Invalid)?;
    let written = store::upsert(&app.pool, &q.shop, rules).await?;
    Ok(Json(json!({ "written": written })))
}

#[derive(Deserialize)]
struct PushQuery {
    shop: ShopDomain,
    #[serde(default)]
    all: bool,
}

async fn push_now(
    State(app): State<RulesApi>,
    Query(q): Query<PushQuery>,
) -> Result<Json<Value>, RulesApiError> {
    let client = app
        .shops
        .client(&q.shop)
        .map_err(|e| RulesApiError::Shop(e.to_string()))?;
    let report = if q.all {
        push::push(&app.pool, &client, &q.shop, None).await
    } else {
        scheduler::push_dirty(&app.pool, &client, &q.shop).await
    }
    .map_err(RulesApiError::Push)?;
    Ok(Json(json!(report)))
}

#[derive(Deserialize)]
struct ValidateBody {
    shop: ShopDomain,
    company_location: String,
    lines: Vec<QuoteLine>,
}

async fn validate(
    State(app): State<RulesApi>,
    Json(body): Json<ValidateBody>,
) -> Result<Json<Value>, RulesApiError> {
    let q = quote::quote(&app.pool, &body.shop, &body.company_location, &body.lines)
        .await
        .map_err(RulesApiError::Quote)?;
    let errors: Vec<Value> = q
        .violations
        .iter()
        .map(|v| {
            json!({
                "code": v.code.as_str(),
                "target": v.target.to_string(),
                "message": v.message,
            })
        })
        .collect();
    Ok(Json(json!({
        "valid": errors.is_empty(),
        "currency": q.priced.currency,
        "subtotal": q.priced.subtotal(),
        "lines": q.priced.lines,
        "errors": errors,
    })))
}
