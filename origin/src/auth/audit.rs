//! The audit log (`audit_log`): one row per write action, by a token over HTTP (written by
//! [`super::guard`] for the audited routes, refusals for a missing scope included) or by the
//! CLI's write commands on the host (`actor` = `cli`). Read with `GET /admin/audit`
//! (`ops:read`) or `origin audit list`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::Caller;
use crate::admin::DeadLetterApiError;

/// What a handler adds to its response's extensions to say what the action did (a job id,
/// the replayed rows); it lands in the row's `detail`.
#[derive(Clone, Debug)]
pub struct Detail(pub String);

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It was carried out.
    Success,
    /// It failed or was refused by the handler.
    Error,
    /// The token lacks the scope.
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
        }
    }

    fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Success,
            403 => Outcome::Denied,
            _ => Outcome::Error,
        }
    }
}

/// One audit row.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// Its id.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The token (none: the CLI).
    pub token_id: Option<i64>,
    /// The token's name, or `cli`.
    pub actor: String,
    /// Method and route, or the CLI command.
    pub action: String,
    /// Path and query, or the CLI's argument.
    pub target: String,
    /// `success`, `error` or `denied`.
    pub outcome: String,
    /// The HTTP status.
    pub status: Option<i32>,
    /// What the action did, when known.
    pub detail: Option<String>,
}

/// Writes one row.
pub async fn record(
    pool: &PgPool,
    caller: Option<&Caller>,
    action: &str,
    target: &str,
    outcome: Outcome,
    status: Option<u16>,
    detail: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (token_id, actor, action, target, outcome, status, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        caller.map(|c| c.token_id),
        caller.map_or("cli", |c| c.name.as_str()),
        action,
        target,
        outcome.as_str(),
        status.map(i32::from),
        detail
    )
    .execute(pool)
    .await
    .map(drop)
}

/// Writes the row of a CLI action (actor `cli`, no token): success, or failure with the error
/// (`detail`, as the operator saw it).
pub async fn record_cli<T>(
    pool: &PgPool,
    action: &str,
    target: &str,
    result: &Result<T, String>,
) -> Result<(), sqlx::Error> {
    let (outcome, detail) = match result {
        Ok(_) => (Outcome::Success, None),
        Err(e) => (Outcome::Error, Some(e.as_str())),
    };
    record(pool, None, action, target, outcome, None, detail).await
}

/// Writes the row of an HTTP action that answered `status`; a failure is logged (the action
/// has happened either way).
pub(crate) async fn record_http(
    pool: &PgPool,
    caller: &Caller,
    action: &str,
    target: &str,
    status: u16,
    detail: Option<&str>,
) {
    let outcome = Outcome::of_status(status);
    if let Err(e) = record(
        pool,
        Some(caller),
        action,
        target,
        outcome,
        Some(status),
        detail,
    )
    .await
    {
        tracing::error!(error = %e, token = %caller.name, action, target, "audit row not written");
    }
}

/// Which rows to list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this actor (token name, or `cli`).
    pub actor: Option<String>,
    /// Only rows at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// At most this many (default 100, at most 10,000).
    pub limit: Option<i64>,
}

/// The newest rows first.
pub async fn list(pool: &PgPool, q: &ListQuery) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as!(
        Entry,
        "SELECT id, at, token_id, actor, action, target, outcome, status, detail
         FROM audit_log
         WHERE ($1::text IS NULL OR actor = $1) AND ($2::timestamptz IS NULL OR at >= $2)
         ORDER BY id DESC LIMIT $3",
        q.actor,
        q.since,
        q.limit.unwrap_or(100).clamp(1, 10_000)
    )
    .fetch_all(pool)
    .await
}

/// `GET /admin/audit?actor=&since=&limit=` → `[Entry]`, newest first.
pub async fn list_route(
    State(pool): State<PgPool>,
    Query(q): Query<ListQuery>,
) -> Result<Response, DeadLetterApiError> {
    Ok(Json(list(&pool, &q).await?).into_response())
}
