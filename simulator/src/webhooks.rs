//! Webhook delivery the way Shopify does it: the body signed with the app's client secret
//! (`X-Shopify-Hmac-Sha256`, via [`ShopifySecrets::sign`]) and the other `X-Shopify-*` headers,
//! 1 s to connect and 5 s for the whole request, any non-2xx answer (redirects included) a
//! failure, retried with growing delays (8 retries over about 4 hours), optionally delivered
//! twice with the same webhook id, or out of order. Time can be compressed for tests. Every
//! attempt is recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use wholesail_webhook::ShopifySecrets;

/// How deliveries behave.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// The shop the webhooks come from (`X-Shopify-Shop-Domain`); the simulator sends each
    /// shop's webhooks with that shop's domain instead.
    pub shop: String,
    /// `X-Shopify-API-Version`.
    pub api_version: String,
    /// Multiplies every timeout and delay: 1.0 is real time, 0.01 is 100× faster.
    pub time_scale: f64,
    /// Time allowed to connect (Shopify: 1 s).
    pub connect_timeout: Duration,
    /// Time allowed for the whole request (Shopify: 5 s).
    pub total_timeout: Duration,
    /// Delay before each retry; the number of entries is the number of retries. Default:
    /// 1, 2, 4 … 128 minutes — 8 retries over about 4 hours, like Shopify.
    pub retry_delays: Vec<Duration>,
    /// Probability that a successful delivery is sent once more with the same webhook id.
    pub duplicate_rate: f64,
    /// Seed for duplicates and shuffling.
    pub seed: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            shop: "wholesail-test.myshopify.com".into(),
            api_version: "2026-01".into(),
            time_scale: 1.0,
            connect_timeout: Duration::from_secs(1),
            total_timeout: Duration::from_secs(5),
            retry_delays: (0..8).map(|k| Duration::from_secs(60 << k)).collect(),
            duplicate_rate: 0.0,
            seed: 0,
        }
    }
}

/// One webhook: the body and the ids every delivery of it carries.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Topic, e.g. `bulk_operations/finish`.
    pub topic: String,
    /// The raw JSON body that is signed and sent.
    pub body: Vec<u8>,
    /// `X-Shopify-Webhook-Id`: the same on retries and duplicates of this webhook.
    pub webhook_id: String,
    /// `X-Shopify-Event-Id`.
    pub event_id: String,
    /// `X-Shopify-Triggered-At`.
    pub triggered_at: String,
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered(u16),
    /// Any other status: a failure.
    Rejected(u16),
    /// No complete answer within the total timeout.
    TimedOut,
    /// Could not connect (or the connection broke).
    ConnectFailed(String),
}

/// One delivery attempt, as recorded.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The webhook's id.
    pub webhook_id: String,
    /// Topic.
    pub topic: String,
    /// Target URL.
    pub url: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Whether this attempt is a deliberate duplicate of a delivered webhook.
    pub duplicate: bool,
    /// How long the attempt took.
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// The result of delivering one webhook with retries.
#[derive(Clone, Debug)]
pub struct DeliveryReport {
    /// The webhook's id.
    pub webhook_id: String,
    /// Every attempt, in order (duplicates included).
    pub attempts: Vec<Attempt>,
    /// Whether some attempt got a 2xx.
    pub delivered: bool,
}

/// Sends signed webhooks and records every attempt.
#[derive(Clone)]
pub struct WebhookSender {
    config: DeliveryConfig,
    secrets: ShopifySecrets,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<Attempt>>>,
    rng: Arc<Mutex<StdRng>>,
}

impl WebhookSender {
    /// A sender signing with the app's client `secret`.
    pub fn new(secret: &[u8], config: DeliveryConfig) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout.mul_f64(config.time_scale))
            .timeout(config.total_timeout.mul_f64(config.time_scale))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Shopify-Captain-Hook")
            .build()
            .expect("a reqwest client with rustls builds");
        WebhookSender {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(config.seed))),
            secrets: ShopifySecrets::new(secret.to_vec(), None::<Vec<u8>>),
            config,
            client,
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The same sender (client, attempt log, random draws) for webhooks of `shop`
    /// (`X-Shopify-Shop-Domain`).
    pub fn for_shop(&self, shop: &str) -> WebhookSender {
        let mut s = self.clone();
        s.config.shop = shop.to_owned();
        s
    }

    /// A new webhook for `topic` with fresh webhook and event ids, triggered now.
    pub fn webhook(&self, topic: &str, body: Vec<u8>) -> Webhook {
        Webhook {
            topic: topic.to_owned(),
            body,
            webhook_id: uuid::Uuid::new_v4().to_string(),
            event_id: uuid::Uuid::new_v4().to_string(),
            triggered_at: now_rfc3339(),
        }
    }

    /// Every attempt made so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.log.lock().unwrap().clone()
    }

    /// One attempt, recorded.
    pub async fn attempt(&self, url: &str, w: &Webhook, n: u32, duplicate: bool) -> Attempt {
        let start = Instant::now();
        let result = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", &w.topic)
            .header("X-Shopify-Hmac-Sha256", self.secrets.sign(&w.body))
            .header("X-Shopify-Shop-Domain", &self.config.shop)
            .header("X-Shopify-API-Version", &self.config.api_version)
            .header("X-Shopify-Webhook-Id", &w.webhook_id)
            .header("X-Shopify-Event-Id", &w.event_id)
            .header("X-Shopify-Triggered-At", &w.triggered_at)
            .body(w.body.clone())
            .send()
            .await;
        // The whole request, body included, must finish within the total timeout.
        let outcome = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Err(e) if e.is_timeout() => Outcome::TimedOut,
                    _ if (200..300).contains(&status) => Outcome::Delivered(status),
                    _ => Outcome::Rejected(status),
                }
            }
            Err(e) if e.is_timeout() => Outcome::TimedOut,
            Err(e) => Outcome::ConnectFailed(e.to_string()),
        };
        let a = Attempt {
            webhook_id: w.webhook_id.clone(),
            topic: w.topic.clone(),
            url: url.to_owned(),
            attempt: n,
            duplicate,
            elapsed: start.elapsed(),
            outcome,
        };
        tracing::debug!(webhook_id = %a.webhook_id, attempt = n, outcome = ?a.outcome, "webhook attempt");
        self.log.lock().unwrap().push(a.clone());
        a
    }

    /// Delivers `w` to `url`, retrying failures after the configured delays; a delivered
    /// webhook may be sent once more with the same id (`duplicate_rate`).
    pub async fn deliver(&self, url: &str, w: &Webhook) -> DeliveryReport {
        let mut attempts = Vec::new();
        let mut delivered = false;
        for n in 0..=self.config.retry_delays.len() {
            if n > 0 {
                let d = self.config.retry_delays[n - 1].mul_f64(self.config.time_scale);
                tokio::time::sleep(d).await;
            }
            let a = self.attempt(url, w, n as u32 + 1, false).await;
            delivered = matches!(a.outcome, Outcome::Delivered(_));
            attempts.push(a);
            if delivered {
                break;
            }
        }
        let duplicate = delivered && {
            let mut rng = self.rng.lock().unwrap();
            rng.gen_bool(self.config.duplicate_rate.clamp(0.0, 1.0))
        };
        if duplicate {
            let n = attempts.len() as u32 + 1;
            attempts.push(self.attempt(url, w, n, true).await);
        }
        DeliveryReport {
            webhook_id: w.webhook_id.clone(),
            attempts,
            delivered,
        }
    }

    /// Delivers several webhooks one after another in a shuffled order (Shopify does not
    /// guarantee ordering); reports come back in the order they were sent.
    pub async fn deliver_shuffled(
        &self,
        url: &str,
        mut webhooks: Vec<Webhook>,
    ) -> Vec<DeliveryReport> {
        webhooks.shuffle(&mut *self.rng.lock().unwrap());
        let mut out = Vec::with_capacity(webhooks.len());
        for w in &webhooks {
            out.push(self.deliver(url, w).await);
        }
        out
    }
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
