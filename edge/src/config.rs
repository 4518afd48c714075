//! The worker's configuration, read once per invocation from its bindings (wrangler `vars`
//! and secrets) into a typed struct.
//!
//! Secrets (`SHOPIFY_SECRET`, `SHOPIFY_PREVIOUS_SECRET`, `EDGE_SIGNING_KEY`) go straight into the
//! contract crate's redacting types and are never logged. Each must have at least
//! [`wholesail_webhook::MIN_SECRET_BYTES`] bytes, as origin requires: a weak one makes the configuration invalid,
//! so the first request answers 500 and logs which binding is weak (never its value).

use thiserror::Error;
use wholesail_webhook::{
    require_strong, ShopDomain, ShopifySecrets, SignatureError, SigningKey, WeakSecret,
};

use crate::backoff::RetryPolicy;

/// Everything the worker needs besides its queue and bucket bindings.
#[derive(Debug)]
pub struct EdgeConfig {
    /// What accepting a Shopify delivery needs.
    pub intake: IntakeConfig,
    /// What forwarding queued envelopes to origin needs.
    pub forward: ForwardConfig,
}

/// What `POST /webhooks` needs.
#[derive(Debug)]
pub struct IntakeConfig {
    /// The app's current and previous Shopify client secret.
    pub secrets: ShopifySecrets,
    /// Which shops may deliver; empty means every shop.
    pub shops: ShopAllowlist,
    /// Bodies larger than this are refused with 413 before they are read whole.
    pub max_body_bytes: usize,
}

/// What the queue consumers need.
#[derive(Debug)]
pub struct ForwardConfig {
    /// The key batches to origin are signed with.
    pub signing_key: SigningKey,
    /// Origin's base URL, without a trailing slash (`https://origin.example.com`).
    pub origin_url: String,
    /// How long one request to origin may take before the batch is retried.
    pub origin_timeout_ms: u64,
    /// Delays between deliveries of a message origin did not confirm.
    pub retry: RetryPolicy,
    /// The name of the dead-letter queue: batches from it go to origin's dead-letter intake.
    pub dead_letter_queue: String,
    /// On the dead-letter queue, a message that origin still has not confirmed after this many
    /// deliveries is parked in R2 (`undelivered/`) instead of being retried once more, so the
    /// dead-letter queue's own retry limit never discards it.
    pub park_after_attempts: u32,
}

/// The shops allowed to deliver webhooks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShopAllowlist(Vec<ShopDomain>);

impl ShopAllowlist {
    /// Parses a comma- or whitespace-separated list of `*.myshopify.com` domains; an empty list
    /// allows every shop.
    pub fn parse(list: &str) -> Result<Self, &'static str> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(ShopDomain::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(ShopAllowlist)
    }

    /// Whether `shop` may deliver.
    pub fn allows(&self, shop: &ShopDomain) -> bool {
        self.0.is_empty() || self.0.contains(shop)
    }
}

/// A configuration value that is missing or unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required binding is not set.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A binding is set to something unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The binding's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret binding is empty or shorter than [`wholesail_webhook::MIN_SECRET_BYTES`].
    #[error(transparent)]
    Weak(#[from] WeakSecret),
}

/// Default body cap: Shopify bodies can exceed 1 MB (a 1,000-line order is ~1.2 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// `DEAD_LETTER_QUEUE` when unset: the dead-letter queue in `wrangler.toml`.
pub const DEFAULT_DEAD_LETTER_QUEUE: &str = "wholesail-webhooks-dlq";

impl EdgeConfig {
    /// Reads the configuration through `lookup`, which returns a binding's text (a var or a
    /// secret) or `None` when it is not bound.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .map_err(|e: std::num::ParseIntError| ConfigError::Invalid {
                        name,
                        reason: e.to_string(),
                    })
            })
        };

        let strong = |name: &'static str, value: String| -> Result<String, ConfigError> {
            require_strong(name, value.as_bytes())?;
            Ok(value)
        };
        let secrets = ShopifySecrets::new(
            strong("SHOPIFY_SECRET", required("SHOPIFY_SECRET")?)?,
            get("SHOPIFY_PREVIOUS_SECRET")
                .map(|p| strong("SHOPIFY_PREVIOUS_SECRET", p))
                .transpose()?,
        );
        let signing_key = SigningKey::new(
            required("EDGE_SIGNING_KEY_ID")?,
            strong("EDGE_SIGNING_KEY", required("EDGE_SIGNING_KEY")?)?,
        )
        .map_err(|e: SignatureError| ConfigError::Invalid {
            name: "EDGE_SIGNING_KEY_ID",
            reason: e.to_string(),
        })?;
        let shops =
            ShopAllowlist::parse(&get("SHOP_ALLOWLIST").unwrap_or_default()).map_err(|r| {
                ConfigError::Invalid {
                    name: "SHOP_ALLOWLIST",
                    reason: r.to_owned(),
                }
            })?;
        let origin_url = required("ORIGIN_URL")?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if !(origin_url.starts_with("https://") || origin_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "ORIGIN_URL",
                reason: "must start with https:// or http://".into(),
            });
        }
        let retry = RetryPolicy {
            base_secs: number("RETRY_BASE_DELAY_SECS", 30)?,
            max_secs: number("RETRY_MAX_DELAY_SECS", 3_600)?,
        };
        let intake = IntakeConfig {
            secrets,
            shops,
            max_body_bytes: usize::try_from(number(
                "MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES as u64,
            )?)
            .unwrap_or(usize::MAX),
        };
        let forward = ForwardConfig {
            signing_key,
            origin_url,
            origin_timeout_ms: number("ORIGIN_TIMEOUT_MS", 15_000)?,
            retry,
            dead_letter_queue: get("DEAD_LETTER_QUEUE")
                .unwrap_or_else(|| DEFAULT_DEAD_LETTER_QUEUE.to_owned()),
            park_after_attempts: u32::try_from(number("DLQ_PARK_AFTER_ATTEMPTS", 10)?)
                .unwrap_or(u32::MAX)
                .max(1),
        };
        Ok(EdgeConfig { intake, forward })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("SHOPIFY_SECRET", "shpss_0123456789abcdef0123456789abcdef"),
        ("EDGE_SIGNING_KEY_ID", "edge-1"),
        ("EDGE_SIGNING_KEY", "edge-signing-key-0123456789abcdef0123"),
        ("ORIGIN_URL", "https://origin.example.com/"),
    ];

    #[test]
    fn minimal_configuration_gets_defaults() {
        let c = EdgeConfig::from_lookup(lookup(MINIMAL)).unwrap();
        assert_eq!(c.forward.origin_url, "https://origin.example.com");
        assert_eq!(c.intake.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.forward.dead_letter_queue, "wholesail-webhooks-dlq");
        assert_eq!(c.forward.retry.base_secs, 30);
        assert!(c
            .intake
            .shops
            .allows(&ShopDomain::parse("any.myshopify.com").unwrap()));
    }

    #[test]
    fn each_required_binding_is_named_when_missing() {
        for (name, _) in MINIMAL {
            let rest: Vec<_> = MINIMAL.iter().copied().filter(|(n, _)| n != name).collect();
            let err = EdgeConfig::from_lookup(lookup(&rest)).unwrap_err();
            assert!(
                matches!(err, ConfigError::Missing(n) if n == *name),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn invalid_numbers_and_urls_are_refused_with_the_binding_name() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("MAX_BODY_BYTES", "lots"));
        let err = EdgeConfig::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "MAX_BODY_BYTES",
                ..
            }
        ));

        let mut pairs = MINIMAL.to_vec();
        pairs[3] = ("ORIGIN_URL", "origin.example.com");
        let err = EdgeConfig::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "ORIGIN_URL",
                ..
            }
        ));
    }

    #[test]
    fn shop_allowlist_admits_only_listed_shops() {
        let list = ShopAllowlist::parse("a.myshopify.com, B.myshopify.com").unwrap();
        assert!(list.allows(&ShopDomain::parse("a.myshopify.com").unwrap()));
        assert!(list.allows(&ShopDomain::parse("b.myshopify.com").unwrap()));
        assert!(!list.allows(&ShopDomain::parse("c.myshopify.com").unwrap()));
        assert!(ShopAllowlist::parse("evil.example.com").is_err());
    }

    #[test]
    fn configuration_debug_output_hides_secrets() {
        let mut pairs = MINIMAL.to_vec();
        pairs[0] = ("SHOPIFY_SECRET", "very-secret-shopify-0123456789abcdef");
        pairs[2] = ("EDGE_SIGNING_KEY", "very-secret-signing-0123456789abcdef");
        let shown = format!("{:?}", EdgeConfig::from_lookup(lookup(&pairs)).unwrap());
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn a_weak_secret_is_refused_by_binding_name_without_its_value() {
        for (name, index) in [
            ("SHOPIFY_SECRET", Some(0)),
            ("EDGE_SIGNING_KEY", Some(2)),
            ("SHOPIFY_PREVIOUS_SECRET", None),
        ] {
            let mut pairs = MINIMAL.to_vec();
            match index {
                Some(i) => pairs[i] = (name, "weak-value"),
                None => pairs.push((name, "weak-value")),
            }
            let err = EdgeConfig::from_lookup(lookup(&pairs)).unwrap_err();
            assert_eq!(err, ConfigError::Weak(WeakSecret::TooShort(name.into())));
            let shown = err.to_string();
            assert!(
                shown.contains(name) && !shown.contains("weak-value"),
                "{shown}"
            );
        }
    }
}
