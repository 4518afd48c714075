//! What each shop's API use looks like from here, exported as Prometheus metrics (labelled by
//! the shop's myshopify domain, [`AdminConfig::shop`](crate::AdminConfig::shop)):
//!
//! - `wholesail_shopify_requests_total{shop,result}` counter: one per attempt; `ok`,
//!   `throttled` (THROTTLED or 429: Shopify did not run it), `retried` (another transient
//!   failure: 5xx, timeout, connection) or `failed` (an answer that is not retried);
//! - `wholesail_shopify_throttled_total{shop}` counter: the `throttled` attempts;
//! - `wholesail_shopify_cost_points_total{shop}` counter: cost points Shopify charged
//!   (`actualQueryCost`);
//! - `wholesail_shopify_bucket_available_points{shop}` and
//!   `wholesail_shopify_bucket_maximum_points{shop}` gauges: the cost bucket as the last
//!   response's `throttleStatus` reported it.

use crate::pacing::QueryCost;

/// How one attempt ended, as the `result` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttemptResult {
    /// Data (possibly with user errors).
    Ok,
    /// THROTTLED or HTTP 429.
    Throttled,
    /// Another failure that is retried.
    Retried,
    /// A failure that is not retried.
    Failed,
}

impl AttemptResult {
    fn label(self) -> &'static str {
        match self {
            AttemptResult::Ok => "ok",
            AttemptResult::Throttled => "throttled",
            AttemptResult::Retried => "retried",
            AttemptResult::Failed => "failed",
        }
    }
}

/// Records one attempt for `shop`, with the cost Shopify reported for it.
pub(crate) fn record(shop: &str, result: AttemptResult, cost: Option<&QueryCost>) {
    metrics::counter!("wholesail_shopify_requests_total",
        "shop" => shop.to_owned(), "result" => result.label())
    .increment(1);
    if result == AttemptResult::Throttled {
        metrics::counter!("wholesail_shopify_throttled_total", "shop" => shop.to_owned())
            .increment(1);
    }
    let Some(cost) = cost else { return };
    if let Some(charged) = cost.actual_query_cost {
        metrics::counter!("wholesail_shopify_cost_points_total", "shop" => shop.to_owned())
            .increment(u64::from(charged));
    }
    let bucket = cost.throttle_status;
    metrics::gauge!("wholesail_shopify_bucket_available_points", "shop" => shop.to_owned())
        .set(bucket.currently_available);
    metrics::gauge!("wholesail_shopify_bucket_maximum_points", "shop" => shop.to_owned())
        .set(bucket.maximum_available);
}
