//! Known timing: the end-to-end latency of each sync stage against its objective (`[slo]`).
//!
//! Each stage has an objective (seconds) and a target ratio: "99 % of orders are applied within
//! 60 s of Shopify triggering the webhook". Every observation is recorded twice:
//! - `wholesail_e2e_latency_seconds{stage}` histogram (buckets around the objectives);
//! - `wholesail_slo_events_total{stage,result}` counter, `result` = `good` (within the
//!   objective) or `bad`, from which the alert rules compute multi-window burn rates.
//!
//! [`install`] (at start-up) exports the configured `wholesail_slo_objective_seconds{stage}`
//! and `wholesail_slo_target_ratio{stage}` gauges, so the alert rules read the objectives from
//! the process instead of repeating them.
//!
//! Where each stage is measured:
//! - `shopify_to_applied`: Shopify's `triggered_at` → the applied event's done mark
//!   (`pipeline::runner`);
//! - `applied_to_salesforce`: the outbox row's enqueue (the handler's transaction) → its done
//!   mark after Salesforce committed (`salesforce::runner`, live lane only);
//! - `rule_to_metafield`: a rule edit's `rules_dirty` mark → the push that made the buyer's
//!   metafields current (`rules::scheduler`);
//! - `order_to_quota`: the mark of an order of a buyer with quotas → the push that carries the
//!   new quota use (`rules::scheduler`).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The buckets of `wholesail_e2e_latency_seconds` (seconds): fine around the default
/// objectives (60 s to 600 s) and up to an hour.
pub const BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// A measured stage of the sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Shopify `triggered_at` → applied by a worker.
    ShopifyToApplied,
    /// Applied → committed in Salesforce.
    AppliedToSalesforce,
    /// Rule change → the buyer's metafields live.
    RuleToMetafield,
    /// An order that uses a buyer's quota → the push carrying the new quota use.
    OrderToQuota,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 4] = [
        Stage::ShopifyToApplied,
        Stage::AppliedToSalesforce,
        Stage::RuleToMetafield,
        Stage::OrderToQuota,
    ];

    /// The `stage` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::ShopifyToApplied => "shopify_to_applied",
            Stage::AppliedToSalesforce => "applied_to_salesforce",
            Stage::RuleToMetafield => "rule_to_metafield",
            Stage::OrderToQuota => "order_to_quota",
        }
    }
}

/// One stage's objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// An observation within this many seconds is good.
    pub objective_secs: f64,
    /// The share of good observations the stage promises (e.g. 0.99).
    pub target_ratio: f64,
}

/// The objectives (`[slo]` in the configuration; each stage a table, e.g.
/// `[slo.shopify_to_applied] objective_secs = 60, target_ratio = 0.99`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Shopify `triggered_at` → applied (default 60 s, 0.99).
    pub shopify_to_applied: Objective,
    /// Applied → Salesforce committed (default 300 s, 0.99).
    pub applied_to_salesforce: Objective,
    /// Rule change → metafield live (default 600 s, 0.99).
    pub rule_to_metafield: Objective,
    /// Order → quota visible at checkout (default 120 s, 0.99).
    pub order_to_quota: Objective,
}

impl Default for Settings {
    fn default() -> Self {
        let o = |objective_secs| Objective {
            objective_secs,
            target_ratio: 0.99,
        };
        Settings {
            shopify_to_applied: o(60.0),
            applied_to_salesforce: o(300.0),
            rule_to_metafield: o(600.0),
            order_to_quota: o(120.0),
        }
    }
}

impl Settings {
    /// The objective of `stage`.
    pub fn objective(&self, stage: Stage) -> Objective {
        match stage {
            Stage::ShopifyToApplied => self.shopify_to_applied,
            Stage::AppliedToSalesforce => self.applied_to_salesforce,
            Stage::RuleToMetafield => self.rule_to_metafield,
            Stage::OrderToQuota => self.order_to_quota,
        }
    }

    /// Checks that objectives are positive and ratios in (0, 1).
    pub fn validate(&self) -> Result<(), String> {
        for stage in Stage::ALL {
            let o = self.objective(stage);
            if !(o.objective_secs > 0.0 && o.objective_secs.is_finite()) {
                return Err(format!("slo.{}.objective_secs must be > 0", stage.as_str()));
            }
            if !(o.target_ratio > 0.0 && o.target_ratio < 1.0) {
                return Err(format!(
                    "slo.{}.target_ratio must be between 0 and 1 (exclusive)",
                    stage.as_str()
                ));
            }
        }
        Ok(())
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Makes `settings` the process's objectives (the first call wins) and exports their gauges.
pub fn install(settings: Settings) {
    let settings = *SETTINGS.get_or_init(|| settings);
    for stage in Stage::ALL {
        let o = settings.objective(stage);
        metrics::gauge!("wholesail_slo_objective_seconds", "stage" => stage.as_str())
            .set(o.objective_secs);
        metrics::gauge!("wholesail_slo_target_ratio", "stage" => stage.as_str())
            .set(o.target_ratio);
    }
}

/// The objectives in force: the installed ones, else the defaults.
pub fn settings() -> Settings {
    SETTINGS.get().copied().unwrap_or_default()
}

/// Whether `secs` meets `stage`'s objective.
pub fn is_good(settings: &Settings, stage: Stage, secs: f64) -> bool {
    secs <= settings.objective(stage).objective_secs
}

/// Records one end-to-end latency of `stage` (negative values, from clock skew, count as 0).
pub fn observe(stage: Stage, secs: f64) {
    let secs = secs.max(0.0);
    let result = if is_good(&settings(), stage, secs) {
        "good"
    } else {
        "bad"
    };
    metrics::histogram!("wholesail_e2e_latency_seconds", "stage" => stage.as_str()).record(secs);
    metrics::counter!("wholesail_slo_events_total", "stage" => stage.as_str(), "result" => result)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_means_within_the_objective() {
        let s = Settings::default();
        assert!(is_good(&s, Stage::ShopifyToApplied, 60.0));
        assert!(!is_good(&s, Stage::ShopifyToApplied, 60.5));
        assert!(is_good(&s, Stage::RuleToMetafield, 599.0));
    }

    #[test]
    fn ratios_outside_zero_one_are_refused() {
        let mut s = Settings::default();
        assert!(s.validate().is_ok());
        s.order_to_quota.target_ratio = 1.0;
        assert_eq!(
            s.validate().unwrap_err(),
            "slo.order_to_quota.target_ratio must be between 0 and 1 (exclusive)"
        );
    }
}
