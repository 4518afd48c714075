//! The reconciliation routes of the admin API (`ops:read`):
//! - `GET /admin/reconcile/runs?shop=&limit=` → `{"runs": [newest first]}`
//! - `GET /admin/reconcile/findings?shop=&run=` → `{"findings": [...]}`

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_webhook::ShopDomain;

use super::runs;
use crate::http_error::ApiError;

/// The routes, on `pool`.
pub fn routes<S: Clone + Send + Sync + 'static>(pool: PgPool) -> Router<S> {
    Router::new()
        .route("/admin/reconcile/runs", get(recent))
        .route("/admin/reconcile/findings", get(findings))
        .with_state(pool)
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    shop: Option<ShopDomain>,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    20
}

async fn recent(
    State(pool): State<PgPool>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let runs = runs::recent(&pool, q.shop.as_ref(), q.limit.clamp(1, 1_000))
        .await
        .map_err(|e| ApiError::database(&e))?;
    Ok(Json(json!({ "runs": runs })))
}

#[derive(Debug, Deserialize)]
struct FindingsQuery {
    shop: ShopDomain,
    run: i64,
}

async fn findings(
    State(pool): State<PgPool>,
    Query(q): Query<FindingsQuery>,
) -> Result<Json<Value>, ApiError> {
    let findings = runs::findings(&pool, &q.shop, q.run)
        .await
        .map_err(|e| ApiError::database(&e))?;
    Ok(Json(
        json!({ "shop": q.shop, "run": q.run, "findings": findings }),
    ))
}
