//! `GET /console/drafts`: draft-order jobs, newest first, keyset-paged by (created_at, id)
//! (`?before=<unix µs>&id=<job>`, index `draft_order_jobs_created`): status, parts created,
//! the callback's state and what went wrong.

use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::session::Session;
use super::{layout, Console, ConsoleError};

/// Jobs per page.
pub const PAGE_ROWS: i64 = 50;

/// A job as listed.
#[derive(Debug)]
pub struct JobRow {
    /// Job id (`dq_…`).
    pub id: String,
    /// Shop.
    pub shop: String,
    /// The integrator's quote id.
    pub quote_id: String,
    /// The buyer.
    pub company_location_id: String,
    /// processing, completed, rejected or failed.
    pub status: String,
    /// Parts planned.
    pub parts_total: Option<i32>,
    /// Parts created in Shopify.
    pub parts_created: i32,
    /// Why it failed.
    pub error: Option<String>,
    /// Validation errors of a rejected quote.
    pub violations: Option<serde_json::Value>,
    /// none, pending, delivered or failed.
    pub callback_state: String,
    /// Submitted.
    pub created_at: OffsetDateTime,
    /// Ended.
    pub finished_at: Option<OffsetDateTime>,
}

/// The jobs older than `before` (created_at, id), at most `limit`, newest first. The first
/// page's bound is `infinity`, so every page is a range of `draft_order_jobs_created`.
pub async fn page_of(
    pool: &PgPool,
    before: Option<(OffsetDateTime, &str)>,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    let (at, id) = before.unzip();
    sqlx::query_as!(
        JobRow,
        "SELECT id, shop, quote_id, company_location_id, status, parts_total, parts_created,
                error, violations, callback_state, created_at, finished_at
         FROM draft_order_jobs
         WHERE (created_at, id) < (coalesce($1::timestamptz, 'infinity'), coalesce($2::text, ''))
         ORDER BY created_at DESC, id DESC LIMIT $3",
        at,
        id,
        limit
    )
    .fetch_all(pool)
    .await
}

/// `?before=<unix microseconds>&id=<job>`: the last job of the previous page.
#[derive(Debug, Deserialize, Serialize)]
pub struct PageQuery {
    before: Option<i64>,
    id: Option<String>,
}

fn status(s: &str) -> Markup {
    let class = match s {
        "completed" => "ok",
        "failed" | "rejected" => "bad",
        _ => "",
    };
    html! { span class={ "badge " (class) } { (s) } }
}

/// `GET /console/drafts`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<PageQuery>,
) -> Result<Markup, ConsoleError> {
    let before = match (q.before, q.id.as_deref()) {
        (Some(micros), Some(id)) => {
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                .map_err(|e| ConsoleError::BadRequest(format!("before: {e}")))?;
            Some((at, id))
        }
        _ => None,
    };
    let mut rows = page_of(&console.pool, before, PAGE_ROWS + 1).await?;
    let next = (rows.len() as i64 > PAGE_ROWS).then(|| {
        rows.truncate(PAGE_ROWS as usize);
        let last = rows.last().expect("a full page");
        serde_urlencoded::to_string(PageQuery {
            before: Some((last.created_at.unix_timestamp_nanos() / 1000) as i64),
            id: Some(last.id.clone()),
        })
        .unwrap_or_default()
    });
    let content = html! {
        table {
            tr { th { "job" } th { "shop" } th { "quote" } th { "buyer" } th { "status" }
                 th.num { "parts" } th { "callback" } th { "submitted" } th { "problem" } }
            @for j in &rows {
                tr {
                    td { code { (j.id) } }
                    td { code { (j.shop) } }
                    td { (j.quote_id) }
                    td { code { (j.company_location_id) } }
                    td { (status(&j.status)) }
                    td.num { (j.parts_created) " / " (j.parts_total.map_or("?".to_owned(), |n| n.to_string())) }
                    td { (j.callback_state) }
                    td { (layout::at(j.created_at)) }
                    td.bad {
                        @if let Some(e) = &j.error { (e) }
                        @if let Some(v) = &j.violations { code { (v.to_string()) } }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No draft-order job yet." } }
        (layout::pager("/console/drafts", next, before.is_none()))
    };
    Ok(layout::page(
        &session,
        "/console/drafts",
        "Draft-order jobs",
        None,
        content,
    ))
}
