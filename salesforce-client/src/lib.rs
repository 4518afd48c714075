//! Wholesail's Salesforce client — the counterpart of `wholesail-shopify-admin` — for the
//! features that keep Salesforce in step with Shopify and origin.
//!
//! One [`Client`] per org (cheap to clone, clones share everything): it logs in with OAuth 2.0
//! client credentials ([`auth`]) and caches the session, logging in again once when a call is
//! answered `401 INVALID_SESSION_ID`; it caps the calls in flight ([`Config::max_concurrent`]),
//! tracks the org's daily API [`Budget`] from `Sforce-Limit-Info`, and stops calling an org
//! whose API keeps failing ([`Breaker`], gauge `wholesail_salesforce_breaker_state{org}`).
//!
//! Operations: [`collections`] (upserts by external id, ≤ 200 records a call, with a
//! per-record [`RecordOutcome`]), [`composite`], [`query`] (SOQL, following
//! `nextRecordsUrl`), [`limits`], [`bulk`] (Bulk API 2.0 ingest) and [`cdc`] (Change Data
//! Capture over the Pub/Sub API, Avro-decoded into [`cdc::ChangeEvent`]s).
//!
//! Nothing is retried automatically (except the one 401): every failure is classified
//! ([`Error`]) and the caller decides — see the crate's README.

pub mod auth;
pub mod budget;
pub mod bulk;
pub mod cdc;
pub mod collections;
pub mod composite;
mod error;
mod http;
pub mod limits;
pub mod query;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Semaphore;

pub use budget::{Budget, Usage};
pub use collections::{RecordFailure, RecordOutcome};
pub use error::{ApiFault, Error};
pub use wholesail_breaker::{Breaker, BreakerConfig, BreakerState};

/// The gauge that exports each org's breaker state (0 closed, 1 half-open, 2 open).
pub const BREAKER_METRIC: &str = "wholesail_salesforce_breaker_state";

/// The `Sforce-Call-Options` client name a [`Config`] starts with.
pub const DEFAULT_CALL_CLIENT: &str = "wholesail";

/// How a client reaches one org.
#[derive(Clone, Debug)]
pub struct Config {
    /// `https://login.salesforce.com`, the org's My Domain URL, or the simulator's base URL.
    pub login_url: String,
    /// The pinned REST API version, e.g. `62.0`.
    pub api_version: String,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret (redacted in `Debug`).
    pub client_secret: SecretString,
    /// The org's name in logs and metrics.
    pub org: String,
    /// Time allowed for one call.
    pub request_timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Calls in flight at once through this client (Salesforce refuses more than 25
    /// long-running requests per org).
    pub max_concurrent: usize,
    /// The org's circuit breaker.
    pub breaker: BreakerConfig,
    /// Sent as `Sforce-Call-Options: client=…` on every call, so the change events of this
    /// client's own writes carry it in `changeOrigin` ([`cdc::ChangeEvent::is_from`]).
    pub call_client: String,
}

impl Config {
    /// A configuration with default timeouts (120 s, connect 5 s), 10 calls at once and the
    /// default breaker.
    pub fn new(
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        let login_url = login_url.into().trim_end_matches('/').to_owned();
        let org = login_url
            .split_once("://")
            .map_or(login_url.as_str(), |(_, host)| host)
            .to_owned();
        Config {
            org,
            login_url,
            api_version: "62.0".into(),
            client_id: client_id.into(),
            client_secret,
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            max_concurrent: 10,
            breaker: BreakerConfig::default(),
            call_client: DEFAULT_CALL_CLIENT.into(),
        }
    }
}

/// A client for one org.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: Config,
    sessions: auth::Sessions,
    budget: Budget,
    slots: Semaphore,
    breaker: Breaker,
}

impl Client {
    /// A client for the org in `config` (it logs in on first use).
    pub fn new(config: Config) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| Error::Transient {
                message: format!("HTTP client: {e}"),
                outcome_unknown: false,
            })?;
        let breaker = Breaker::new(
            wholesail_breaker::Gauge {
                metric: BREAKER_METRIC,
                label: "org",
                value: config.org.clone(),
            },
            config.breaker,
        );
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                sessions: auth::Sessions::default(),
                budget: Budget::default(),
                slots: Semaphore::new(config.max_concurrent.max(1)),
                breaker,
                config,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The org's API budget as last reported.
    pub fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    /// The org's circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// The current session (logging in if there is none), e.g. for the Pub/Sub API.
    pub async fn session(&self) -> Result<Arc<auth::Session>, Error> {
        self.inner
            .sessions
            .get(&self.inner.http, &self.inner.config)
            .await
    }

    /// Forgets `stale` so that the next call logs in again.
    pub async fn invalidate_session(&self, stale: &auth::Session) {
        self.inner.sessions.invalidate(stale).await;
    }
}
