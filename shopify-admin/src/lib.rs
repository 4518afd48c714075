//! Wholesail's Shopify Admin GraphQL client, used by every feature that talks to Shopify
//! (catalog sync, the rules push, draft orders).
//!
//! One [`AdminClient`] per shop: the API version is pinned in its [`AdminConfig`], the access
//! token is a [`SecretString`] that is never logged; requests wait for the cost bucket
//! ([`pacing`]) so they are not throttled, and THROTTLED answers, 429, 5xx, timeouts and
//! connection failures are retried with bounded exponential backoff and jitter. Requests that
//! must not run twice (creating a draft order or a bulk operation) are retried only when
//! Shopify certainly did not execute them; otherwise the caller gets
//! [`AdminError::OutcomeUnknown`] and looks the object up before trying again. A shop whose
//! API keeps failing (5xx, timeouts, 401) is left alone for a growing cool-down by its
//! [`breaker`], which every user of the client shares.
//!
//! Typed operations: [`bulk`] (run, poll, download the JSONL line by line), [`metafields`]
//! (`metafieldsSet` with `compareDigest`), [`draft_orders`] (create, find by tag),
//! [`webhooks`] (list and create webhook subscriptions), [`price_lists`] (B2B catalogs, price
//! lists, fixed prices, quantity price breaks and quantity rules). Every attempt is counted
//! per shop, with the cost points spent and the bucket left (`usage`: the
//! `wholesail_shopify_*` metrics).

pub mod breaker;
pub mod bulk;
pub mod draft_orders;
mod error;
pub mod metafields;
pub mod pacing;
pub mod price_lists;
pub mod retry_after;
mod usage;
pub mod webhooks;

use std::time::Duration;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use wholesail_backoff::Backoff;

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use error::{AdminError, GraphqlError, UserError};
pub use pacing::{QueryCost, ThrottleStatus};

/// Shopify's limit on one query's requested cost.
pub const MAX_QUERY_COST: u32 = 1000;

/// How a client reaches one shop.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// `https://<shop>.myshopify.com`, or the simulator's base URL.
    pub shop_url: String,
    /// The pinned Admin API version, e.g. `2026-01`.
    pub api_version: String,
    /// The Admin API access token.
    pub access_token: SecretString,
    /// Time allowed for one request.
    pub request_timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubles on each retry.
    pub backoff_base: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// The shop's name in logs and metrics (its myshopify domain; by default the URL's host).
    pub shop: String,
    /// The shop's circuit breaker.
    pub breaker: BreakerConfig,
}

impl AdminConfig {
    /// A configuration with default timeouts (30 s, connect 5 s), retries (5, from 200 ms
    /// up to 10 s) and breaker ([`BreakerConfig::default`]).
    pub fn new(
        shop_url: impl Into<String>,
        api_version: impl Into<String>,
        token: SecretString,
    ) -> Self {
        let shop_url = shop_url.into().trim_end_matches('/').to_owned();
        let shop = shop_url
            .split_once("://")
            .map_or(shop_url.as_str(), |(_, host)| host)
            .to_owned();
        AdminConfig {
            shop,
            breaker: BreakerConfig::default(),
            shop_url,
            api_version: api_version.into(),
            access_token: token,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 5,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// Whether a request may be sent again when its first attempt's outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Reads and idempotent writes: retry on anything transient.
    Always,
    /// Writes that must not run twice: retry only when Shopify certainly did not run it
    /// (THROTTLED, 429, connection refused); otherwise [`AdminError::OutcomeUnknown`].
    IfNotExecuted,
}

/// One GraphQL request.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Operation name (for cost learning and logs).
    pub name: &'a str,
    /// The query or mutation text.
    pub query: &'a str,
    /// Its variables.
    pub variables: Value,
    /// Estimated requested cost (Shopify's static cost).
    pub estimated_cost: u32,
    /// Retry policy.
    pub retry: Retry,
}

/// A successful answer.
#[derive(Debug)]
pub struct Response<T> {
    /// `data`.
    pub data: T,
    /// `extensions.cost`, when reported.
    pub cost: Option<QueryCost>,
}

#[derive(Deserialize)]
struct Envelope {
    data: Option<Value>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct Extensions {
    cost: Option<QueryCost>,
}

/// What one attempt came to.
enum Attempt {
    Done(Value, Option<QueryCost>),
    /// Retry after at least this long (`None`: the usual backoff).
    Retry {
        after: Option<Duration>,
        executed_maybe: bool,
        error: AdminError,
    },
    Fail(AdminError),
}

impl Attempt {
    /// How the attempt ended, for the request metrics ([`usage`]).
    fn result(&self) -> usage::AttemptResult {
        use usage::AttemptResult;
        match self {
            Attempt::Done(..) => AttemptResult::Ok,
            Attempt::Retry {
                error: AdminError::Throttled { .. } | AdminError::Http { status: 429, .. },
                ..
            } => AttemptResult::Throttled,
            Attempt::Retry { .. } => AttemptResult::Retried,
            Attempt::Fail(_) => AttemptResult::Failed,
        }
    }

    /// What the attempt says about the shop's API, for the breaker.
    fn health(&self) -> breaker::Outcome {
        use breaker::Outcome;
        let error = match self {
            Attempt::Done(..) => return Outcome::Healthy,
            Attempt::Retry { error, .. } | Attempt::Fail(error) => error,
        };
        match error {
            AdminError::Http { status, .. } if *status >= 500 => Outcome::Failed,
            AdminError::AccessDenied {
                status: Some(401), ..
            } => Outcome::Failed,
            AdminError::Timeout { .. } | AdminError::Transport(_) => Outcome::Failed,
            AdminError::Http { status: 429, .. }
            | AdminError::Throttled { .. }
            | AdminError::AccessDenied { .. } => Outcome::Neutral,
            _ => Outcome::Healthy,
        }
    }
}

/// A client for one shop's Admin GraphQL API.
#[derive(Debug)]
pub struct AdminClient {
    http: reqwest::Client,
    /// For bulk result files: no redirects, no overall timeout (set per download).
    download: reqwest::Client,
    config: AdminConfig,
    endpoint: String,
    pacer: pacing::Pacer,
    breaker: Breaker,
    /// Cost points Shopify charged this client so far (actual cost, else requested).
    spent: std::sync::atomic::AtomicU64,
}

impl AdminClient {
    /// A client for the shop in `config`.
    pub fn new(config: AdminConfig) -> Result<Self, AdminError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| AdminError::Transport(e.to_string()))?;
        let download = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AdminError::Transport(e.to_string()))?;
        Ok(AdminClient {
            download,
            endpoint: format!(
                "{}/admin/api/{}/graphql.json",
                config.shop_url, config.api_version
            ),
            http,
            breaker: breaker::for_shop(config.shop.clone(), config.breaker),
            config,
            pacer: pacing::Pacer::default(),
            spent: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Cost points Shopify charged this client's requests so far: what a caller spent is the
    /// difference across its calls (an upper bound when other tasks share the client).
    pub fn cost_spent(&self) -> u64 {
        self.spent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The configuration.
    pub fn config(&self) -> &AdminConfig {
        &self.config
    }

    /// The shop's circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Runs `req`, paced and retried, and decodes `data` into `T`.
    pub async fn execute<T: DeserializeOwned>(
        &self,
        req: &Request<'_>,
    ) -> Result<Response<T>, AdminError> {
        let estimate = self.pacer.estimate(req.name, req.estimated_cost);
        if estimate > MAX_QUERY_COST {
            return Err(AdminError::QueryTooExpensive {
                requested: estimate,
                limit: MAX_QUERY_COST,
            });
        }
        if let Some(max) = self.pacer.maximum().filter(|m| f64::from(estimate) > *m) {
            return Err(AdminError::QueryTooExpensive {
                requested: estimate,
                limit: max as u32,
            });
        }
        let body = serde_json::json!({"query": req.query, "variables": req.variables});
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = self
                .breaker
                .permit()
                .map_err(|retry_in| AdminError::CircuitOpen { retry_in })?;
            let reservation = self
                .pacer
                .acquire(self.pacer.estimate(req.name, estimate))
                .await;
            let (outcome, cost) = self.attempt(&body, attempt).await;
            if let Some(c) = &cost {
                let charged = c.actual_query_cost.unwrap_or(0);
                self.spent
                    .fetch_add(u64::from(charged), std::sync::atomic::Ordering::Relaxed);
            }
            self.pacer.settle(reservation, req.name, cost.as_ref());
            usage::record(&self.config.shop, outcome.result(), cost.as_ref());
            permit.record(outcome.health());
            match outcome {
                Attempt::Done(data, cost) => {
                    let data = serde_json::from_value(data)
                        .map_err(|e| AdminError::Decode(e.to_string()))?;
                    return Ok(Response { data, cost });
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry {
                    after,
                    executed_maybe,
                    error,
                } => {
                    if executed_maybe && req.retry == Retry::IfNotExecuted {
                        return Err(AdminError::OutcomeUnknown(error.to_string()));
                    }
                    if attempt > self.config.max_retries {
                        return Err(error);
                    }
                    // This failure (or a concurrent one) opened the breaker: stop now rather
                    // than wait out a backoff to be refused, or to probe, within this call.
                    if let BreakerState::Open { retry_in } = self.breaker.state() {
                        tracing::warn!(operation = req.name, attempt, error = %error, "Shopify request failed and the shop's circuit is open");
                        return Err(AdminError::CircuitOpen { retry_in });
                    }
                    let delay = self.backoff(attempt).max(after.unwrap_or_default());
                    tracing::warn!(operation = req.name, attempt, ?delay, error = %error, "retrying Shopify request");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Full-jitter exponential backoff: uniform in [0, min(max, base × 2^(attempt-1))].
    fn backoff(&self, attempt: u32) -> Duration {
        Backoff::new(self.config.backoff_base, self.config.backoff_max)
            .full_jitter(attempt, rand::thread_rng().gen())
    }

    /// One request and what it calls for: done, a retry (and whether the mutation may have
    /// executed), or a failure; with the cost Shopify reported.
    async fn attempt(&self, body: &Value, attempt: u32) -> (Attempt, Option<QueryCost>) {
        let (status, retry_after, bytes) = match self.send(body, attempt).await {
            Ok(answer) => answer,
            Err(retry) => return (retry, None),
        };
        if let Some(refused) = refused_status(status, retry_after, &bytes) {
            return (refused, None);
        }
        graphql_outcome(&bytes, attempt)
    }

    /// Sends one request: its status, `Retry-After` and body, or the retry a transport failure
    /// calls for (a timeout or a reset after sending may have executed).
    async fn send(
        &self,
        body: &Value,
        attempt: u32,
    ) -> Result<(u16, Option<Duration>, bytes::Bytes), Attempt> {
        let sent = self
            .http
            .post(&self.endpoint)
            .header(
                "X-Shopify-Access-Token",
                self.config.access_token.expose_secret(),
            )
            .json(body)
            .send()
            .await;
        let resp = sent.map_err(|e| {
            let (error, executed_maybe) = if e.is_timeout() {
                (AdminError::Timeout { attempts: attempt }, true)
            } else {
                // Refused or reset before an answer: refused means not executed; a reset
                // after sending might have been.
                (AdminError::Transport(e.to_string()), !e.is_connect())
            };
            Attempt::Retry {
                after: None,
                executed_maybe,
                error,
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after::parse);
        let bytes = resp.bytes().await.map_err(|e| Attempt::Retry {
            after: None,
            executed_maybe: true,
            error: if e.is_timeout() {
                AdminError::Timeout { attempts: attempt }
            } else {
                AdminError::Transport(e.to_string())
            },
        })?;
        Ok((status, retry_after, bytes))
    }

    /// `{ shop { name } }`: the cheapest authenticated request (cost 1), for checks.
    pub async fn shop_name(&self) -> Result<String, AdminError> {
        #[derive(Deserialize)]
        struct Data {
            shop: Shop,
        }
        #[derive(Deserialize)]
        struct Shop {
            name: String,
        }
        let r: Response<Data> = self
            .execute(&Request {
                name: "ShopName",
                query: "query ShopName { shop { name } }",
                variables: Value::Null,
                estimated_cost: 1,
                retry: Retry::Always,
            })
            .await?;
        Ok(r.data.shop.name)
    }

    /// The HTTP client for bulk result files (no token, no redirects).
    pub(crate) fn download_http(&self) -> &reqwest::Client {
        &self.download
    }
}

/// Money as Shopify writes it: a decimal string and a currency.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// Decimal amount, e.g. `"12.30"`.
    pub amount: String,
    /// ISO currency code.
    pub currency_code: String,
}

impl Money {
    /// `cents` in `currency`.
    pub fn from_cents(cents: u64, currency: &str) -> Self {
        Money {
            amount: format!("{}.{:02}", cents / 100, cents % 100),
            currency_code: currency.to_owned(),
        }
    }

    /// The amount in integer cents (at most two decimals, as Shopify's USD amounts).
    pub fn cents(&self) -> Result<u64, AdminError> {
        let bad = || AdminError::Decode(format!("not a money amount: {}", self.amount));
        let (whole, frac) = self.amount.split_once('.').unwrap_or((&self.amount, ""));
        let frac = frac.trim_end_matches('0');
        if frac.len() > 2 {
            return Err(bad());
        }
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let frac: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<2}").parse().map_err(|_| bad())?
        };
        Ok(whole * 100 + frac)
    }
}

/// Shopify's `MoneyBag`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoneyBag {
    /// In the shop's currency.
    pub shop_money: Money,
}

/// Deserialises Shopify's `UnsignedInt64` (a JSON string) or a plain number.
pub(crate) fn de_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("not a u64")),
        Value::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!("not a u64: {other}"))),
    }
}

/// Like [`de_u64`] for nullable fields.
pub(crate) fn de_opt_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
        Value::Number(n) => Ok(n.as_u64()),
        other => Err(serde::de::Error::custom(format!("not a u64: {other}"))),
    }
}

/// Fails with the payload's `userErrors`, if any.
pub(crate) fn check_user_errors(errors: Vec<UserError>) -> Result<(), AdminError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AdminError::UserErrors(errors))
    }
}

/// The outcome an HTTP status other than 200 decides: access denied, throttled (not
/// executed), a 5xx (maybe executed), or another refusal; `None` for 200.
fn refused_status(status: u16, retry_after: Option<Duration>, bytes: &[u8]) -> Option<Attempt> {
    let text = || String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
    let http = || AdminError::Http {
        status,
        body: text(),
    };
    match status {
        200 => None,
        401 | 403 => Some(Attempt::Fail(AdminError::AccessDenied {
            status: Some(status),
            message: text(),
        })),
        429 => Some(Attempt::Retry {
            after: retry_after,
            executed_maybe: false,
            error: http(),
        }),
        500..=599 => Some(Attempt::Retry {
            after: retry_after,
            executed_maybe: true,
            error: http(),
        }),
        _ => Some(Attempt::Fail(http())),
    }
}

/// The outcome of a 200 answer's GraphQL envelope: data, a throttle to wait out (the wait
/// computed from the cost bucket), or a typed failure.
fn graphql_outcome(bytes: &[u8], attempt: u32) -> (Attempt, Option<QueryCost>) {
    let env: Envelope = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => return (Attempt::Fail(AdminError::Decode(e.to_string())), None),
    };
    let cost = env.extensions.and_then(|x| x.cost);
    let errors: Vec<GraphqlError> = match env.errors {
        Some(v @ Value::Array(_)) => serde_json::from_value(v).unwrap_or_default(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![GraphqlError {
            message: other.to_string(),
            extensions: None,
        }],
    };
    if errors.iter().any(|e| e.code() == Some("THROTTLED")) {
        let after = cost.map(|c| {
            let s = c.throttle_status;
            let short = f64::from(c.requested_query_cost) - s.currently_available;
            Duration::from_secs_f64((short.max(0.0) / s.restore_rate.max(1e-3)).min(60.0))
        });
        let error = AdminError::Throttled { attempts: attempt };
        return (
            Attempt::Retry {
                after,
                executed_maybe: false,
                error,
            },
            cost,
        );
    }
    if let Some(e) = errors.iter().find(|e| e.code() == Some("ACCESS_DENIED")) {
        return (
            Attempt::Fail(AdminError::AccessDenied {
                status: None,
                message: e.message.clone(),
            }),
            cost,
        );
    }
    if let Some(e) = errors
        .iter()
        .find(|e| e.code() == Some("MAX_COST_EXCEEDED"))
    {
        let requested = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("cost"))
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32;
        return (
            Attempt::Fail(AdminError::QueryTooExpensive {
                requested,
                limit: MAX_QUERY_COST,
            }),
            cost,
        );
    }
    if !errors.is_empty() {
        return (Attempt::Fail(AdminError::Graphql(errors)), cost);
    }
    match env.data {
        Some(d) => (Attempt::Done(d, cost), cost),
        None => (
            Attempt::Fail(AdminError::Decode("no data and no errors".into())),
            cost,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_amounts_become_exact_cents() {
        let m = |a: &str| {
            Money {
                amount: a.into(),
                currency_code: "USD".into(),
            }
            .cents()
        };
        assert_eq!(m("12.3").unwrap(), 1230);
        assert_eq!(m("12.30").unwrap(), 1230);
        assert_eq!(m("0.05").unwrap(), 5);
        assert_eq!(m("7").unwrap(), 700);
        assert!(m("1.005").is_err());
        assert_eq!(Money::from_cents(1234, "USD").amount, "12.34");
    }
}
