//! Operations endpoints: `/livez`, `/readyz` and `/metrics` (Prometheus).
//!
//! They run outside the HTTP concurrency limit, and `/readyz` and `/metrics` read the database
//! through a small pool of their own ([`Ops`]), so a full request pool or a flood of probes
//! cannot starve each other. `/metrics` asks for a token with `ops:read` ([`auth::guard`], its
//! lookup on that pool too), and is served on `metrics.bind` instead of the main listener when
//! that is set.
//!
//! Metrics (all prefixed `wholesail_`):
//! - `inbox_depth{status}` gauge: rows pending / processing / dead / quarantined (read at
//!   scrape time);
//! - `inbox_lag_seconds` gauge: how long the oldest due pending row has waited;
//! - `intake_events_total{source,result}` counter: accepted / duplicate / quarantined /
//!   dead_letter / rejected, per route (the intake rate is its `rate()`);
//! - `events_processed_total{outcome}` counter: applied / stale / ignored;
//! - `event_failures_total{kind}` counter: transient / permanent handler failures;
//! - `dead_letters_total{reason}` counter: handler / lease_expired;
//! - `dead_letters_replayed_total` counter;
//! - `handler_duration_seconds{topic}` histogram;
//! - `processing_lag_seconds` histogram: intake → applied;
//! - `event_attempts` histogram: claims an event needed until done;
//! - `e2e_latency_seconds{stage}` histogram, `slo_events_total{stage,result}` counter and the
//!   `slo_objective_seconds{stage}` / `slo_target_ratio{stage}` gauges: see [`crate::slo`].
//! - `problems_open{kind}` gauge: open problem items per kind, read at scrape time
//!   (`problems::open_counts_beside_inbox`, completed with the inbox depth's counts).

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::auth;
use crate::pipeline::inbox;
use crate::state::AppState;

/// What the probes and `/metrics` share.
#[derive(Clone)]
pub struct Ops {
    /// At most three connections of their own (the scrape reads three things at once), opened
    /// on first use; a probe waits at most
    /// [`PROBE_ACQUIRE_TIMEOUT`] for one.
    pool: PgPool,
    max_lag_secs: f64,
    metrics: PrometheusHandle,
}

/// How long `/readyz` or `/metrics` waits for a connection of the probe pool.
pub const PROBE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

impl Ops {
    /// The probes' state for the database of `state.pool`.
    pub fn new(state: &AppState) -> Ops {
        let pool = PgPoolOptions::new()
            .max_connections(3)
            .acquire_timeout(PROBE_ACQUIRE_TIMEOUT)
            .connect_lazy_with((*state.pool.connect_options()).clone());
        Ops {
            pool,
            max_lag_secs: state.max_lag_secs,
            metrics: state.metrics.clone(),
        }
    }
}

/// `/livez` and `/readyz`.
pub fn probe_routes<S: Clone + Send + Sync + 'static>(ops: Ops) -> Router<S> {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(ops)
}

/// `/metrics`, behind [`auth::guard`].
pub fn metrics_routes<S: Clone + Send + Sync + 'static>(ops: Ops) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            ops.pool.clone(),
            auth::guard,
        ))
        .with_state(ops)
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0,
                ])
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("wholesail_e2e_latency_seconds".into()),
                    crate::slo::BUCKETS,
                )
                .expect("bucket list is not empty")
                // A large catalog's stage or merge runs for minutes (~25 s per million
                // variants on 2 cores): the default buckets end at 300 s.
                .set_buckets_for_metric(
                    Matcher::Prefix("wholesail_catalog_".into()),
                    &[
                        0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
                        3600.0, 7200.0,
                    ],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding); ours then only renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `GET /livez`: the process is up.
pub async fn livez() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when the database answers and the oldest due event has waited less than
/// `readiness.max_lag_secs`; 503 with the reason otherwise.
pub async fn readyz(State(app): State<Ops>) -> Response {
    match inbox::lag_secs(&app.pool).await {
        Ok(lag) if lag <= app.max_lag_secs => Json(serde_json::json!({
            "status": "ready", "lag_secs": lag
        }))
        .into_response(),
        Ok(lag) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "lagging", "lag_secs": lag, "max_lag_secs": app.max_lag_secs
            })),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "database unreachable" })),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format, inbox, Salesforce outbox and open-problem gauges
/// refreshed at scrape time.
pub async fn metrics(State(app): State<Ops>) -> Response {
    // Three independent reads, one connection each: the scrape costs the slowest, not the sum.
    let (inbox_depth, outbox_depth, problems) = tokio::join!(
        inbox::depth(&app.pool),
        crate::salesforce::outbox::depth(&app.pool),
        crate::problems::open_counts_beside_inbox(&app.pool),
    );
    let inbox_failed = |depth: &inbox::Depth, status: &str| {
        depth
            .by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, rows)| *rows)
    };
    let problems = match (&inbox_depth, problems) {
        (Ok(depth), Ok(counts)) => Ok(counts.with_inbox(
            inbox_failed(depth, "dead"),
            inbox_failed(depth, "quarantined"),
        )),
        (Err(_), Ok(_)) => crate::problems::open_counts(&app.pool).await,
        (_, Err(e)) => Err(e),
    };
    match inbox_depth {
        Ok(depth) => {
            for (status, rows) in depth.by_status {
                metrics::gauge!("wholesail_inbox_depth", "status" => status).set(rows as f64);
            }
            metrics::gauge!("wholesail_inbox_lag_seconds").set(depth.lag_secs);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: inbox depth unavailable"),
    }
    match outbox_depth {
        Ok((by_status, oldest)) => {
            for (status, rows) in by_status {
                metrics::gauge!("wholesail_salesforce_outbox_depth", "status" => status)
                    .set(rows as f64);
            }
            metrics::gauge!("wholesail_salesforce_outbox_oldest_seconds").set(oldest);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: salesforce outbox depth unavailable"),
    }
    match problems {
        Ok(counts) => {
            for (kind, open) in counts {
                metrics::gauge!("wholesail_problems_open", "kind" => kind.as_str())
                    .set(open as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: open problems unavailable"),
    }
    app.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
