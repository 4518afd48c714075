//! The operations console: server-rendered HTML pages at `/console` for the people who run
//! Wholesail, signed in with their scoped API tokens.
//!
//! - [`session`]: sign-in with a token, the session cookie and its row (`console_sessions`),
//!   the [`session::Session`] extractor every page takes;
//! - [`csrf`]: the checks every POST passes (CSRF token, cross-site refusal, `ops:write`)
//!   before its form is read, and the audit row of each write;
//! - [`layout`]: the page frame (navigation, inline CSS), tables and keyset pagers;
//! - [`gauges`]: readings of this process's Prometheus gauges (budgets, breakers, SLOs);
//! - one module per page: [`overview`], [`problems`] (with their actions), [`trace`],
//!   [`catalog`], [`rules`], [`drafts`], [`ownership`], [`salesforce`].
//!
//! The routes are listed in [`crate::auth::routes::ROUTES`] with
//! [`crate::auth::routes::Access::Console`]: the bearer-token guard lets them through and the
//! pages check the session themselves. Lists page by keyset (a cursor in the query string),
//! never by OFFSET. See `README.md` here.

pub mod catalog;
pub mod csrf;
pub mod drafts;
pub mod gauges;
pub mod layout;
pub mod overview;
pub mod ownership;
pub mod problems;
pub mod rules;
pub mod salesforce;
pub mod session;
pub mod trace;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::state::AppState;

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    /// The database pool.
    pub pool: PgPool,
    /// This process's metrics, read for budgets, breakers and SLOs.
    pub metrics: PrometheusHandle,
    /// The readiness lag threshold, shown against the inbox lag.
    pub max_lag_secs: f64,
}

/// The console's routes (the app's [`crate::auth::guard`] goes in front of them and lets them
/// through to their own session check).
pub fn routes<S: Clone + Send + Sync + 'static>(state: &AppState) -> Router<S> {
    Router::new()
        .route("/console", get(overview::page))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/problems", get(problems::list))
        .route("/console/problems/{id}", get(problems::show))
        .route("/console/problems/{id}/{action}", post(problems::act))
        .route("/console/trace", get(trace::page))
        .route("/console/catalog", get(catalog::list))
        .route("/console/catalog/{id}", get(catalog::show))
        .route("/console/catalog/{id}/cancel", post(catalog::cancel))
        .route("/console/rules", get(rules::page))
        .route("/console/drafts", get(drafts::page))
        .route("/console/ownership", get(ownership::page))
        .route("/console/salesforce", get(salesforce::page))
        .with_state(Console {
            pool: state.pool.clone(),
            metrics: state.metrics.clone(),
            max_lag_secs: state.max_lag_secs,
        })
}

/// Why a console request was not answered with its page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: a page redirects to the sign-in form, a POST is refused (401).
    #[error("sign in first")]
    SignIn {
        /// Whether the request was a page (GET), which is redirected.
        page: bool,
    },
    /// The session may not do this (no `ops:write`, or a missing or wrong CSRF token).
    #[error("{0}")]
    Forbidden(String),
    /// No such row.
    #[error("{0}")]
    NotFound(String),
    /// The action does not apply (any more).
    #[error("{0}")]
    Conflict(String),
    /// The form or query is not usable.
    #[error("{0}")]
    BadRequest(String),
    /// The database failed (details logged, never shown).
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = match &self {
            ConsoleError::SignIn { page: true } => {
                return (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, "/console/sign-in")],
                )
                    .into_response()
            }
            ConsoleError::SignIn { page: false } => StatusCode::UNAUTHORIZED,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Database(e) => {
                tracing::error!(error = %e, "console page failed on the database");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (status, layout::error_page(status, &self.to_string())).into_response()
    }
}
