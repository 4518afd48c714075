//! `GET /console/salesforce`: the Salesforce sync's state: API budget, breaker and reserve
//! (this process's gauges), the outbox by object and status, match decisions, the inbound
//! change subscription, and the review queue (companies waiting for a person to link them).

use axum::extract::State;
use maud::{html, Markup};
use serde_json::Value;

use super::gauges;
use super::session::Session;
use super::{layout, Console, ConsoleError};
use crate::salesforce::outbox;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

/// `GET /console/salesforce`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
) -> Result<Markup, ConsoleError> {
    let status = outbox::status(&console.pool, None).await?;
    let review = outbox::reviews(&console.pool, None).await?;
    let samples = gauges::read(
        &console.metrics,
        &[
            "wholesail_salesforce_api_used_ratio",
            "wholesail_salesforce_breaker_state",
            "wholesail_salesforce_reserve_reached",
        ],
    );
    let empty = Vec::new();
    let rows = status["outbox"].as_array().unwrap_or(&empty);
    let content = html! {
        h2 { "API budget and breaker" }
        @if samples.is_empty() { p.muted { "No Salesforce org has been called by this process." } }
        @else {
            table {
                tr { th { "org" } th { "metric" } th.num { "value" } }
                @for s in &samples {
                    tr { td { code { (s.label("org")) } } td { code { (s.name) } }
                         td.num { @if s.name.ends_with("ratio") { (format!("{:.1} %", s.value * 100.0)) }
                                  @else { (s.value) } } }
                }
            }
            p.muted { "Breaker: 0 closed, 1 half-open, 2 open. Reserve reached: backfill rows wait." }
        }
        h2 { "Outbox" }
        @if rows.is_empty() { p.muted { "The outbox is empty (no org connected, or nothing to send)." } }
        @else {
            table {
                tr { th { "object" } th { "status" } th.num { "rows" } th.num { "oldest pending" } }
                @for r in rows {
                    tr { td { (text(&r["object"])) } td { (text(&r["status"])) } td.num { (text(&r["rows"])) }
                         td.num { (r["oldest_pending_secs"].as_f64().map_or("–".to_owned(), layout::secs)) } }
                }
            }
        }
        h2 { "Matching and inbound changes" }
        table {
            @if let Some(matches) = status["matches"].as_object() {
                @for (decision, n) in matches { tr { th { "match: " (decision) } td.num { (text(n)) } } }
            }
            @if let Some(inbound) = status["inbound"].as_object() {
                @for (k, v) in inbound { tr { th { (k.replace('_', " ")) } td.num { (text(v)) } } }
            }
        }
        h2 { "Review queue" }
        @if review.is_empty() { p.ok { "No company is waiting for review." } }
        @else {
            p.muted { "Link or create with " code { "origin salesforce review link|create" } " or on the problems page." }
            table {
                tr { th { "shop" } th { "company" } th { "name" } th { "candidates" } th { "since" } }
                @for r in &review {
                    tr { td { code { (text(&r["shop"])) } } td { code { (text(&r["company"])) } }
                         td { (text(&r["name"])) } td { code { (text(&r["candidates"])) } }
                         td { (text(&r["since"])) } }
                }
            }
        }
    };
    Ok(layout::page(
        &session,
        "/console/salesforce",
        "Salesforce",
        None,
        content,
    ))
}
