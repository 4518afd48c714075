//! `GET /console/catalog`: catalog runs, newest first, keyset-paged by id (`?before=<id>`),
//! with the progress of runs under way; `GET /console/catalog/{id}`: one run, reloaded every
//! [`REFRESH_SECS`] while it is under way; `POST /console/catalog/{id}/cancel` asks it to stop
//! (`ops:write`, audited).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::session::Session;
use super::{csrf, layout, Console, ConsoleError};
use crate::catalog::runs;

/// Rows per page.
pub const PAGE_ROWS: i64 = 50;

/// How often a page with a run under way reloads, in seconds.
pub const REFRESH_SECS: u32 = 2;

/// A run as listed.
#[derive(Debug)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// Shop.
    pub shop: String,
    /// Status.
    pub status: String,
    /// JSONL lines imported.
    pub lines_read: i64,
    /// Bytes downloaded.
    pub bytes_read: i64,
    /// The result file's size, once known.
    pub file_size: Option<i64>,
    /// Rows inserted, updated, deleted by the merge.
    pub inserted: Option<i64>,
    /// Rows updated.
    pub updated: Option<i64>,
    /// Rows deleted.
    pub deleted: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Finished.
    pub finished_at: Option<OffsetDateTime>,
}

impl RunRow {
    fn active(&self) -> bool {
        matches!(self.status.as_str(), "starting" | "waiting" | "importing")
    }
}

/// The runs older than `before` (none: the newest), at most `limit`, newest first. The cursor
/// is always a bound (no `$1 IS NULL OR …`), so every page is an index range, however deep.
pub async fn page_of(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as!(
        RunRow,
        "SELECT id, shop, status, lines_read, bytes_read, file_size, inserted, updated, deleted,
                error, created_at, finished_at
         FROM catalog_runs WHERE id < coalesce($1::int8, 9223372036854775807)
         ORDER BY id DESC LIMIT $2",
        before,
        limit
    )
    .fetch_all(pool)
    .await
}

fn progress(run: &RunRow) -> Markup {
    let pct = run
        .file_size
        .filter(|size| *size > 0)
        .map(|size| (run.bytes_read as f64 / size as f64 * 100.0).clamp(0.0, 100.0));
    html! {
        @match (run.active(), pct) {
            (true, Some(pct)) => {
                div.bar title=(format!("{pct:.0} %")) { span style=(format!("width:{pct:.1}%")) {} }
                span.muted { (format!("{pct:.0} %")) " · " (run.lines_read) " lines" }
            }
            (true, None) => span.muted { "waiting for Shopify's export" },
            _ => span.muted { (run.lines_read) " lines" },
        }
    }
}

fn status(s: &str) -> Markup {
    let class = match s {
        "completed" => "ok",
        "failed" => "bad",
        "canceled" => "warn",
        _ => "",
    };
    html! { span class={ "badge " (class) } { (s) } }
}

/// `?before=<id>`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    before: Option<i64>,
}

/// `GET /console/catalog`.
pub async fn list(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Markup, ConsoleError> {
    let mut rows = page_of(&console.pool, q.before, PAGE_ROWS + 1).await?;
    let next = (rows.len() as i64 > PAGE_ROWS).then(|| {
        rows.truncate(PAGE_ROWS as usize);
        format!("before={}", rows.last().map_or(0, |r| r.id))
    });
    let live = rows.iter().any(RunRow::active);
    let content = html! {
        @if live { p.muted { "Runs under way: this page reloads every " (REFRESH_SECS) " s." } }
        table {
            tr { th.num { "run" } th { "shop" } th { "status" } th { "progress" }
                 th.num { "inserted" } th.num { "updated" } th.num { "deleted" }
                 th { "started" } th { "finished" } }
            @for run in &rows {
                tr {
                    td.num { a href={ "/console/catalog/" (run.id) } { (run.id) } }
                    td { code { (run.shop) } }
                    td { (status(&run.status)) }
                    td { (progress(run)) }
                    td.num { (run.inserted.unwrap_or(0)) }
                    td.num { (run.updated.unwrap_or(0)) }
                    td.num { (run.deleted.unwrap_or(0)) }
                    td { (layout::at(run.created_at)) }
                    td { (layout::at_opt(run.finished_at)) }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No catalog run yet: " code { "origin catalog resync --shop …" } } }
        (layout::pager("/console/catalog", next, q.before.is_none()))
    };
    let refresh = live.then_some(REFRESH_SECS);
    Ok(layout::page(
        &session,
        "/console/catalog",
        "Catalog runs",
        refresh,
        content,
    ))
}

/// `?done=` after an action.
#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

/// `GET /console/catalog/{id}`.
pub async fn show(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<i64>,
    Query(q): Query<ShowQuery>,
) -> Result<Markup, ConsoleError> {
    let run = runs::get(&console.pool, id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no catalog run {id}")))?;
    let row = RunRow {
        id: run.id,
        shop: run.shop.to_string(),
        status: serde_json::to_value(run.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        lines_read: run.lines_read,
        bytes_read: run.bytes_read,
        file_size: run.file_size,
        inserted: run.inserted,
        updated: run.updated,
        deleted: run.deleted,
        error: run.error.clone(),
        created_at: run.created_at,
        finished_at: run.finished_at,
    };
    let live = !run.is_final();
    let content = html! {
        (layout::flash(q.done.as_deref()))
        table {
            tr { th { "shop" } td { code { (row.shop) } } }
            tr { th { "status" } td { (status(&row.status))
                 @if run.cancel_requested && live { " " span.badge.warn { "cancel requested" } } } }
            tr { th { "progress" } td { (progress(&row)) } }
            tr { th { "bulk operation" } td { code { (run.bulk_operation_id.as_deref().unwrap_or("–")) } " "
                 (run.bulk_status.as_deref().unwrap_or("")) } }
            tr { th { "downloaded" } td { (row.bytes_read) " of " (row.file_size.map_or("?".to_owned(), |s| s.to_string())) " bytes" } }
            tr { th { "merged" } td { "inserted " (row.inserted.unwrap_or(0)) ", updated " (row.updated.unwrap_or(0))
                 ", deleted " (row.deleted.unwrap_or(0)) } }
            tr { th { "attempt" } td { (run.attempt) " " span.muted { (run.driver.as_deref().unwrap_or("")) } } }
            tr { th { "started" } td { (layout::at(run.created_at)) } }
            tr { th { "finished" } td { (layout::at_opt(run.finished_at)) } }
            @if let Some(e) = &run.error {
                tr { th { "error" } td.bad { (e) @if let Some(l) = run.error_line { " (line " (l) ")" } } }
            }
        }
        @if live && !run.cancel_requested && session.can_write() {
            p { (layout::action_button(&session, &format!("/console/catalog/{id}/cancel"), "Cancel this run", "danger")) }
        }
        p { a href="/console/catalog" { "All runs" } }
    };
    let refresh = live.then_some(REFRESH_SECS);
    Ok(layout::page(
        &session,
        "/console/catalog",
        &format!("Catalog run {id}"),
        refresh,
        content,
    ))
}

/// The cancel form (only its CSRF field).
#[derive(Debug, Deserialize)]
pub struct CancelForm {}

/// `POST /console/catalog/{id}/cancel`.
pub async fn cancel(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    const ACTION: &str = "POST /console/catalog/{id}/cancel";
    let target = format!("/console/catalog/{id}/cancel");
    let _: CancelForm =
        csrf::write(&console.pool, &session, &headers, &body, ACTION, &target).await?;
    let requested = runs::cancel(&console.pool, id).await?;
    let (status, done) = if requested {
        (StatusCode::SEE_OTHER, "Cancel requested.")
    } else {
        (StatusCode::CONFLICT, "The run has already ended.")
    };
    session
        .audit(&console.pool, ACTION, &target, status, Some(done))
        .await;
    if !requested {
        return Err(ConsoleError::Conflict(done.into()));
    }
    let location = format!("/console/catalog/{id}?done=Cancel+requested.");
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}
