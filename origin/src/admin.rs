//! The admin API: dead-letter inspection and replay over HTTP, behind the scoped tokens of
//! [`crate::auth`] (`ops:read` to read, `ops:write` to replay).
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
//! - the catalog routes of [`catalog::admin`] (`/admin/catalog/…`), the rules routes of
//!   [`crate::rules::api`] and the Salesforce routes of [`crate::salesforce::api`]
//! - `GET  /admin/audit?actor=&since=&limit=` → the audit log, newest first
//! - the problems routes of [`crate::problems::api`] (`/admin/problems…`)
//!
//! Authentication is the app's [`crate::auth::guard`] layer, not these routes'.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::PgPool;
use thiserror::Error;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use crate::catalog::{self, admin::CatalogApi};
use crate::http_error::ApiError;
use crate::pipeline::dead_letters::{self, Filter, Shelf};
use crate::pipeline::quarantine;
use crate::rules::api::RulesApi;
use crate::state::AppState;

/// Why an admin request failed.
#[derive(Debug, Error)]
pub enum DeadLetterApiError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// The request is not acceptable.
    #[error("{0}")]
    BadRequest(String),
    /// The database failed.
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for DeadLetterApiError {
    fn into_response(self) -> Response {
        match &self {
            DeadLetterApiError::NotFound => ApiError::not_found(self.to_string()),
            DeadLetterApiError::BadRequest(m) => ApiError::bad_request(m.as_str()),
            DeadLetterApiError::Database(e) => ApiError::database(e),
        }
        .into_response()
    }
}

/// The admin routes, each feature with the state it needs (the app's auth layer goes in front
/// of them).
pub fn routes<S: Clone + Send + Sync + 'static>(state: &AppState) -> Router<S> {
    let dead_letters = Router::new()
        .route("/admin/dead-letters", get(list))
        .route("/admin/dead-letters/replay", post(replay))
        .route("/admin/dead-letters/{id}", get(show))
        .route("/admin/dead-letters/{id}/replay", post(replay_one))
        .route("/admin/audit", get(crate::auth::audit::list_route))
        .with_state(state.pool.clone());
    dead_letters
        .merge(catalog::admin::router(CatalogApi {
            runner: state.catalog.clone(),
            shops: state.shops.clone(),
        }))
        .merge(crate::rules::api::routes(RulesApi {
            pool: state.pool.clone(),
            shops: state.shops.clone(),
        }))
        .merge(crate::salesforce::api::routes(state.pool.clone()))
        .merge(crate::reconcile::api::routes(state.pool.clone()))
        .merge(crate::trace::api::routes(state.pool.clone()))
        .merge(crate::problems::api::routes(state.pool.clone()))
}

/// The listing's header with the number of matching rows (the listing shows at most `limit`).
pub const TOTAL_HEADER: &str = "x-total-count";

/// Query parameters of the listing.
#[derive(Debug, Deserialize)]
struct ListQuery {
    id: Option<i64>,
    topic: Option<String>,
    shop: Option<ShopDomain>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
    limit: Option<i64>,
    #[serde(default)]
    quarantined: bool,
}

async fn list(
    State(pool): State<PgPool>,
    Query(q): Query<ListQuery>,
) -> Result<Response, DeadLetterApiError> {
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
    let rows = dead_letters::list(&pool, shelf, &filter, limit).await?;
    let total = dead_letters::count(&pool, shelf, &filter).await?;
    Ok(([(TOTAL_HEADER, total.to_string())], Json(rows)).into_response())
}

async fn show(
    State(pool): State<PgPool>,
    Path(id): Path<i64>,
) -> Result<Response, DeadLetterApiError> {
    let row = dead_letters::show(&pool, id)
        .await?
        .ok_or(DeadLetterApiError::NotFound)?;
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
    State(pool): State<PgPool>,
    Json(req): Json<ReplayRequest>,
) -> Result<Response, DeadLetterApiError> {
    if !req.filter.is_narrowed() && !req.all {
        return Err(DeadLetterApiError::BadRequest(
            "refusing to replay every dead letter without \"all\": true".into(),
        ));
    }
    if req.quarantined {
        let done = quarantine::replay(&pool, &req.filter).await?;
        return Ok(requarantined(done));
    }
    let ids = dead_letters::replay(&pool, &req.filter).await?;
    Ok(replayed(ids))
}

async fn replay_one(
    State(pool): State<PgPool>,
    Path(id): Path<i64>,
) -> Result<Response, DeadLetterApiError> {
    let filter = Filter {
        ids: vec![id],
        ..Filter::default()
    };
    let ids = dead_letters::replay(&pool, &filter).await?;
    if !ids.is_empty() {
        return Ok(replayed(ids));
    }
    // Not a dead letter: a quarantined row is re-parsed; anything else replays nothing.
    let done = quarantine::replay(&pool, &filter).await?;
    Ok(requarantined(done))
}

/// The replay answer, with the replayed ids for the audit log.
fn replayed(ids: Vec<i64>) -> Response {
    let detail = crate::auth::audit::Detail(format!("replayed {ids:?}"));
    let mut response = Json(serde_json::json!({ "replayed": ids })).into_response();
    response.extensions_mut().insert(detail);
    response
}

/// The answer of a quarantine replay, with what it did for the audit log.
fn requarantined(done: quarantine::Replayed) -> Response {
    let still: Vec<i64> = done.still_quarantined.iter().map(|s| s.id).collect();
    let detail = crate::auth::audit::Detail(format!(
        "replayed quarantined {:?}; still quarantined {still:?}",
        done.replayed
    ));
    let mut response = Json(done).into_response();
    response.extensions_mut().insert(detail);
    response
}
