//! The limits every API route runs behind (probes and `/metrics` excepted), from tower and
//! tower-http layers:
//!
//! - a concurrency limit shared by all those routes (`http.concurrency_limit`), with load
//!   shedding: a request over the limit is answered 503 with `Retry-After: 1` at once instead
//!   of queueing (counted in `wholesail_http_shed_total`);
//! - a body idle timeout (`http.body_timeout_ms`): a body that sends nothing for that long
//!   fails.
//!
//! Header read timeouts are the server's ([`crate::http_server`]); per-route body caps and the
//! intake request timeout are on the intake routes ([`crate::pipeline::intake::routes`]).

use axum::error_handling::HandleErrorLayer;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::BoxError;
use axum::Router;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::error::Overloaded;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::config::HttpConfig;

/// `router`'s routes behind the concurrency limit, load shedding and the body idle timeout.
pub fn limit<S: Clone + Send + Sync + 'static>(router: Router<S>, http: &HttpConfig) -> Router<S> {
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(refused))
            .load_shed()
            // Global: one semaphore for every route (the router layers each route on its own).
            .layer(GlobalConcurrencyLimitLayer::new(
                http.concurrency_limit.max(1),
            ))
            .layer(RequestBodyTimeoutLayer::new(http.body_timeout())),
    )
}

/// The answer to a request the limits refused.
async fn refused(err: BoxError) -> Response {
    if err.is::<Overloaded>() {
        metrics::counter!("wholesail_http_shed_total").increment(1);
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "overloaded, retry later",
        )
            .into_response()
    } else {
        tracing::error!(error = %err, "request failed in the HTTP limits");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}
