//! `/admin/problems` (the access table: `ops:read` to read, `ops:write` for the actions, which
//! the guard audits as HTTP calls and [`super::perform`] audits as actions):
//!
//! - `GET /admin/problems?kind=&shop=&include_dismissed=&cursor=&limit=` → [`Page`] of
//!   [`super::Problem`] (`next`: the cursor of the following page);
//! - `GET /admin/problems/{id}?cursor=&limit=` → `{"problem": …, "items": Page<Item>}`;
//! - `POST /admin/problems/{id}/replay|retry|link|create|dismiss` with
//!   `{"item"?, "reason"?, "account"?}` → [`super::Outcome`].

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::{Action, Cursor, Filter, ProblemError, ProblemId, Request};
use crate::auth::audit::Detail;
use crate::auth::Caller;
use crate::http_error::ApiError;

impl IntoResponse for ProblemError {
    fn into_response(self) -> Response {
        match &self {
            ProblemError::NotFound(m) => ApiError::not_found(m.as_str()),
            ProblemError::BadRequest(m) => ApiError::bad_request(m.as_str()),
            ProblemError::Database(e) => ApiError::database(e),
        }
        .into_response()
    }
}

/// The routes (the app's auth layer goes in front of them).
pub fn routes<S: Clone + Send + Sync + 'static>(pool: PgPool) -> Router<S> {
    Router::new()
        .route("/admin/problems", get(list))
        .route("/admin/problems/{id}", get(show))
        .route("/admin/problems/{id}/replay", post(replay))
        .route("/admin/problems/{id}/retry", post(retry))
        .route("/admin/problems/{id}/link", post(link))
        .route("/admin/problems/{id}/create", post(create))
        .route("/admin/problems/{id}/dismiss", post(dismiss))
        .with_state(pool)
}

/// Query of the listing.
#[derive(Debug, Deserialize)]
struct ListQuery {
    kind: Option<super::Kind>,
    shop: Option<wholesail_webhook::ShopDomain>,
    #[serde(default)]
    include_dismissed: bool,
    cursor: Option<Cursor>,
    limit: Option<i64>,
}

async fn list(
    State(pool): State<PgPool>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ProblemError> {
    let filter = Filter {
        kind: q.kind,
        shop: q.shop,
        include_dismissed: q.include_dismissed,
    };
    let page = super::list(&pool, &filter, q.cursor.as_ref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(page).into_response())
}

/// Query of one problem's items.
#[derive(Debug, Deserialize)]
struct ItemsQuery {
    cursor: Option<Cursor>,
    limit: Option<i64>,
}

async fn show(
    State(pool): State<PgPool>,
    Path(id): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> Result<Response, ProblemError> {
    let id: ProblemId = id.parse()?;
    let problem = super::problem(&pool, &id).await?;
    let items = super::items(&pool, &id, q.cursor.as_ref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(json!({ "problem": problem, "items": items })).into_response())
}

/// Body of an action.
#[derive(Debug, Default, Deserialize)]
struct ActionBody {
    item: Option<String>,
    reason: Option<String>,
    account: Option<String>,
}

async fn act(
    pool: PgPool,
    caller: Caller,
    id: String,
    action: Action,
    body: ActionBody,
) -> Result<Response, ProblemError> {
    let request = Request {
        problem: id.parse()?,
        action,
        item: body.item,
        reason: body.reason,
        account: body.account,
    };
    let done = super::perform(&pool, &request, Some(&caller)).await?;
    let detail = Detail(format!("{} {}: {}", action, done.problem, done.result));
    let mut response = Json(done).into_response();
    response.extensions_mut().insert(detail);
    Ok(response)
}

async fn replay(
    State(pool): State<PgPool>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ActionBody>,
) -> Result<Response, ProblemError> {
    act(pool, caller, id, Action::Replay, body).await
}

async fn retry(
    State(pool): State<PgPool>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ActionBody>,
) -> Result<Response, ProblemError> {
    act(pool, caller, id, Action::Retry, body).await
}

async fn link(
    State(pool): State<PgPool>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ActionBody>,
) -> Result<Response, ProblemError> {
    act(pool, caller, id, Action::Link, body).await
}

async fn create(
    State(pool): State<PgPool>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ActionBody>,
) -> Result<Response, ProblemError> {
    act(pool, caller, id, Action::Create, body).await
}

async fn dismiss(
    State(pool): State<PgPool>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ActionBody>,
) -> Result<Response, ProblemError> {
    act(pool, caller, id, Action::Dismiss, body).await
}
