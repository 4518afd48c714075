//! The shops this origin talks to, and one Admin API client per shop.
//!
//! Each `[[shops]]` entry of the configuration names a shop's myshopify domain, its Admin API
//! access token and, optionally, its base URL (the simulator's, in tests and the demo) and
//! pinned API version. [`Shops`] builds one [`AdminClient`] per shop, once: catalog resyncs,
//! the rules push and draft orders share its cost-bucket pacer, so together they never
//! overdraw the shop's bucket.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Deserialize;
use thiserror::Error;
use wholesail_shopify_admin::{AdminClient, AdminConfig, AdminError};

/// The Admin API version used when a shop does not pin its own.
pub const DEFAULT_API_VERSION: &str = "2026-01";

/// One shop's Admin API access.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopConfig {
    /// The shop's myshopify domain, e.g. `acme.myshopify.com`.
    pub domain: String,
    /// The Admin API base URL; `https://<domain>` when unset.
    pub url: Option<String>,
    /// The Admin API access token.
    pub access_token: SecretString,
    /// The pinned Admin API version; [`DEFAULT_API_VERSION`] when unset.
    pub api_version: Option<String>,
}

/// Why no client could be had for a shop.
#[derive(Debug, Error)]
pub enum ShopError {
    /// The shop is not in the configuration.
    #[error("shop {0} is not configured (add a [[shops]] entry with its access token)")]
    Unknown(String),
    /// Two entries name the same shop (two clients would pace one bucket independently).
    #[error("shop {0} is configured twice")]
    Duplicate(String),
    /// The client could not be built.
    #[error("shop {shop}: {source}")]
    Client {
        /// The shop.
        shop: String,
        /// Why.
        source: AdminError,
    },
}

/// The configured shops, each with its shared client.
#[derive(Debug, Default)]
pub struct Shops {
    clients: HashMap<String, Arc<AdminClient>>,
}

impl Shops {
    /// Builds one client per configured shop; a duplicate domain is an error.
    pub fn new(shops: Vec<ShopConfig>) -> Result<Self, ShopError> {
        let mut clients = HashMap::with_capacity(shops.len());
        for shop in shops {
            let url = shop
                .url
                .unwrap_or_else(|| format!("https://{}", shop.domain));
            let version = shop
                .api_version
                .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
            let client = AdminClient::new(AdminConfig::new(url, version, shop.access_token))
                .map_err(|source| ShopError::Client {
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
    pub fn client(&self, domain: &str) -> Result<Arc<AdminClient>, ShopError> {
        self.clients
            .get(domain)
            .cloned()
            .ok_or_else(|| ShopError::Unknown(domain.to_owned()))
    }

    /// The configured domains, sorted.
    pub fn domains(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.clients.keys().map(String::as_str).collect();
        d.sort_unstable();
        d
    }
}
