//! `[http]` and `[metrics]`: how the HTTP server protects itself from slow or abusive clients,
//! and who may read `/metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// Timeouts, load shedding and body caps of the HTTP server (`[http]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A connection that has not sent a request's whole header block within this many
    /// milliseconds is closed.
    pub header_timeout_ms: u64,
    /// A request body that sends nothing for this many milliseconds fails (every route).
    pub body_timeout_ms: u64,
    /// An intake request (`/internal/*`, `/webhooks/shopify`) that has not been answered
    /// within this many milliseconds, body upload included, gets 408 and its connection is
    /// closed: a trickled body ends here.
    pub request_timeout_ms: u64,
    /// Requests handled at once, probes and `/metrics` excepted; more get 503 with
    /// `Retry-After` at once instead of queueing.
    pub concurrency_limit: usize,
    /// Largest body of `POST /webhooks/shopify` (direct mode), in bytes; the internal routes
    /// use `max_body_bytes`.
    pub direct_max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            concurrency_limit: 64,
            // The edge's default cap: a 1,000-line order is about 1.2 MB.
            direct_max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

impl HttpConfig {
    /// `header_timeout_ms` as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    /// `body_timeout_ms` as a duration.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms.max(1))
    }

    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }
}

/// Where `/metrics` is served (`[metrics]`); who may read it is an `ops:read` token.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` on this address only (e.g. a private interface), no longer on `bind`.
    pub bind: Option<SocketAddr>,
}
