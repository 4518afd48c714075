//! `GET /console`: what is broken (open problems per kind) and is sync on time? Inbox depth
//! and lag, what arrived over the last minutes,
//! the SLO stages (from the `wholesail_slo_*` metrics), Shopify and Salesforce budgets and
//! breakers, and the catalog runs under way.
//!
//! Every count here stays cheap on a big inbox: depth counts use the partial status indexes,
//! the arrivals read only the newest [`ARRIVALS_CAP`] rows by id (index `inbox_id`).

use axum::extract::State;
use maud::{html, Markup};
use sqlx::PgPool;

use super::gauges::{self, Sample};
use super::layout;
use super::session::Session;
use super::{Console, ConsoleError};
use crate::pipeline::inbox;
use crate::problems;

/// The newest inbox rows the arrivals are counted in; a window that holds them all shows as
/// "at least".
pub const ARRIVALS_CAP: i64 = 20_000;

/// Events that arrived in the last 1, 5 and 15 minutes, among the newest [`ARRIVALS_CAP`]
/// rows (ids grow with arrival, so this is exact while fewer arrived).
#[derive(Debug, PartialEq, Eq)]
pub struct Arrivals {
    /// Last minute.
    pub m1: i64,
    /// Last 5 minutes.
    pub m5: i64,
    /// Last 15 minutes.
    pub m15: i64,
}

/// Reads [`Arrivals`].
pub async fn arrivals(pool: &PgPool) -> Result<Arrivals, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE inserted_at >= now() - interval '1 minute') AS "m1!",
                  count(*) FILTER (WHERE inserted_at >= now() - interval '5 minutes') AS "m5!",
                  count(*) FILTER (WHERE inserted_at >= now() - interval '15 minutes') AS "m15!"
           FROM (SELECT inserted_at FROM inbox ORDER BY id DESC LIMIT $1) newest"#,
        ARRIVALS_CAP
    )
    .fetch_one(pool)
    .await?;
    Ok(Arrivals {
        m1: row.m1,
        m5: row.m5,
        m15: row.m15,
    })
}

/// Active catalog runs.
async fn active_runs(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM catalog_runs
           WHERE status IN ('starting', 'waiting', 'importing')"#
    )
    .fetch_one(pool)
    .await
}

fn count(n: i64) -> String {
    if n >= ARRIVALS_CAP {
        format!("≥ {n}")
    } else {
        n.to_string()
    }
}

fn card(label: &str, value: impl std::fmt::Display, class: &str) -> Markup {
    html! { div.card { div.label { (label) } div class={ "value " (class) } { (value) } } }
}

/// The SLO table: one row per stage with its objective, target and good ratio so far.
fn slo_table(samples: &[Sample]) -> Markup {
    let mut stages: Vec<&str> = samples
        .iter()
        .filter(|s| s.name == "wholesail_slo_objective_seconds")
        .map(|s| s.label("stage"))
        .collect();
    stages.sort_unstable();
    stages.dedup();
    let value = |name: &str, stage: &str, result: Option<&str>| {
        samples
            .iter()
            .filter(|s| s.name == name && s.label("stage") == stage)
            .filter(|s| result.is_none_or(|r| s.label("result") == r))
            // A fold from +0: an empty `sum` of floats is -0, shown as "-0".
            .fold(0.0, |total, s| total + s.value)
    };
    html! {
        @if stages.is_empty() {
            p.muted { "No SLO stage has reported in this process yet." }
        } @else {
            table {
                tr { th { "stage" } th.num { "objective" } th.num { "target" }
                     th.num { "good / events" } th.num { "good ratio" } th { "state" } }
                @for stage in &stages {
                    @let objective = value("wholesail_slo_objective_seconds", stage, None);
                    @let target = value("wholesail_slo_target_ratio", stage, None);
                    @let good = value("wholesail_slo_events_total", stage, Some("good"));
                    @let all = value("wholesail_slo_events_total", stage, None);
                    @let ratio = if all > 0.0 { good / all } else { 1.0 };
                    tr {
                        td { code { (stage) } }
                        td.num { (layout::secs(objective)) }
                        td.num { (format!("{:.2} %", target * 100.0)) }
                        td.num { (good) " / " (all) }
                        td.num { (format!("{:.2} %", ratio * 100.0)) }
                        td { @if ratio >= target { span.badge.ok { "on time" } }
                             @else { span.badge.bad { "burning budget" } } }
                    }
                }
            }
        }
    }
}

fn breaker(state: f64) -> Markup {
    match state as i64 {
        0 => html! { span.badge.ok { "closed" } },
        1 => html! { span.badge.warn { "half-open" } },
        _ => html! { span.badge.bad { "open" } },
    }
}

/// The Shopify and Salesforce budgets and breakers this process knows.
fn budgets(samples: &[Sample]) -> Markup {
    fn named<'a>(samples: &'a [Sample], name: &'a str) -> impl Iterator<Item = &'a Sample> {
        samples.iter().filter(move |s| s.name == name)
    }
    let shopify: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name.starts_with("wholesail_shopify_"))
        .collect();
    let known = samples
        .iter()
        .any(|s| !s.name.starts_with("wholesail_slo_"));
    html! {
        @if !known { p.muted { "No Shopify or Salesforce call has reported a budget or breaker in this process yet." } }
        @else { table {
            tr { th { "system" } th { "what" } th.num { "value" } }
            @for s in named(samples, "wholesail_shop_breaker_state") {
                tr { td { "Shopify " code { (s.label("shop")) } } td { "breaker" } td.num { (breaker(s.value)) } }
            }
            @for s in &shopify {
                tr { td { "Shopify" } td { code { (s.name) }
                        @for (k, v) in &s.labels { " " span.muted { (k) "=" (v) } } }
                     td.num { (s.value) } }
            }
            @for s in named(samples, "wholesail_salesforce_api_used_ratio") {
                tr { td { "Salesforce " code { (s.label("org")) } } td { "daily API budget used" }
                     td.num { (format!("{:.1} %", s.value * 100.0)) } }
            }
            @for s in named(samples, "wholesail_salesforce_reserve_reached") {
                tr { td { "Salesforce " code { (s.label("org")) } } td { "reserve reached (backfill waits)" }
                     td.num { @if s.value > 0.0 { span.badge.warn { "yes" } } @else { "no" } } }
            }
            @for s in named(samples, "wholesail_salesforce_breaker_state") {
                tr { td { "Salesforce " code { (s.label("org")) } } td { "breaker" } td.num { (breaker(s.value)) } }
            }
        } }
    }
}

/// `GET /console`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
) -> Result<Markup, ConsoleError> {
    let open = problems::open_counts(&console.pool).await?;
    let depth = inbox::depth(&console.pool).await?;
    let arrived = arrivals(&console.pool).await?;
    let active = active_runs(&console.pool).await?;
    let samples = gauges::read(
        &console.metrics,
        &[
            "wholesail_slo_",
            "wholesail_shop_breaker_state",
            "wholesail_shopify_",
            "wholesail_salesforce_api_used_ratio",
            "wholesail_salesforce_reserve_reached",
            "wholesail_salesforce_breaker_state",
        ],
    );
    let rows = |status: &str| {
        depth
            .by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    };
    let lag_class = if depth.lag_secs <= console.max_lag_secs {
        "ok"
    } else {
        "bad"
    };
    let broken: Vec<_> = open.iter().filter(|(_, n)| *n > 0).collect();
    let content = html! {
        h2 { "What needs a person" }
        @if broken.is_empty() { p.ok { "Nothing is broken." } }
        @else {
            div.cards {
                @for (kind, n) in &broken {
                    a.card href={ "/console/problems?kind=" (kind.as_str()) } {
                        div.label { (kind.as_str().replace('_', " ")) }
                        div.value.bad { (n) }
                    }
                }
            }
        }
        h2 { "Inbox" }
        div.cards {
            (card("pending", rows("pending"), ""))
            (card("processing", rows("processing"), ""))
            (card("dead letters", rows("dead"), if rows("dead") > 0 { "bad" } else { "ok" }))
            (card("quarantined", rows("quarantined"), if rows("quarantined") > 0 { "warn" } else { "ok" }))
            (card(&format!("lag (ready ≤ {})", layout::secs(console.max_lag_secs)),
                  layout::secs(depth.lag_secs), lag_class))
        }
        h2 { "Throughput (events received)" }
        div.cards {
            (card("last minute", count(arrived.m1), ""))
            (card("last 5 minutes", count(arrived.m5), ""))
            (card("last 15 minutes", count(arrived.m15), ""))
            (card("per minute (15 min average)", format!("{:.0}", arrived.m15 as f64 / 15.0), ""))
        }
        h2 { "Timing against the SLOs" }
        (slo_table(&samples))
        h2 { "Budgets and breakers" }
        (budgets(&samples))
        h2 { "Catalog" }
        p { a href="/console/catalog" { (active) " catalog run(s) under way" } }
    };
    Ok(layout::page(
        &session, "/console", "Overview", None, content,
    ))
}
