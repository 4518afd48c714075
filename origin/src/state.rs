//! [`AppState`]: what every request handler shares. Its own module, so that the feature modules
//! that take it do not import `app`, which imports them.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use wholesail_webhook::{Keyring, ShopifySecrets};

use crate::catalog;
use crate::shops::Shops;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: PgPool,
    /// Keys for envelope signatures.
    pub keyring: Arc<Keyring>,
    /// Shopify secrets for direct mode, when configured.
    pub shopify: Option<Arc<ShopifySecrets>>,
    /// `/readyz` threshold.
    pub max_lag_secs: f64,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
    /// The configured shops, one Admin API client each.
    pub shops: Arc<Shops>,
    /// Drives catalog resyncs.
    pub catalog: catalog::Runner,
}
