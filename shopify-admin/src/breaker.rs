//! A circuit breaker per shop ([`wholesail_breaker`]), shared by everything that uses the
//! shop's [`AdminClient`] (catalog resyncs, the rules push, draft orders).
//!
//! Failures that count towards opening it: HTTP 5xx, timeouts, connection failures and 401
//! (Shopify's answer once the app is uninstalled). Throttling (429, `THROTTLED`) and 403 leave
//! the count unchanged; any other answer (data, user or GraphQL errors) resets it. While it is
//! open requests fail at once with [`AdminError::CircuitOpen`]. The state is exported as the
//! gauge `wholesail_shop_breaker_state{shop}` (0 closed, 1 half-open, 2 open).
//!
//! [`AdminClient`]: crate::AdminClient
//! [`AdminError::CircuitOpen`]: crate::AdminError::CircuitOpen

pub use wholesail_breaker::{Breaker, BreakerConfig, BreakerState, Outcome, PROBE_PENDING_WAIT};

/// The gauge that exports each shop's breaker state.
pub const STATE_METRIC: &str = "wholesail_shop_breaker_state";

/// A closed breaker for `shop` (its myshopify domain, the metric label).
pub(crate) fn for_shop(shop: String, config: BreakerConfig) -> Breaker {
    Breaker::new(
        wholesail_breaker::Gauge {
            metric: STATE_METRIC,
            label: "shop",
            value: shop,
        },
        config,
    )
}
