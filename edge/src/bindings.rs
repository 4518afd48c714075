//! The worker's Cloudflare bindings: names as declared in `wrangler.toml`, and the
//! configuration read from them.

use worker::Env;

use crate::config::{ConfigError, EdgeConfig};

/// The queue producer binding (queue `wholesail-webhooks`).
pub const QUEUE: &str = "WEBHOOKS";

/// The R2 bucket binding for oversized and parked envelopes.
pub const BUCKET: &str = "PAYLOADS";

/// Reads the configuration from secrets and vars.
pub fn config(env: &Env) -> Result<EdgeConfig, ConfigError> {
    EdgeConfig::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    })
}
