//! `GET /console/trace?q=&shop=`: what happened to one record. A search box takes what an
//! operator knows (a GID, an order name such as `#1042`, a SKU or an email), the trace module
//! looks it up ([`crate::trace::lookup`]) and each matching record is shown with its timeline:
//! Shopify's trigger, the edge, the inbox, applied or skipped (and why), metafields pushed,
//! Salesforce, reconciliation.

use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;
use wholesail_webhook::ShopDomain;

use super::session::Session;
use super::{layout, Console, ConsoleError};
use crate::trace::{self, EntryKind, Record, TraceError, Writer};

/// `?q=&shop=`.
#[derive(Debug, Deserialize)]
pub struct TraceQuery {
    q: Option<String>,
    shop: Option<String>,
}

fn badge(kind: EntryKind) -> Markup {
    let class = match kind {
        EntryKind::Applied | EntryKind::SalesforceWritten | EntryKind::MetafieldsPushed => "ok",
        EntryKind::Stale | EntryKind::Ignored | EntryKind::Retrying => "warn",
        EntryKind::Dead
        | EntryKind::Quarantined
        | EntryKind::PushError
        | EntryKind::SalesforceFailed
        | EntryKind::ReconcileFinding => "bad",
        _ => "",
    };
    html! { span class={ "badge " (class) } { (kind.as_str()) } }
}

fn writer(w: &Writer) -> String {
    match w {
        Writer::Inbox {
            id, topic, source, ..
        } => format!(
            "inbox event {id} ({}{})",
            topic.as_deref().unwrap_or("purged"),
            source
                .as_deref()
                .map(|s| format!(", via {s}"))
                .unwrap_or_default()
        ),
        Writer::CatalogRun { id, reconcile_run } => match reconcile_run {
            Some(r) => format!("catalog run {id} (reconciliation run {r})"),
            None => format!("catalog run {id}"),
        },
        Writer::Salesforce { change } => format!("Salesforce change {change}"),
    }
}

fn record(r: &Record) -> Markup {
    html! {
        section.record {
            h2 { (format!("{:?}", r.kind).to_lowercase()) " " code { (r.gid) }
                 @if let Some(label) = &r.label { " · " (label) } }
            p.muted {
                "shop " code { (r.shop) }
                " · last written by " (r.writer.as_ref().map_or_else(|| r.written_by.clone().unwrap_or_else(|| "unknown".into()), writer))
                " at " (layout::at_opt(r.applied_at))
                @if let Some(d) = r.deleted_at { " · " span.bad { "deleted " (layout::at(d)) } }
            }
            @if r.events_truncated { p.muted { "Only the newest " (trace::MAX_EVENTS) " inbox events are shown." } }
            table.timeline {
                tr { th { "when" } th { "what" } th { "detail" } th.num { "inbox event" } }
                @for e in &r.timeline {
                    tr {
                        td.mono { (layout::at_millis(e.at)) }
                        td { (badge(e.what)) }
                        td { (e.detail) }
                        td.num { @if let Some(id) = e.inbox_id { (id) } }
                    }
                }
            }
        }
    }
}

/// `GET /console/trace`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<TraceQuery>,
) -> Result<Markup, ConsoleError> {
    let query = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let shop = q.shop.as_deref().filter(|s| !s.is_empty());
    let shop = shop
        .map(ShopDomain::parse)
        .transpose()
        .map_err(|e| ConsoleError::BadRequest(format!("shop: {e}")))?;
    let answer = match query {
        Some(text) => Some(trace::lookup(&console.pool, shop.as_ref(), text).await),
        None => None,
    };
    let content = html! {
        form.search method="get" action="/console/trace" {
            input type="search" name="q" value=(query.unwrap_or("")) placeholder="gid://shopify/Order/…, #1042, SKU or email" autofocus;
            " "
            input type="text" name="shop" value=(q.shop.as_deref().unwrap_or("")) placeholder="shop (optional)";
            " " button.primary type="submit" { "Trace" }
        }
        @match &answer {
            None => p.muted { "What happened to a record: Shopify's trigger, the edge, the inbox, applied or skipped and why, metafields, Salesforce, reconciliation." },
            Some(Ok(found)) => { @for r in &found.records { (record(r)) } },
            Some(Err(TraceError::Database(_))) => p.flash.error role="alert" { "The database is unavailable; try again." },
            Some(Err(e)) => p.flash.error role="alert" { (e) },
        }
    };
    if let Some(Err(TraceError::Database(e))) = &answer {
        tracing::error!(error = %e, "console trace failed on the database");
    }
    Ok(layout::page(
        &session,
        "/console/trace",
        "Trace a record",
        None,
        content,
    ))
}
