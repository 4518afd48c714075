//! Catalog resync over HTTP, for operations staff:
//!
//! - `POST /admin/catalog/resync` `{"shop": "acme.myshopify.com"}` → 202 with the run (the
//!   run already active for the shop, if any); the run is driven in the background
//! - `GET  /admin/catalog/runs?shop=&limit=` → recent runs, newest first
//! - `GET  /admin/catalog/runs/{id}` → the run, with `lines_read` / `bytes_read` /
//!   `file_size` while it imports (404 when absent)
//! - `POST /admin/catalog/runs/{id}/cancel` → 202, or 409 when the run has ended
//!
//! [`router`] carries no authentication of its own: merge it into the admin routes before
//! their bearer-token layer.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use wholesail_webhook::ShopDomain;

use super::runner::Runner;
use super::{background, runs};
use crate::http_error::ApiError;
use crate::shops::Shops;

/// What the catalog routes need.
#[derive(Clone)]
pub struct CatalogApi {
    /// Drives runs.
    pub runner: Runner,
    /// Shopify clients by shop.
    pub shops: Arc<Shops>,
}

/// The catalog admin routes (no auth layer: see the module docs).
pub fn router<S: Clone + Send + Sync + 'static>(api: CatalogApi) -> Router<S> {
    Router::new()
        .route("/admin/catalog/resync", post(resync))
        .route("/admin/catalog/runs", get(list))
        .route("/admin/catalog/runs/{id}", get(show))
        .route("/admin/catalog/runs/{id}/cancel", post(cancel))
        .with_state(api)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    ApiError::status_only(status, message.to_string()).into_response()
}

fn database(e: sqlx::Error) -> Response {
    ApiError::database(&e).into_response()
}

#[derive(Deserialize)]
struct ResyncRequest {
    shop: ShopDomain,
}

async fn resync(State(api): State<CatalogApi>, Json(req): Json<ResyncRequest>) -> Response {
    let client = match api.shops.client(&req.shop) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (run, created) = match runs::start(api.runner.pool(), &req.shop).await {
        Ok(r) => r,
        Err(e) => return database(e),
    };
    if created {
        background::spawn(api.runner.clone(), run.id, client);
    }
    (StatusCode::ACCEPTED, Json(run)).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    shop: Option<ShopDomain>,
    limit: Option<i64>,
}

async fn list(State(api): State<CatalogApi>, Query(q): Query<ListQuery>) -> Response {
    match runs::list(
        api.runner.pool(),
        q.shop.as_ref(),
        q.limit.unwrap_or(20).clamp(1, 500),
    )
    .await
    {
        Ok(r) => Json(r).into_response(),
        Err(e) => database(e),
    }
}

async fn show(State(api): State<CatalogApi>, Path(id): Path<i64>) -> Response {
    match runs::get(api.runner.pool(), id).await {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "not found"),
        Err(e) => database(e),
    }
}

async fn cancel(State(api): State<CatalogApi>, Path(id): Path<i64>) -> Response {
    match runs::cancel(api.runner.pool(), id).await {
        Ok(true) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"cancel_requested": id})),
        )
            .into_response(),
        Ok(false) => error(StatusCode::CONFLICT, "no active run with this id"),
        Err(e) => database(e),
    }
}
