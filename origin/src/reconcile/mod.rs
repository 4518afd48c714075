//! Reconciliation (#15): find and heal drift that webhooks alone leave behind, and record
//! every run (`runs`). Built so far: the shop's webhook subscriptions (`subscriptions`), on a
//! schedule (`scheduler`) and on demand (`cli`); runs and findings are read over the admin
//! API (`api`).

use serde::Deserialize;

pub mod api;
pub mod cli;
pub mod price_lists;
pub mod runs;
pub mod salesforce;
pub mod scheduler;
pub mod subscriptions;

/// `[reconcile]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The edge's `POST /webhooks` address every subscription must point at; without it,
    /// subscriptions are not reconciled.
    pub webhook_uri: Option<String>,
    /// Between two scheduled subscription runs (the first at start-up).
    pub subscriptions_interval_ms: u64,
    /// `heal` (default) or `report`.
    pub subscriptions_mode: runs::Mode,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            webhook_uri: None,
            subscriptions_interval_ms: 3_600_000,
            subscriptions_mode: runs::Mode::Heal,
        }
    }
}
