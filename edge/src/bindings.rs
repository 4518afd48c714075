//! The worker's Cloudflare bindings: names as declared in `wrangler.toml`, and the
//! configuration read from them.

use std::cell::OnceCell;
use std::rc::Rc;

use worker::Env;

use crate::config::{ConfigError, EdgeConfig};

/// The queue producer binding (queue `wholesail-webhooks`).
pub const QUEUE: &str = "WEBHOOKS";

/// The R2 bucket binding for oversized and parked envelopes.
pub const BUCKET: &str = "PAYLOADS";

/// The Workers Analytics Engine dataset binding the edge counts into (optional).
pub const COUNTS: &str = "EDGE_COUNTS";

/// The var that says whether counts are also written as JSON log lines
/// ([`crate::count::LineMode`]).
pub const COUNT_LOG_LINES: &str = "COUNT_LOG_LINES";

thread_local! {
    static CONFIG: OnceCell<Rc<EdgeConfig>> = const { OnceCell::new() };
}

/// The configuration from secrets and vars, read once per isolate: bindings cannot change
/// within an isolate (a new deployment or secret starts new ones).
pub fn config(env: &Env) -> Result<Rc<EdgeConfig>, ConfigError> {
    if let Some(cfg) = CONFIG.with(|c| c.get().cloned()) {
        return Ok(cfg);
    }
    let cfg = Rc::new(EdgeConfig::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    })?);
    CONFIG.with(|c| c.get_or_init(|| cfg.clone()).clone());
    Ok(cfg)
}
