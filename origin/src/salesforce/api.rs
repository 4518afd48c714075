//! The Salesforce routes of the admin API: what `origin salesforce …` does, over HTTP
//! (`ops:read` to read, `ops:write` to decide, replay and backfill; writes are audited).
//!
//! - `GET  /admin/salesforce/status?shop=` → outbox by object and status, match decisions, the
//!   change subscription and quote to cash ([`outbox::status`])
//! - `GET  /admin/salesforce/review?shop=` → `{"review": [companies with candidates]}`
//! - `POST /admin/salesforce/review/link` `{shop, company, account}` and
//!   `POST /admin/salesforce/review/create` `{shop, company}` → the decision and the rows
//!   re-queued (404 when the company is not waiting)
//! - `GET  /admin/salesforce/dead-letters?shop=` → `{"dead": [rows with Salesforce's message]}`
//! - `POST /admin/salesforce/dead-letters/replay` `{shop?}` → `{"replayed": n}`
//! - `POST /admin/salesforce/backfill` `{shop, since?}` → `{shop, enqueued}` (409 when the
//!   shop is not connected); `GET /admin/salesforce/backfill?shop=&after_id=` →
//!   `{progress: {rows, done, dead}, finished}` (`after_id` from `enqueued`)

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_webhook::ShopDomain;

use super::cli::{self, CliError};
use super::outbox;
use crate::http_error::ApiError;

impl IntoResponse for CliError {
    fn into_response(self) -> Response {
        match &self {
            CliError::Database(e) => ApiError::database(e),
            CliError::NotConnected(_) => ApiError::conflict(self.to_string()),
            CliError::NotInReview(..) => ApiError::not_found(self.to_string()),
        }
        .into_response()
    }
}

/// The routes, on the database pool.
pub fn routes<S: Clone + Send + Sync + 'static>(pool: PgPool) -> Router<S> {
    Router::new()
        .route("/admin/salesforce/status", get(status))
        .route("/admin/salesforce/review", get(review))
        .route("/admin/salesforce/review/link", post(link))
        .route("/admin/salesforce/review/create", post(create))
        .route("/admin/salesforce/dead-letters", get(dead))
        .route("/admin/salesforce/dead-letters/replay", post(replay))
        .route("/admin/salesforce/backfill", post(backfill).get(progress))
        .with_state(pool)
}

/// `?shop=`.
#[derive(Debug, Deserialize)]
struct ShopQuery {
    shop: Option<ShopDomain>,
}

async fn status(
    State(pool): State<PgPool>,
    Query(q): Query<ShopQuery>,
) -> Result<Json<Value>, CliError> {
    Ok(Json(outbox::status(&pool, q.shop.as_ref()).await?))
}

async fn review(
    State(pool): State<PgPool>,
    Query(q): Query<ShopQuery>,
) -> Result<Json<Value>, CliError> {
    Ok(Json(
        json!({ "review": outbox::reviews(&pool, q.shop.as_ref()).await? }),
    ))
}

/// A review decision's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    shop: ShopDomain,
    company: String,
    #[serde(default)]
    account: Option<String>,
}

async fn link(
    State(pool): State<PgPool>,
    Json(d): Json<Decision>,
) -> Result<Json<Value>, Response> {
    let Some(account) = d.account.as_deref() else {
        return Err(
            ApiError::bad_request("`account` (the Salesforce Account Id) is required")
                .into_response(),
        );
    };
    cli::decide(&pool, &d.shop, &d.company, Some(account))
        .await
        .map(Json)
        .map_err(IntoResponse::into_response)
}

async fn create(
    State(pool): State<PgPool>,
    Json(d): Json<Decision>,
) -> Result<Json<Value>, Response> {
    if d.account.is_some() {
        return Err(ApiError::bad_request(
            "`account` is for /review/link; /review/create makes a new Account",
        )
        .into_response());
    }
    cli::decide(&pool, &d.shop, &d.company, None)
        .await
        .map(Json)
        .map_err(IntoResponse::into_response)
}

async fn dead(
    State(pool): State<PgPool>,
    Query(q): Query<ShopQuery>,
) -> Result<Json<Value>, CliError> {
    Ok(Json(
        json!({ "dead": outbox::dead(&pool, q.shop.as_ref()).await? }),
    ))
}

/// The replay's body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    #[serde(default)]
    shop: Option<ShopDomain>,
}

async fn replay(
    State(pool): State<PgPool>,
    Json(body): Json<ReplayBody>,
) -> Result<Json<Value>, CliError> {
    let replayed = outbox::replay_dead(&pool, body.shop.as_ref(), None, None).await?;
    Ok(Json(json!({ "replayed": replayed })))
}

/// The backfill's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    shop: ShopDomain,
    /// Only orders created at or after (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    since: Option<time::OffsetDateTime>,
}

async fn backfill(
    State(pool): State<PgPool>,
    Json(body): Json<BackfillBody>,
) -> Result<Json<Value>, CliError> {
    match outbox::backfill(&pool, &body.shop, body.since).await? {
        Some(enqueued) => Ok(Json(json!({ "shop": body.shop, "enqueued": enqueued }))),
        None => Err(CliError::NotConnected(body.shop)),
    }
}

/// `?shop=&after_id=`: a backfill's rows (those after its `enqueued.after_id`).
#[derive(Debug, Deserialize)]
struct ProgressQuery {
    shop: ShopDomain,
    after_id: i64,
}

async fn progress(
    State(pool): State<PgPool>,
    Query(q): Query<ProgressQuery>,
) -> Result<Json<Value>, CliError> {
    let progress = outbox::backfill_progress(&pool, &q.shop, q.after_id).await?;
    let finished = progress.finished();
    Ok(Json(
        json!({ "shop": q.shop, "progress": progress, "finished": finished }),
    ))
}
