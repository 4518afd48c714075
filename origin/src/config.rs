//! Typed configuration, loaded once at start-up.
//!
//! Layers, later ones winning: built-in defaults → a TOML file (`--config`, or
//! `WHOLESAIL_CONFIG`) → environment variables prefixed `WHOLESAIL_`, with `__` between
//! nesting levels (`WHOLESAIL_WORKER__CONCURRENCY=4`, `WHOLESAIL_SHOPIFY__SECRET=…`).
//! `DATABASE_URL` (sqlx's variable) sits between the defaults and the file: `database_url` in
//! the file or `WHOLESAIL_DATABASE_URL` win over it.
//! Every secret is a [`SecretString`]: its `Debug` output is redacted, so printing the config
//! cannot leak it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use wholesail_webhook::{Keyring, ShopifySecrets, SigningKey};

use crate::shops::{ShopConfig, Shops};

pub mod http;
pub mod secrets;

pub use http::{HttpConfig, MetricsConfig};

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A layer could not be read or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// The values parsed but do not make sense together.
    #[error("configuration: {0}")]
    Invalid(String),
    /// A secret or token is empty or too short to be safe.
    #[error("configuration: {0}")]
    WeakSecret(#[from] wholesail_webhook::WeakSecret),
}

/// The whole origin configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on (`127.0.0.1:0` picks a free port).
    pub bind: SocketAddr,
    /// PostgreSQL connection URL (may hold a password, hence secret).
    pub database_url: SecretString,
    /// Maximum connections in the pool.
    pub pool_size: u32,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Shopify app secrets for direct mode (`POST /webhooks/shopify`).
    #[serde(default)]
    pub shopify: ShopifyConfig,
    /// Keys the edge signs envelopes with.
    #[serde(default)]
    pub internal: InternalConfig,
    /// Formerly the admin token; now refused (tokens are created with `origin tokens`).
    #[serde(default)]
    pub admin: RetiredAdminConfig,
    /// Inbox workers.
    pub worker: WorkerConfig,
    /// Readiness thresholds.
    pub readiness: ReadinessConfig,
    /// Catalog resyncs run by the server.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// The shops whose Admin API origin calls (catalog resync, rules push, draft orders).
    #[serde(default)]
    pub shops: Vec<ShopConfig>,
    /// Draft orders from B2B quotes (`[draft_orders]`).
    #[serde(default)]
    pub draft_orders: crate::draft_orders::Settings,
    /// The background rules push (`[rules]`: quiet_ms, max_delay_ms, poll_interval_ms).
    #[serde(default)]
    pub rules: crate::rules::scheduler::Settings,
    /// Each shop's Admin API circuit breaker (`[shop_breaker]`).
    #[serde(default)]
    pub shop_breaker: crate::shops::BreakerSettings,
    /// Inbox retention (`[inbox]`: retention_days, purge_batch, purge_interval_ms).
    #[serde(default)]
    pub inbox: crate::pipeline::retention::Settings,
    /// Timeouts, load shedding and body caps of the HTTP server (`[http]`).
    #[serde(default)]
    pub http: HttpConfig,
    /// Who may read `/metrics` (`[metrics]`: bind, token).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Salesforce orgs and the sync (`[salesforce]`, `[[salesforce.orgs]]`).
    #[serde(default)]
    pub salesforce: crate::salesforce::SalesforceConfig,
    /// Reconciliation (`[reconcile]`: webhook_uri, subscriptions_interval_ms,
    /// subscriptions_mode).
    #[serde(default)]
    pub reconcile: crate::reconcile::Settings,
    /// End-to-end latency objectives per stage (`[slo.<stage>]`: objective_secs,
    /// target_ratio).
    #[serde(default)]
    pub slo: crate::slo::Settings,
}

/// Shopify app client secrets: current and, during a rotation, previous.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    /// The current client secret; direct mode answers 503 when unset.
    pub secret: Option<SecretString>,
    /// The previous client secret, accepted for the hour after a rotation.
    pub previous_secret: Option<SecretString>,
}

/// The internal keyring for envelopes signed by the edge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalConfig {
    /// Accepted keys, by id.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// How far a signature's timestamp may be from now, in seconds.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
    /// Whether the intakes still accept v1 signatures (no path bound), for edges deployed
    /// before v2. On by default during the rollout; set it to `false` once every edge signs
    /// v2 (`wholesail_intake_signatures_total{version="v1"}` stays flat).
    #[serde(default = "default_accept_v1")]
    pub accept_v1: bool,
}

impl Default for InternalConfig {
    fn default() -> Self {
        InternalConfig {
            keys: Vec::new(),
            tolerance_secs: default_tolerance(),
            accept_v1: default_accept_v1(),
        }
    }
}

fn default_accept_v1() -> bool {
    true
}

fn default_tolerance() -> i64 {
    300
}

/// One envelope signing key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key id the edge puts in `kid=`.
    pub id: String,
    /// The shared secret.
    pub secret: SecretString,
}

/// The former admin section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredAdminConfig {
    /// The former single admin token: refused with a pointer to `origin tokens create`, so a
    /// deployment relying on it fails loudly instead of locking its operators out.
    pub token: Option<SecretString>,
}

/// Inbox worker settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Concurrent claim loops in this process (0 = intake only).
    pub concurrency: usize,
    /// Rows claimed per batch.
    pub batch_size: i64,
    /// Most payload bytes (as Shopify sent them) claimed per batch, at least one row: bounds
    /// how long a batch's first event waits for its last.
    pub batch_bytes: i64,
    /// Most rows of one shop in one claim (fairness); the share grows when fewer shops wait.
    pub per_shop: i64,
    /// Claims (attempts) before a transiently failing event becomes a dead letter.
    pub max_attempts: i32,
    /// First retry delay in milliseconds; doubled per attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds.
    pub backoff_max_ms: u64,
    /// How long a claim is held before another worker may reclaim it, in milliseconds.
    pub lease_ms: u64,
    /// Poll interval when no NOTIFY arrives, in milliseconds.
    pub poll_interval_ms: u64,
    /// On SIGTERM, how long in-flight batches may run before they are released, in ms.
    pub shutdown_grace_ms: u64,
}

impl Default for WorkerConfig {
    /// The service's defaults (the `[worker]` table of the README).
    fn default() -> Self {
        WorkerConfig {
            concurrency: 2,
            batch_size: 50,
            batch_bytes: 1024 * 1024,
            per_shop: 10,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_600_000,
            lease_ms: 60_000,
            poll_interval_ms: 1_000,
            shutdown_grace_ms: 20_000,
        }
    }
}

impl WorkerConfig {
    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

/// Catalog resyncs run by the server (`POST /admin/catalog/resync`, resumed at start-up).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Between two `bulkOperation(id:)` polls, in milliseconds; the `bulk_operations/finish`
    /// webhook wakes a waiting run earlier.
    pub poll_interval_ms: u64,
    /// How often the server looks for active runs without a driver (their process died) and
    /// takes them over, in milliseconds.
    pub adopt_interval_ms: u64,
    /// Hosts a bulk result file may be downloaded from, https only (exact names, or
    /// `*.domain` for subdomains); a result on the shop's own Admin API origin (the simulator
    /// in development: a `[[shops]]` `url`) is always allowed.
    pub result_hosts: Vec<String>,
    /// `wal_compression` for the merge's transaction (`lz4`, `zstd`, `pglz`), applied when
    /// the role may set it (a superuser, or `GRANT SET ON PARAMETER wal_compression`) and
    /// the server supports the method; empty: the server's setting.
    pub wal_compression: String,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            poll_interval_ms: 5_000,
            adopt_interval_ms: 10_000,
            result_hosts: wholesail_shopify_admin::bulk::SHOPIFY_RESULT_HOSTS
                .map(String::from)
                .to_vec(),
            wal_compression: "lz4".to_owned(),
        }
    }
}

impl CatalogConfig {
    /// The runner settings.
    pub fn settings(&self) -> crate::catalog::Settings {
        crate::catalog::Settings {
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(10)),
            result_hosts: self.result_hosts.clone(),
            wal_compression: Some(self.wal_compression.clone()).filter(|m| !m.is_empty()),
            ..crate::catalog::Settings::default()
        }
    }

    /// The adoption interval as a duration.
    pub fn adopt_interval(&self) -> Duration {
        Duration::from_millis(self.adopt_interval_ms.max(100))
    }
}

/// Readiness thresholds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessConfig {
    /// `/readyz` fails when the oldest due event waits longer than this, in seconds.
    pub max_lag_secs: f64,
}

/// The non-secret defaults, the first layer.
#[derive(Serialize)]
struct Defaults {
    bind: &'static str,
    database_url: &'static str,
    pool_size: u32,
    max_body_bytes: usize,
    worker: WorkerConfig,
    readiness: ReadinessConfig,
}

impl Defaults {
    fn new() -> Self {
        Defaults {
            bind: "127.0.0.1:8080",
            database_url: "postgres://postgres@127.0.0.1:5432/wholesail",
            pool_size: 10,
            // A batch of 100 queue messages of up to 128 KB each, plus JSON framing.
            max_body_bytes: 16 * 1024 * 1024,
            worker: WorkerConfig::default(),
            readiness: ReadinessConfig {
                max_lag_secs: 300.0,
            },
        }
    }
}

impl Config {
    /// Loads defaults, then `DATABASE_URL`, then `file` if given, then `WHOLESAIL_*`
    /// environment variables. Refuses weak secrets ([`secrets::check`]).
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Defaults::new()))
            // The variable every sqlx tool reads; the file and WHOLESAIL_DATABASE_URL win.
            .merge(Env::raw().only(&["DATABASE_URL"]));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment
            // Not settings: the config file's path, and xtask's cluster directory and CA.
            .merge(
                Env::prefixed("WHOLESAIL_")
                    .split("__")
                    .ignore(&["config", "pg_data", "pg_ca"]),
            )
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.slo.validate().map_err(ConfigError::Invalid)?;
        let w = &self.worker;
        if w.batch_size < 1 || w.batch_bytes < 1 || w.per_shop < 1 || w.max_attempts < 1 {
            return Err(ConfigError::Invalid(
                "worker.batch_size, worker.batch_bytes, worker.per_shop and worker.max_attempts \
                 must be ≥ 1"
                    .into(),
            ));
        }
        if w.backoff_base_ms == 0 || w.backoff_max_ms < w.backoff_base_ms {
            return Err(ConfigError::Invalid(
                "worker.backoff_base_ms must be > 0 and ≤ worker.backoff_max_ms".into(),
            ));
        }
        if self.admin.token.is_some() {
            return Err(ConfigError::Invalid(
                "admin.token was replaced by named, scoped tokens: create them with \
                 `origin tokens create --name NAME --scope ops:read --scope ops:write` and \
                 remove admin.token"
                    .into(),
            ));
        }
        secrets::check(self)?;
        self.keyring()?;
        self.shops()?;
        self.draft_orders.check().map_err(ConfigError::Invalid)?;
        self.inbox.check().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The keyring for envelope signatures.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let keys = self
            .internal
            .keys
            .iter()
            .map(|k| {
                SigningKey::new(k.id.clone(), k.secret.expose_secret().as_bytes())
                    .map_err(|e| ConfigError::Invalid(format!("internal.keys {:?}: {e}", k.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::new(keys, self.internal.tolerance_secs).accepting_v1(self.internal.accept_v1))
    }

    /// The configured shops, one Admin API client each.
    pub fn shops(&self) -> Result<Shops, ConfigError> {
        Shops::with_breaker(self.shops.clone(), self.shop_breaker.config())
            .map_err(|e| ConfigError::Invalid(format!("shops: {e}")))
    }

    /// The Shopify secrets for direct mode, if configured.
    pub fn shopify_secrets(&self) -> Option<ShopifySecrets> {
        let current = self.shopify.secret.as_ref()?;
        Some(ShopifySecrets::new(
            current.expose_secret().as_bytes(),
            self.shopify
                .previous_secret
                .as_ref()
                .map(|p| p.expose_secret().as_bytes()),
        ))
    }
}

#[cfg(test)]
// figment's Jail returns its own (large) error type from the test closures.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_and_environment_layer_over_defaults_and_secrets_do_not_print() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "origin.toml",
                r#"
                bind = "0.0.0.0:9000"
                [worker]
                concurrency = 3
                [[internal.keys]]
                id = "k1"
                secret = "file-key-secret-0123456789abcdefghijkl"
                "#,
            )?;
            jail.set_env("WHOLESAIL_WORKER__BATCH_SIZE", "77");
            jail.set_env(
                "WHOLESAIL_SHOPIFY__SECRET",
                "shpss_topsecret_0123456789abcdefghijkl",
            );
            let c = Config::load(Some(Path::new("origin.toml"))).expect("loads");
            assert_eq!(c.bind.port(), 9000);
            assert_eq!(c.worker.concurrency, 3);
            assert_eq!(c.worker.batch_size, 77);
            assert_eq!(c.worker.max_attempts, 8);
            assert!(c.shopify_secrets().is_some());
            assert!(c.keyring().is_ok());
            let shown = format!("{c:?}");
            for secret in ["file-key-secret", "shpss_topsecret_0123456789abcdefghijkl"] {
                assert!(!shown.contains(secret), "{secret} leaked in {shown}");
            }
            Ok(())
        });
    }

    #[test]
    fn keys_can_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "WHOLESAIL_INTERNAL__KEYS",
                r#"[{id="edge-2026",secret="s3cr3t-0123456789abcdefghijklmnopqrstuv"}]"#,
            );
            let c = Config::load(None).expect("loads");
            assert_eq!(c.internal.keys.len(), 1);
            assert_eq!(c.internal.keys[0].id, "edge-2026");
            Ok(())
        });
    }

    #[test]
    fn shops_come_from_the_environment_and_their_tokens_do_not_print() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "WHOLESAIL_SHOPS",
                r#"[{domain="a.myshopify.com",access_token="shpat_secret_a"},
                    {domain="b.myshopify.com",url="http://127.0.0.1:9",access_token="shpat_secret_b"}]"#,
            );
            let c = Config::load(None).expect("loads");
            let shops = c.shops().expect("clients build");
            let domains: Vec<&str> = shops.domains().into_iter().map(|d| d.as_str()).collect();
            assert_eq!(domains, ["a.myshopify.com", "b.myshopify.com"]);
            let unknown = wholesail_webhook::ShopDomain::parse("c.myshopify.com").unwrap();
            assert!(shops.client(&unknown).is_err());
            let shown = format!("{c:?}");
            assert!(!shown.contains("shpat_secret"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn a_shop_configured_twice_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "WHOLESAIL_SHOPS",
                r#"[{domain="a.myshopify.com",access_token="x"},{domain="a.myshopify.com",access_token="y"}]"#,
            );
            assert!(matches!(Config::load(None), Err(ConfigError::Invalid(_))));
            Ok(())
        });
    }

    #[test]
    fn the_former_admin_token_is_refused_with_a_pointer_to_named_tokens() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("WHOLESAIL_ADMIN__TOKEN", "admin-token-value");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("origin tokens create"), "{err}");
            assert!(!err.contains("admin-token-value"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn inconsistent_worker_settings_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("WHOLESAIL_WORKER__BACKOFF_MAX_MS", "10");
            assert!(matches!(Config::load(None), Err(ConfigError::Invalid(_))));
            Ok(())
        });
    }
    #[test]
    fn a_weak_secret_is_refused_by_name_without_its_value() {
        let cases = [
            (
                "WHOLESAIL_SHOPIFY__SECRET",
                "short-shopify",
                "shopify.secret",
            ),
            (
                "WHOLESAIL_SHOPIFY__PREVIOUS_SECRET",
                "short-previous",
                "shopify.previous_secret",
            ),
            (
                "WHOLESAIL_INTERNAL__KEYS",
                r#"[{id="k1",secret="short-key"}]"#,
                r#"internal.keys[id="k1"].secret"#,
            ),
            ("WHOLESAIL_SHOPIFY__SECRET", "", "shopify.secret is empty"),
        ];
        for (var, value, named) in cases {
            figment::Jail::expect_with(|jail| {
                jail.set_env(var, value);
                let err = Config::load(None).expect_err("weak secret refused");
                assert!(matches!(err, ConfigError::WeakSecret(_)), "{err}");
                let shown = err.to_string();
                assert!(shown.contains(named), "{shown}");
                assert!(value.is_empty() || !shown.contains(value), "{shown}");
                Ok(())
            });
        }
    }

    #[test]
    fn database_url_is_used_unless_the_file_or_wholesail_variable_sets_one() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://u@db.example:6543/from_env");
            let c = Config::load(None).expect("loads");
            assert_eq!(
                c.database_url.expose_secret(),
                "postgres://u@db.example:6543/from_env"
            );
            jail.create_file("origin.toml", r#"database_url = "postgres://file/db""#)?;
            let c = Config::load(Some(Path::new("origin.toml"))).expect("loads");
            assert_eq!(c.database_url.expose_secret(), "postgres://file/db");
            jail.set_env("WHOLESAIL_DATABASE_URL", "postgres://wholesail/db");
            let c = Config::load(Some(Path::new("origin.toml"))).expect("loads");
            assert_eq!(c.database_url.expose_secret(), "postgres://wholesail/db");
            Ok(())
        });
    }
}
