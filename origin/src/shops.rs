//! The shops this origin talks to, and one Admin API client per shop.
//!
//! Each `[[shops]]` entry of the configuration names a shop's myshopify domain, its Admin API
//! access token and, optionally, its base URL (the simulator's, in tests and the demo) and
//! pinned API version. [`Shops`] builds one [`AdminClient`] per shop, once: catalog resyncs,
//! the rules push and draft orders share its cost-bucket pacer, so together they never
//! overdraw the shop's bucket, and its circuit breaker: when a shop's API keeps failing
//! (5xx storms, 401 after an uninstall) all three back off together ([`BreakerSettings`],
//! `[shop_breaker]` in the configuration; state exported as `wholesail_shop_breaker_state`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;
use wholesail_shopify_admin::{AdminClient, AdminConfig, AdminError, BreakerConfig};
use wholesail_webhook::ShopDomain;

/// The Admin API version used when a shop does not pin its own.
pub const DEFAULT_API_VERSION: &str = "2026-01";

/// One shop's Admin API access.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopConfig {
    /// The shop's myshopify domain, e.g. `acme.myshopify.com`.
    pub domain: ShopDomain,
    /// The Admin API base URL; `https://<domain>` when unset.
    pub url: Option<String>,
    /// The Admin API access token.
    pub access_token: SecretString,
    /// The pinned Admin API version; [`DEFAULT_API_VERSION`] when unset.
    pub api_version: Option<String>,
}

/// The per-shop circuit breaker (`[shop_breaker]`): see [`wholesail_shopify_admin::breaker`].
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Consecutive failed Admin API attempts (5xx, timeout, connection failure, 401) that
    /// open a shop's breaker.
    pub failure_threshold: u32,
    /// The first cool-down in milliseconds; doubled after each failed probe.
    pub cool_down_ms: u64,
    /// The longest cool-down in milliseconds.
    pub max_cool_down_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        let d = BreakerConfig::default();
        BreakerSettings {
            failure_threshold: d.failure_threshold,
            cool_down_ms: d.cool_down.as_millis() as u64,
            max_cool_down_ms: d.max_cool_down.as_millis() as u64,
        }
    }
}

impl BreakerSettings {
    /// The client's breaker configuration.
    pub fn config(&self) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: self.failure_threshold.max(1),
            cool_down: Duration::from_millis(self.cool_down_ms.max(1)),
            max_cool_down: Duration::from_millis(self.max_cool_down_ms.max(self.cool_down_ms)),
        }
    }
}

/// Why no client could be had for a shop.
#[derive(Debug, Error)]
pub enum ShopError {
    /// The shop is not in the configuration.
    #[error("shop {0} is not configured (add a [[shops]] entry with its access token)")]
    Unknown(ShopDomain),
    /// Two entries name the same shop (two clients would pace one bucket independently).
    #[error("shop {0} is configured twice")]
    Duplicate(ShopDomain),
    /// The client could not be built.
    #[error("shop {shop}: {source}")]
    Client {
        /// The shop.
        shop: ShopDomain,
        /// Why.
        source: AdminError,
    },
}

/// The configured shops, each with its shared client.
#[derive(Debug, Default)]
pub struct Shops {
    clients: HashMap<ShopDomain, Arc<AdminClient>>,
}

impl Shops {
    /// Builds one client per configured shop with the default breaker; a duplicate domain is
    /// an error.
    pub fn new(shops: Vec<ShopConfig>) -> Result<Self, ShopError> {
        Self::with_breaker(shops, BreakerConfig::default())
    }

    /// Like [`Shops::new`], each shop's client with a breaker configured by `breaker`.
    pub fn with_breaker(shops: Vec<ShopConfig>, breaker: BreakerConfig) -> Result<Self, ShopError> {
        let mut clients = HashMap::with_capacity(shops.len());
        for shop in shops {
            let url = shop
                .url
                .unwrap_or_else(|| format!("https://{}", shop.domain));
            let version = shop
                .api_version
                .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
            let mut config = AdminConfig::new(url, version, shop.access_token);
            config.shop = shop.domain.to_string();
            config.breaker = breaker;
            let client = AdminClient::new(config).map_err(|source| ShopError::Client {
                shop: shop.domain.clone(),
                source,
            })?;
            if clients
                .insert(shop.domain.clone(), Arc::new(client))
                .is_some()
            {
                return Err(ShopError::Duplicate(shop.domain));
            }
        }
        Ok(Shops { clients })
    }

    /// The client of `domain`.
    pub fn client(&self, domain: &ShopDomain) -> Result<Arc<AdminClient>, ShopError> {
        self.clients
            .get(domain)
            .cloned()
            .ok_or_else(|| ShopError::Unknown(domain.clone()))
    }

    /// The configured domains, sorted.
    pub fn domains(&self) -> Vec<&ShopDomain> {
        let mut d: Vec<&ShopDomain> = self.clients.keys().collect();
        d.sort_unstable();
        d
    }
}
