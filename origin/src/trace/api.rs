//! `GET /admin/trace?q=…&shop=…` (`ops:read`): [`super::lookup`] as JSON ([`super::Trace`]).
//! An unparseable query is 400, no match is 404, each with the message saying what to type.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::PgPool;
use wholesail_webhook::ShopDomain;

use super::{lookup, Trace, TraceError};
use crate::http_error::ApiError;

/// The route, on `pool`.
pub fn routes<S: Clone + Send + Sync + 'static>(pool: PgPool) -> Router<S> {
    Router::new()
        .route("/admin/trace", get(trace))
        .with_state(pool)
}

#[derive(Debug, Deserialize)]
struct TraceQuery {
    q: String,
    shop: Option<ShopDomain>,
}

async fn trace(
    State(pool): State<PgPool>,
    Query(q): Query<TraceQuery>,
) -> Result<Json<Trace>, ApiError> {
    lookup(&pool, q.shop.as_ref(), &q.q)
        .await
        .map(Json)
        .map_err(|e| match e {
            TraceError::Database(e) => ApiError::database(&e),
            TraceError::NotFound { .. } => ApiError::not_found(e.to_string()),
            TraceError::EmptyQuery | TraceError::UnsupportedKind(_) | TraceError::BadQuery(_) => {
                ApiError::bad_request(e.to_string())
            }
        })
}
