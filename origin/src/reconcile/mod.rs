//! Reconciliation (#15): find and heal drift that webhooks alone leave behind, and record
//! every run (`runs`). Scopes: the shop's webhook subscriptions (`subscriptions`), a window
//! of orders (`orders`, also the install backfill), the catalog with its inventory levels
//! (`catalog`), Salesforce records (`salesforce`) and B2B price lists (`price_lists`); on a
//! schedule (`scheduler`) and on demand (`cli`); runs and findings are read over the admin
//! API (`api`).

use std::time::Duration;

use serde::Deserialize;

pub mod api;
pub mod catalog;
pub mod cli;
pub mod orders;
pub mod price_lists;
pub mod runs;
pub mod salesforce;
pub mod scheduler;
pub mod subscriptions;

/// One scheduled order reconciliation: every `every_ms`, the orders updated in the last
/// `window_hours`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrdersSchedule {
    /// Between two runs.
    pub every_ms: u64,
    /// The window, back from now.
    pub window_hours: u32,
}

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
    /// Scheduled order runs (default: hourly over 48 hours, daily over 30 days); none: off.
    pub orders: Vec<OrdersSchedule>,
    /// `heal` (default) or `report`.
    pub orders_mode: runs::Mode,
    /// Changes younger than this are left to their webhooks (Shopify delivers most within
    /// seconds; retries take longer, and reconciling them early would only race them).
    pub settle_ms: u64,
    /// A shop without any order run yet (just installed) is backfilled this far back: the
    /// quotas need the period's orders.
    pub install_backfill_days: u32,
    /// Between two scheduled catalog runs (0: off). A shop that never had a completed
    /// catalog run gets one at start-up (install).
    pub catalog_interval_ms: u64,
    /// `heal` (default) or `report`.
    pub catalog_mode: runs::Mode,
    /// Between two scheduled Salesforce runs of each connected shop (0: off); the first one
    /// interval after start-up.
    pub salesforce_interval_ms: u64,
    /// The Salesforce runs' `SystemModstamp` window, back from now.
    pub salesforce_window_hours: u32,
    /// `heal` (default) or `report`.
    pub salesforce_mode: runs::Mode,
    /// Between two scheduled price-list runs (0: off); the first one interval after start-up.
    /// A run reads every buyer's price list (about 2,200 cost points per buyer of 200 ruled
    /// variants), so daily by default; rule changes reach Shopify with the rules push.
    pub price_lists_interval_ms: u64,
    /// `heal` (default) or `report`.
    pub price_lists_mode: runs::Mode,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            webhook_uri: None,
            subscriptions_interval_ms: 3_600_000,
            subscriptions_mode: runs::Mode::Heal,
            orders: vec![
                OrdersSchedule {
                    every_ms: 3_600_000,
                    window_hours: 48,
                },
                OrdersSchedule {
                    every_ms: 86_400_000,
                    window_hours: 30 * 24,
                },
            ],
            orders_mode: runs::Mode::Heal,
            settle_ms: 300_000,
            install_backfill_days: 62,
            catalog_interval_ms: 86_400_000,
            catalog_mode: runs::Mode::Heal,
            salesforce_interval_ms: 3_600_000,
            salesforce_window_hours: 48,
            salesforce_mode: runs::Mode::Heal,
            price_lists_interval_ms: 86_400_000,
            price_lists_mode: runs::Mode::Heal,
        }
    }
}

impl Settings {
    /// How order runs wait, downloading from `result_hosts`.
    pub fn orders_timing(&self, catalog: &crate::config::CatalogConfig) -> orders::Timing {
        orders::Timing {
            settle: Duration::from_millis(self.settle_ms),
            poll_interval: Duration::from_millis(catalog.poll_interval_ms.clamp(10, 5_000)),
            bulk_timeout: Duration::from_secs(3_600),
            result_hosts: catalog.result_hosts.clone(),
        }
    }
}
