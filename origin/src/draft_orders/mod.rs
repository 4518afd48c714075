//! Quote to cash: a B2B quote too large for one draft order (Shopify: ≤ 499 lines) becomes
//! linked draft orders, created asynchronously and idempotently. See `README.md` here for the
//! API, its guarantees, and the split and shipping rules.
//!
//! [`api`] accepts a quote (`POST /v1/draft-orders`) and answers at once with its job; the
//! [`runner::JobLoop`] prices and validates it ([`pricing`], the rules' validators), splits it
//! ([`split`], [`plan`]) and creates the drafts, looking each part up by its deterministic
//! tag before creating it, with every step recorded in PostgreSQL ([`jobs`]); [`callback`]
//! reports the outcome. [`cli`] is `origin draft-orders`.

pub mod api;
pub mod callback;
pub mod cli;
pub mod jobs;
pub mod plan;
pub mod pricing;
pub mod public_addr;
pub mod quote;
pub mod runner;
pub mod split;

use axum::Router;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use runner::JobLoop;

use crate::state::AppState;

/// Wires draft orders into `origin serve`: the API routes (merge them into the app) and the
/// job loops, which run until `shutdown` (await the handle: they release their leases).
pub fn start<S: Clone + Send + Sync + 'static>(
    state: &AppState,
    settings: Settings,
    worker: String,
    shutdown: CancellationToken,
) -> (Router<S>, JoinHandle<()>) {
    let routes = api::router(api::DraftOrdersApi {
        pool: state.pool.clone(),
        shops: state.shops.clone(),
        callbacks: settings.callback_policy(),
    });
    let loops = JobLoop::new(state.pool.clone(), state.shops.clone(), settings, worker);
    (routes, tokio::spawn(loops.run(shutdown)))
}

/// The `[draft_orders]` configuration section.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Most lines per draft (Shopify's limit is 499, API 2025-07+).
    pub line_limit: usize,
    /// Concurrent job loops in this process (0 = accept quotes, process none here).
    pub concurrency: usize,
    /// Claims of a job before a transient failure fails it.
    pub max_attempts: i32,
    /// First retry delay in ms (doubled per attempt, jittered).
    pub backoff_base_ms: u64,
    /// Longest retry delay in ms.
    pub backoff_max_ms: u64,
    /// How long a claim is held; renewed before every Shopify call. Must exceed the Admin
    /// client's longest single call (request timeout × retries when throttled).
    pub lease_ms: u64,
    /// Poll interval when no NOTIFY arrives, in ms.
    pub poll_interval_ms: u64,
    /// Callback attempts before giving up.
    pub callback_max_attempts: i32,
    /// Time allowed for one callback request, in ms.
    pub callback_timeout_ms: u64,
    /// Hosts a `callback_url` may name (`"*"`: any). Empty by default: origin does not send
    /// requests to hosts an operator has not listed (a quote could otherwise aim origin at
    /// internal services). Whatever is listed, callbacks only connect to public addresses
    /// ([`public_addr`]) and never follow redirects.
    pub callback_hosts: Vec<String>,
}

/// Which callback URLs a quote may name.
#[derive(Clone, Debug, Default)]
pub struct CallbackPolicy {
    /// Whether the submitting token has a callback secret (callbacks are always signed, with
    /// that secret; the CLI has none).
    pub signed: bool,
    /// The allowed hosts (`"*"`: any).
    pub hosts: Vec<String>,
}

impl CallbackPolicy {
    /// Why `url` may not be called back, if it may not.
    pub fn refusal(&self, url: &str) -> Option<String> {
        let host = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .and_then(|u| u.host_str().map(str::to_owned));
        let Some(host) = host else {
            return Some("callback_url must be an http(s) URL".into());
        };
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
            if !public_addr::is_public(ip) {
                return Some(format!(
                    "callback_url host {host} is not a public address (whatever callback_hosts says)"
                ));
            }
        }
        if !self.signed {
            return Some(
                "callback_url needs an integrator token with a callback secret \
                 (origin tokens create --scope integrator --callback-secret)"
                    .into(),
            );
        }
        let listed = self
            .hosts
            .iter()
            .any(|h| h == "*" || h.eq_ignore_ascii_case(&host));
        (!listed).then(|| format!("callback_url host {host} is not in draft_orders.callback_hosts"))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            line_limit: wholesail_shopify_admin::draft_orders::MAX_LINES,
            concurrency: 2,
            max_attempts: 10,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            lease_ms: 300_000,
            poll_interval_ms: 1_000,
            callback_max_attempts: 12,
            callback_timeout_ms: 10_000,
            callback_hosts: Vec::new(),
        }
    }
}

impl Settings {
    /// The callback URLs quotes may name (`signed` is the submitting token's to set).
    pub fn callback_policy(&self) -> CallbackPolicy {
        CallbackPolicy {
            signed: false,
            hosts: self.callback_hosts.clone(),
        }
    }

    /// Why these settings cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        let max = wholesail_shopify_admin::draft_orders::MAX_LINES;
        if self.line_limit == 0 || self.line_limit > max {
            return Err(format!("draft_orders.line_limit must be 1..={max}"));
        }
        if self.max_attempts < 1 || self.callback_max_attempts < 1 {
            return Err("draft_orders.max_attempts and callback_max_attempts must be ≥ 1".into());
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            return Err("draft_orders.backoff_base_ms must be > 0 and ≤ backoff_max_ms".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_go_only_to_listed_hosts_and_only_signed() {
        let policy = |signed: bool, hosts: &[&str]| CallbackPolicy {
            signed,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        };
        let erp = "https://ERP.example.com/hooks/quotes";
        assert_eq!(policy(true, &["erp.example.com"]).refusal(erp), None);
        assert_eq!(policy(true, &["*"]).refusal(erp), None);
        let refused = |p: CallbackPolicy, url: &str| p.refusal(url).unwrap_or_default();
        assert!(refused(policy(true, &[]), erp).contains("not in draft_orders.callback_hosts"));
        assert!(refused(
            policy(true, &["erp.example.com"]),
            "http://169.254.169.254/latest"
        )
        .contains("169.254.169.254 is not a public address"));
        for inside in [
            "http://127.0.0.1:8080/x",
            "http://10.0.0.5/x",
            "http://[::1]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://2130706433/x",
            "http://0.0.0.0/x",
        ] {
            assert!(
                refused(policy(true, &["*"]), inside).contains("not a public address"),
                "{inside}"
            );
        }
        assert!(refused(policy(false, &["*"]), erp).contains("callback secret"));
        assert!(refused(policy(true, &["*"]), "ftp://erp.example.com/x").contains("http(s)"));
        assert!(refused(policy(true, &["*"]), "not a url").contains("http(s)"));
    }
}
