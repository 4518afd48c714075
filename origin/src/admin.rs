//! The admin API: dead-letter inspection and replay over HTTP, behind a bearer token.
//!
//! - `GET  /admin/dead-letters?topic=&shop=&since=&until=&id=&limit=` → `[DeadLetter]`
//!   (`&quarantined=true`: the quarantined rows instead); header `X-Total-Count`: how many
//!   rows match in all (the listing shows at most `limit`, default 100)
//! - `GET  /admin/dead-letters/{id}` → `Detail` (404 when absent)
//! - `POST /admin/dead-letters/replay` with a JSON [`Filter`] → `{"replayed": [ids]}`
//!   (an empty filter is refused unless `"all": true`); with `"quarantined": true` the
//!   matching quarantined rows are re-parsed instead → `{"replayed": [ids],
//!   "still_quarantined": [{id, reason}]}` ([`quarantine::replay`])
//! - `POST /admin/dead-letters/{id}/replay` → `{"replayed": [ids]}` (a quarantined row:
//!   re-parsed, with `still_quarantined`)
//!
//! - the catalog routes of [`catalog::admin`] (`/admin/catalog/…`)
//!
//! Without `admin.token` configured every admin route answers 404.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use thiserror::Error;
use time::OffsetDateTime;

use crate::app::AppState;
use crate::catalog::{self, admin::CatalogApi};
use crate::dead_letters::{self, Filter, Shelf};
use crate::quarantine;

/// Why an admin request failed.
#[derive(Debug, Error)]
pub enum AdminError {
    /// No or wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The admin API is disabled, or the row does not exist.
    #[error("not found")]
    NotFound,
    /// The request is not acceptable.
    #[error("{0}")]
    BadRequest(String),
    /// The database failed.
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Database(e) => {
                tracing::error!(error = %e, "admin request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// The admin routes, with the bearer-token check in front.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/dead-letters", get(list))
        .route("/admin/dead-letters/replay", post(replay))
        .route("/admin/dead-letters/{id}", get(show))
        .route("/admin/dead-letters/{id}/replay", post(replay_one))
        .merge(catalog::admin::router(CatalogApi {
            runner: state.catalog.clone(),
            shops: state.shops.clone(),
        }))
        .merge(crate::rules::api::routes())
        .route_layer(axum::middleware::from_fn_with_state(state, authorize))
}

async fn authorize(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AdminError> {
    check_bearer(app.admin_token.as_deref(), request.headers())?;
    Ok(next.run(request).await)
}

/// Checks the `Authorization: Bearer` header against the admin token in constant time:
/// [`AdminError::NotFound`] when no token is configured (the admin API is off),
/// [`AdminError::Unauthorized`] when the header is missing or wrong.
pub(crate) fn check_bearer(
    token: Option<&SecretString>,
    headers: &HeaderMap,
) -> Result<(), AdminError> {
    let token = token.ok_or(AdminError::NotFound)?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AdminError::Unauthorized)?;
    if bool::from(presented.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
        Ok(())
    } else {
        Err(AdminError::Unauthorized)
    }
}

/// The listing's header with the number of matching rows (the listing shows at most `limit`).
pub const TOTAL_HEADER: &str = "x-total-count";

/// Query parameters of the listing.
#[derive(Debug, Deserialize)]
struct ListQuery {
    id: Option<i64>,
    topic: Option<String>,
    shop: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
    limit: Option<i64>,
    #[serde(default)]
    quarantined: bool,
}

async fn list(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, AdminError> {
    let filter = Filter {
        ids: q.id.into_iter().collect(),
        topic: q.topic,
        shop: q.shop,
        since: q.since,
        until: q.until,
    };
    let shelf = if q.quarantined {
        Shelf::Quarantined
    } else {
        Shelf::Dead
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let rows = dead_letters::list(&app.pool, shelf, &filter, limit).await?;
    let total = dead_letters::count(&app.pool, shelf, &filter).await?;
    Ok(([(TOTAL_HEADER, total.to_string())], Json(rows)).into_response())
}

async fn show(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Response, AdminError> {
    let row = dead_letters::show(&app.pool, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    Ok(Json(row).into_response())
}

/// Body of `POST /admin/dead-letters/replay`.
#[derive(Debug, Deserialize)]
struct ReplayRequest {
    #[serde(flatten)]
    filter: Filter,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    quarantined: bool,
}

async fn replay(
    State(app): State<AppState>,
    Json(req): Json<ReplayRequest>,
) -> Result<Response, AdminError> {
    if !req.filter.is_narrowed() && !req.all {
        return Err(AdminError::BadRequest(
            "refusing to replay every dead letter without \"all\": true".into(),
        ));
    }
    if req.quarantined {
        let done = quarantine::replay(&app.pool, &req.filter).await?;
        return Ok(Json(done).into_response());
    }
    let ids = dead_letters::replay(&app.pool, &req.filter).await?;
    Ok(Json(serde_json::json!({ "replayed": ids })).into_response())
}

async fn replay_one(
    State(app): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, AdminError> {
    let filter = Filter {
        ids: vec![id],
        ..Filter::default()
    };
    let ids = dead_letters::replay(&app.pool, &filter).await?;
    if !ids.is_empty() {
        return Ok(Json(serde_json::json!({ "replayed": ids })).into_response());
    }
    // Not a dead letter: a quarantined row is re-parsed; anything else replays nothing.
    let done = quarantine::replay(&app.pool, &filter).await?;
    Ok(Json(done).into_response())
}
