//! `GET /console/problems`: what is broken, one row per problem (kind, shop, reason), the most
//! recently seen first, keyset-paged (`?cursor=` from the problems module); `?kind=` filters.
//! `GET /console/problems/{id}`: one problem, its affected records (keyset-paged) and the
//! actions that resolve it; `POST /console/problems/{id}/{action}` carries one out through
//! [`crate::problems::perform`], which writes the audit row with the session's token.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::session::Session;
use super::{csrf, layout, Console, ConsoleError};
use crate::problems::{self, Action, Cursor, Filter, Kind, Problem, ProblemError, ProblemId};

/// Problems or items per page.
pub const PAGE_ROWS: i64 = 50;

impl From<ProblemError> for ConsoleError {
    fn from(e: ProblemError) -> Self {
        match e {
            ProblemError::NotFound(m) => ConsoleError::NotFound(m),
            ProblemError::BadRequest(m) => ConsoleError::BadRequest(m),
            ProblemError::Database(e) => ConsoleError::Database(e),
        }
    }
}

fn cursor(text: Option<&str>) -> Result<Option<Cursor>, ConsoleError> {
    text.filter(|c| !c.is_empty())
        .map(str::parse)
        .transpose()
        .map_err(ConsoleError::from)
}

/// `?kind=&cursor=&done=`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    done: Option<String>,
}

fn href(problem: &ProblemId) -> String {
    format!("/console/problems/{problem}")
}

fn kind_badge(kind: Kind) -> Markup {
    html! { span.badge.bad { (kind.as_str().replace('_', " ")) } }
}

/// `GET /console/problems`.
pub async fn list(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Markup, ConsoleError> {
    let kind = q
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(str::parse::<Kind>)
        .transpose()?;
    let filter = Filter {
        kind,
        ..Filter::default()
    };
    let at = cursor(q.cursor.as_deref())?;
    let page = problems::list(&console.pool, &filter, at.as_ref(), PAGE_ROWS).await?;
    let next = page.next.map(|c| {
        serde_urlencoded::to_string(ListQuery {
            kind: q.kind.clone().filter(|k| !k.is_empty()),
            cursor: Some(c),
            done: None,
        })
        .unwrap_or_default()
    });
    let counts = problems::open_counts(&console.pool).await?;
    let content = html! {
        (layout::flash(q.done.as_deref()))
        nav.kinds {
            a href="/console/problems" { "all" }
            @for (k, n) in &counts {
                @if *n > 0 { " · " a href={ "/console/problems?kind=" (k.as_str()) } { (k.as_str().replace('_', " ")) " (" (n) ")" } }
            }
        }
        p.muted { (page.total) " open problem(s)" @if let Some(k) = kind { " of kind " (k.as_str()) } "." }
        @if page.rows.is_empty() { p.ok { "Nothing is broken." } }
        @else {
            table.problems {
                tr { th { "kind" } th { "shop" } th { "reason" } th.num { "items" } th { "first seen" } th { "last seen" } th { "affected" } th { "resolved by" } }
                @for p in &page.rows {
                    tr {
                        td { (kind_badge(p.kind)) }
                        td { code { (p.shop) } }
                        td { a href=(href(&p.id)) { (p.reason) } }
                        td.num { (p.count) }
                        td { (layout::at(p.first_seen)) }
                        td { (layout::at(p.last_seen)) }
                        td { @for s in p.sample.iter().take(3) { code { (s) } br; } }
                        td { (p.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
        (layout::pager("/console/problems", next, at.is_none()))
    };
    Ok(layout::page(
        &session,
        "/console/problems",
        "Problems",
        None,
        content,
    ))
}

/// `?cursor=&done=` of a problem's page.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ShowQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    done: Option<String>,
}

fn action_form(session: &Session, problem: &Problem, action: Action, item: Option<&str>) -> Markup {
    let label = match (action, item) {
        (Action::Replay, None) => "Replay all",
        (Action::Retry, None) => "Retry all",
        (Action::Replay, Some(_)) => "Replay",
        (Action::Retry, Some(_)) => "Retry",
        (Action::Link, _) => "Link",
        (Action::Create, _) => "Create Account",
        (Action::Dismiss, _) => "Dismiss",
    };
    let class = if action == Action::Dismiss {
        "danger"
    } else {
        "primary"
    };
    html! {
        form.inline method="post" action={ (href(&problem.id)) "/" (action.as_str()) } {
            (layout::csrf_field(session))
            @if let Some(item) = item { input type="hidden" name="item" value=(item); }
            @match action {
                Action::Dismiss => { input type="text" name="reason" placeholder="why (required)" required; " " }
                Action::Link => { input type="text" name="account" placeholder="Salesforce Account Id" required; " " }
                _ => {}
            }
            button class=(class) type="submit" { (label) }
        }
    }
}

/// `GET /console/problems/{id}`.
pub async fn show(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Markup, ConsoleError> {
    let id: ProblemId = id.parse()?;
    let problem = problems::problem(&console.pool, &id).await?;
    let at = cursor(q.cursor.as_deref())?;
    let items = problems::items(&console.pool, &id, at.as_ref(), PAGE_ROWS).await?;
    let next = items.next.map(|c| {
        serde_urlencoded::to_string(ShowQuery {
            cursor: Some(c),
            done: None,
        })
        .unwrap_or_default()
    });
    let per_item: Vec<Action> = problem
        .actions
        .iter()
        .copied()
        .filter(|a| *a != Action::Dismiss)
        .collect();
    let content = html! {
        (layout::flash(q.done.as_deref()))
        table {
            tr { th { "kind" } td { (kind_badge(problem.kind)) } }
            tr { th { "shop" } td { code { (problem.shop) } } }
            tr { th { "reason" } td.bad { (problem.reason) } }
            tr { th { "items" } td { (problem.count) } }
            tr { th { "first seen" } td { (layout::at(problem.first_seen)) } }
            tr { th { "last seen" } td { (layout::at(problem.last_seen)) } }
            @if let Some(d) = &problem.dismissal {
                tr { th { "dismissed" } td { (d.reason) " — " (d.by) ", " (layout::at(d.at))
                     @if !problem.dismissed { " " span.badge.warn { "seen again since" } } } }
            }
        }
        @if session.can_write() {
            p.actions {
                @for action in &problem.actions {
                    @if !matches!(action, Action::Link | Action::Create) { (action_form(&session, &problem, *action, None)) " " }
                }
            }
        }
        h2 { "Affected records" }
        table.items {
            tr { th { "record" } th { "item" } th { "seen" }
                 @if session.can_write() && !per_item.is_empty() { th { "action" } } }
            @for item in &items.rows {
                tr {
                    td { code { (item.record) } }
                    td { code { (item.item) } }
                    td { (layout::at(item.seen_at)) }
                    @if session.can_write() && !per_item.is_empty() {
                        td { @for action in &per_item { (action_form(&session, &problem, *action, Some(&item.item))) " " } }
                    }
                }
            }
        }
        (layout::pager(&href(&id), next, at.is_none()))
        p { a href="/console/problems" { "All problems" } " · " a href="/console/trace" { "Trace a record" } }
    };
    Ok(layout::page(
        &session,
        "/console/problems",
        &format!("Problem {}", id.kind),
        None,
        content,
    ))
}

/// An action's form: the item it addresses (none: every item), why, and the Account to link.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    item: Option<String>,
    reason: Option<String>,
    account: Option<String>,
}

/// `POST /console/problems/{id}/{action}`.
pub async fn act(
    State(console): State<Console>,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    const ACTION: &str = "POST /console/problems/{id}/{action}";
    let target = format!("/console/problems/{id}/{action}");
    let form: ActionForm =
        csrf::write(&console.pool, &session, &headers, &body, ACTION, &target).await?;
    let problem: ProblemId = id.parse()?;
    let action: Action = serde_json::from_value(serde_json::Value::String(action.clone()))
        .map_err(|_| ConsoleError::NotFound(format!("no action {action:?}")))?;
    let request = problems::Request {
        problem,
        action,
        item: form.item.filter(|s| !s.is_empty()),
        reason: form.reason.filter(|s| !s.is_empty()),
        account: form.account.filter(|s| !s.is_empty()),
    };
    // perform writes the audit row (token, problem, item, result), success or not.
    let outcome = problems::perform(&console.pool, &request, Some(&session.caller)).await?;
    let done = format!(
        "{} done on {} item(s): {}",
        outcome.action,
        outcome.items.len(),
        outcome.result
    );
    // Back to the list: a resolved problem has no page of its own any more.
    let location = format!(
        "/console/problems?{}",
        serde_urlencoded::to_string([("done", done)]).unwrap_or_default()
    );
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}
