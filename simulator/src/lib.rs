//! A local simulator of the Shopify behaviour Wholesail depends on, used by tests, the demo and
//! benchmarks. It enforces Shopify's limits so that code which passes here respects them there.
//!
//! - [`payloads`]: webhook payloads shaped like Shopify's (REST webhook JSON, API 2025-07),
//!   deterministic from a seed.
//! - [`Simulator`]: an in-process HTTP server for the Admin GraphQL API
//!   (`POST /admin/api/{version}/graphql.json`) with the cost bucket ([`bucket`]), bulk
//!   operations over a generated catalog ([`bulk`], [`catalog`]), `metafieldsSet`
//!   ([`metafields`]) and draft orders ([`draft_orders`]); failure injection; and a record of
//!   every request's cost and every throttled request, so tests can assert that a client
//!   never overdrew the bucket.
//! - [`subscriptions`]: each shop's webhook subscriptions, managed through the Admin API
//!   (`webhookSubscriptions`, `webhookSubscriptionCreate`, `webhookSubscriptionDelete`) or
//!   by a test, and deleted after a delivery failed every attempt, as Shopify does.
//! - [`webhooks`]: webhook delivery with Shopify's signature, timeouts, retries, duplicates
//!   and disorder; the simulator uses it for `bulk_operations/finish` and
//!   [`Simulator::emit`].

#![recursion_limit = "512"]

pub mod bucket;
pub mod bulk;
pub mod catalog;
pub mod draft_orders;
pub mod graphql;
pub mod metafields;
pub mod orders;
pub mod payloads;
pub mod price_lists;
mod server;
pub mod subscriptions;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use bucket::{BucketConfig, ThrottleStatus, MAX_QUERY_COST};
pub use bulk::BulkFault;
pub use catalog::{CatalogDrift, CatalogSpec, ChildOrder, GroundTruth, Selection};
pub use draft_orders::{AfterApply, DraftOrderRecord};
pub use metafields::StoredMetafield;
pub use price_lists::{CheckoutError, PriceList};
pub use subscriptions::{RemovedSubscription, WebhookSubscription};
pub use webhooks::{Attempt, DeliveryConfig, DeliveryReport, Outcome, Webhook, WebhookSender};

/// One simulated shop: its domain, the access token that authenticates as it, and its
/// catalog.
#[derive(Clone, Debug)]
pub struct ShopConfig {
    /// `<name>.myshopify.com`.
    pub domain: String,
    /// The `X-Shopify-Access-Token` that authenticates as this shop.
    pub access_token: String,
    /// The catalog bulk queries export and draft orders price from.
    pub catalog: CatalogSpec,
}

/// How bulk operations behave.
#[derive(Clone, Debug)]
pub struct BulkConfig {
    /// How long an operation stays `CREATED`.
    pub created_for: Duration,
    /// How long an operation takes from creation to completion (at least as long as
    /// computing its result's size).
    pub duration: Duration,
    /// Concurrent bulk queries per shop from API 2026-01 (before that: 1).
    pub max_concurrent: usize,
    /// Child order of `groupObjects: false` results (`true` always groups).
    pub child_order: ChildOrder,
    /// Where a catalog export without an injected fault is written while its operation runs
    /// (as Shopify does: the file exists once the operation completes), and served from;
    /// `None` generates the file again while serving it. One file per shop is kept.
    pub result_dir: Option<std::path::PathBuf>,
}

impl Default for BulkConfig {
    fn default() -> Self {
        BulkConfig {
            created_for: Duration::from_millis(50),
            duration: Duration::from_millis(300),
            max_concurrent: 5,
            child_order: ChildOrder::Scattered { window: 1000 },
            result_dir: None,
        }
    }
}

/// Random failure injection for every GraphQL request (see also
/// [`Simulator::fail_next`] and [`Simulator::delay_next`] for deterministic faults).
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Probability of answering 503 without executing the request.
    pub error_rate: f64,
    /// Probability of delaying the answer by `delay` (the request is executed).
    pub delay_rate: f64,
    /// The delay.
    pub delay: Duration,
    /// Seed of the draws.
    pub seed: u64,
}

/// Everything the simulator needs to start.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Address to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    /// The shops.
    pub shops: Vec<ShopConfig>,
    /// Admin API versions served; a well-formed but unlisted version is refused (stricter
    /// than Shopify, which falls forward, so a client's pinned version is checked).
    pub api_versions: Vec<String>,
    /// Every shop's cost bucket.
    pub bucket: BucketConfig,
    /// Bulk operations.
    pub bulk: BulkConfig,
    /// The app's numeric id (`$app` namespaces resolve to `app--<id>`).
    pub app_id: u64,
    /// The app's client secret, which signs webhooks.
    pub app_secret: String,
    /// Webhook subscriptions (topic, URL) every shop starts with. The simulator emits
    /// `bulk_operations/finish` itself; [`Simulator::emit`] sends any other topic.
    pub webhook_subscriptions: Vec<(String, String)>,
    /// Webhook delivery behaviour.
    pub delivery: DeliveryConfig,
    /// Random failure injection.
    pub faults: FaultConfig,
}

/// The default shop's domain.
pub const DEFAULT_SHOP: &str = "wholesail-test.myshopify.com";
/// The default shop's access token.
pub const DEFAULT_TOKEN: &str = "shpat_simulator_token";

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            shops: vec![ShopConfig {
                domain: DEFAULT_SHOP.into(),
                access_token: DEFAULT_TOKEN.into(),
                catalog: CatalogSpec::new(1, 100),
            }],
            api_versions: [
                "2025-07", "2025-10", "2026-01", "2026-04", "2026-07", "2026-10",
            ]
            .map(String::from)
            .to_vec(),
            bucket: BucketConfig::STANDARD,
            bulk: BulkConfig::default(),
            app_id: 4_242_424,
            app_secret: "simulator_app_secret".into(),
            webhook_subscriptions: Vec::new(),
            delivery: DeliveryConfig::default(),
            faults: FaultConfig::default(),
        }
    }
}

/// One request admitted by the bucket.
#[derive(Clone, Debug)]
pub struct CostEvent {
    /// Time since the simulator started.
    pub at: Duration,
    /// The root field.
    pub operation: String,
    /// `requestedQueryCost`.
    pub requested: u32,
    /// `actualQueryCost`.
    pub actual: u32,
    /// Points available just before.
    pub available_before: f64,
}

/// One request refused because the bucket could not cover it: an overdraw attempt.
#[derive(Clone, Debug)]
pub struct ThrottleEvent {
    /// Time since the simulator started.
    pub at: Duration,
    /// The root field.
    pub operation: String,
    /// `requestedQueryCost`.
    pub requested: u32,
    /// Points available at the time.
    pub available: f64,
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Two shops share an access token.
    #[error("duplicate access token for shop {0}")]
    DuplicateToken(String),
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Simulator {
    /// Starts serving on `config.bind` (inside the current tokio runtime).
    pub async fn start(config: SimulatorConfig) -> Result<Simulator, StartError> {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
        let shared = server::Shared::new(config, format!("http://{addr}"))?;
        let app = server::router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Simulator {
            shared,
            addr,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The GraphQL endpoint for `version`.
    pub fn graphql_url(&self, version: &str) -> String {
        format!("{}/admin/api/{version}/graphql.json", self.shared.base_url)
    }

    /// Every request the bucket refused for `shop` (empty: the client never overdrew).
    pub fn throttled(&self, shop: &str) -> Vec<ThrottleEvent> {
        self.shared.with_shop(shop, |s| s.throttled.clone())
    }

    /// Every admitted request of `shop` with its cost.
    pub fn cost_log(&self, shop: &str) -> Vec<CostEvent> {
        self.shared.with_shop(shop, |s| s.costs.clone())
    }

    /// The bucket of `shop` now.
    pub fn throttle_status(&self, shop: &str) -> ThrottleStatus {
        self.shared
            .with_shop(shop, |s| s.bucket.status(std::time::Instant::now()))
    }

    /// Answers the next `n` GraphQL requests with HTTP `status` without executing them.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut f = self.shared.faults.lock().unwrap();
        f.queue
            .extend(std::iter::repeat_n(server::Fault::Status(status), n));
    }

    /// Answers the next GraphQL request with HTTP `status` and the header
    /// `Retry-After: <retry_after>` (any text, to test clients' parsing), without executing it.
    pub fn fail_next_with_retry_after(&self, status: u16, retry_after: &str) {
        let mut f = self.shared.faults.lock().unwrap();
        f.queue.push_back(server::Fault::StatusRetryAfter(
            status,
            retry_after.to_owned(),
        ));
    }

    /// Delays the answer to the next `n` GraphQL requests by `delay` (they are executed).
    pub fn delay_next(&self, n: usize, delay: Duration) {
        let mut f = self.shared.faults.lock().unwrap();
        f.queue
            .extend(std::iter::repeat_n(server::Fault::Delay(delay), n));
    }

    /// Adds a webhook subscription of `topic` (`bulk_operations/finish` or
    /// `BULK_OPERATIONS_FINISH`) at `url` to every shop (for a receiver whose address is known
    /// only once it listens).
    pub fn subscribe(&self, topic: &str, url: &str) {
        self.shared.subscribe_every_shop(topic, url);
    }

    /// Adds a webhook subscription of `topic` (either form; not validated) at `uri` to `shop`,
    /// as if the app had created it.
    pub fn add_webhook_subscription(
        &self,
        shop: &str,
        topic: &str,
        uri: &str,
    ) -> WebhookSubscription {
        self.shared.subscribe(shop, topic, uri)
    }

    /// The webhook subscriptions of `shop`, in creation order.
    pub fn webhook_subscriptions(&self, shop: &str) -> Vec<WebhookSubscription> {
        self.shared
            .with_shop(shop, |s| s.subscriptions.live.clone())
    }

    /// Deletes every subscription of `topic` (either form) of `shop` silently, as a merchant
    /// or another tool might; whether there was one.
    pub fn delete_webhook_subscription(&self, shop: &str, topic: &str) -> bool {
        self.shared
            .with_shop(shop, |s| s.subscriptions.delete_topic(topic))
    }

    /// The subscriptions of `shop` the simulator deleted because a delivery to them failed
    /// every attempt, in order.
    pub fn removed_subscriptions(&self, shop: &str) -> Vec<RemovedSubscription> {
        self.shared
            .with_shop(shop, |s| s.subscriptions.removed.clone())
    }

    /// Delivers `body` as a `topic` webhook (either form) of `shop` to each of its
    /// subscriptions of that topic, concurrently, retrying per [`DeliveryConfig`]; returns
    /// once every delivery ended, with the reports in subscription order. A subscription
    /// whose delivery failed every attempt is deleted (see
    /// [`Simulator::removed_subscriptions`]).
    pub async fn emit(&self, shop: &str, topic: &str, body: Vec<u8>) -> Vec<DeliveryReport> {
        self.shared.emit(shop, topic, body).await
    }

    /// Replaces the random failure injection.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.faults.lock().unwrap().set(faults);
    }

    /// GraphQL requests answered so far (faulted ones included).
    pub fn requests(&self) -> u64 {
        self.shared
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces the catalog of `shop` (later bulk operations and draft orders use it).
    pub fn set_catalog(&self, shop: &str, catalog: CatalogSpec) {
        self.shared.with_shop(shop, |s| s.catalog = catalog);
    }

    /// Stores `order` (REST-shaped, as [`payloads::order`] makes it) in `shop`'s orders,
    /// replacing the one with its id; with `topic` (`orders/create`, `orders/updated`), also
    /// delivers that webhook, as the change would at Shopify. Without it, the change is
    /// silent: the drift a lost webhook leaves, for reconciliation to find.
    pub async fn put_order(
        &self,
        shop: &str,
        order: serde_json::Value,
        topic: Option<&str>,
    ) -> Vec<DeliveryReport> {
        let body = order.to_string().into_bytes();
        self.shared.with_shop(shop, |s| s.orders.put(order));
        match topic {
            Some(topic) => self.shared.emit(shop, topic, body).await,
            None => Vec::new(),
        }
    }

    /// Deletes products `ids` from `shop`'s catalog without a webhook.
    pub fn delete_products_silently(&self, shop: &str, ids: &[u64]) {
        self.shared.with_shop(shop, |s| {
            let drift = std::sync::Arc::make_mut(&mut s.catalog.drift);
            drift.deleted.extend(ids.iter().copied());
        });
    }

    /// Sets the stock of inventory item `item` at `location` in `shop`'s catalog, updated
    /// at `at` (RFC 3339), without a webhook.
    pub fn set_inventory_silently(
        &self,
        shop: &str,
        item: u64,
        location: u64,
        available: i64,
        at: String,
    ) {
        self.shared.with_shop(shop, |s| {
            let drift = std::sync::Arc::make_mut(&mut s.catalog.drift);
            drift.levels.insert((item, location), (available, at));
        });
    }

    /// The catalog of `shop`.
    pub fn catalog(&self, shop: &str) -> CatalogSpec {
        self.shared.with_shop(shop, |s| s.catalog.clone())
    }

    /// Sets the child order of `shop`'s ungrouped bulk results.
    pub fn set_child_order(&self, shop: &str, order: ChildOrder) {
        self.shared.with_shop(shop, |s| s.child_order = order);
    }

    /// Makes the next bulk operation of `shop` fail, truncate or corrupt its file.
    pub fn inject_bulk_fault(&self, shop: &str, fault: BulkFault) {
        self.shared
            .with_shop(shop, |s| s.bulk_faults.push_back(fault));
    }

    /// The ground truth of a bulk operation's file, once it is known.
    pub fn bulk_ground_truth(&self, shop: &str, bulk_gid: &str) -> Option<GroundTruth> {
        self.shared.with_shop(shop, |s| {
            s.bulk
                .iter()
                .find(|o| o.gid() == bulk_gid)
                .and_then(|o| o.truth.clone())
        })
    }

    /// The metafield of `shop` (namespace as stored: `$app:x` is `app--<id>--x`).
    pub fn metafield(
        &self,
        shop: &str,
        owner: &str,
        namespace: &str,
        key: &str,
    ) -> Option<StoredMetafield> {
        let ns = metafields::resolve_namespace(namespace, self.shared.config.app_id);
        self.shared
            .with_shop(shop, |s| s.metafields.get(owner, &ns, key).cloned())
    }

    /// Every metafield of `shop`.
    pub fn metafields(&self, shop: &str) -> Vec<StoredMetafield> {
        self.shared.with_shop(shop, |s| s.metafields.all())
    }

    /// The unit price in cents a B2B checkout of `shop` charges a buyer at
    /// `company_location_id` (GID) for `quantity` units of `variant_id`: the location's price
    /// list (its quantity break with the largest minimum not above `quantity`, else its fixed
    /// price), else the variant's list price; or the variant's quantity rule the quantity
    /// breaks (see [`price_lists`]).
    pub fn checkout_price(
        &self,
        shop: &str,
        company_location_id: &str,
        variant_id: u64,
        quantity: u32,
    ) -> Result<u64, CheckoutError> {
        self.shared.with_shop(shop, |s| {
            s.price_lists
                .checkout_price(company_location_id, variant_id, quantity, &s.catalog)
        })
    }

    /// Sets the fixed price of `variant_id` on the price list of `company_location_id` to
    /// `cents`, as a merchant editing it in the admin would: no webhook. Whether the location
    /// has a price list.
    pub fn edit_price_silently(
        &self,
        shop: &str,
        company_location_id: &str,
        variant_id: u64,
        cents: u64,
    ) -> bool {
        self.shared.with_shop(shop, |s| {
            s.price_lists
                .edit_price(company_location_id, variant_id, cents)
        })
    }

    /// The price list of `company_location_id`'s catalog in `shop`, if it has one.
    pub fn price_list_of(&self, shop: &str, company_location_id: &str) -> Option<PriceList> {
        self.shared
            .with_shop(shop, |s| s.price_lists.price_list_of(company_location_id))
    }

    /// Every draft order of `shop`.
    pub fn draft_orders(&self, shop: &str) -> Vec<DraftOrderRecord> {
        self.shared.with_shop(shop, |s| s.drafts.clone())
    }

    /// Makes the `nth` (1-based) `draftOrderCreate` of `shop` from now on fail *after* it was
    /// applied: the draft exists but the client gets `fault` (a 5xx, or an answer held past
    /// its timeout), so it cannot know — Shopify's "outcome unknown".
    pub fn fail_draft_create_after_applying(&self, shop: &str, nth: u64, fault: AfterApply) {
        self.shared
            .with_shop(shop, |s| s.draft_faults.push(nth, fault));
    }

    /// Every webhook delivery attempt the simulator made.
    pub fn webhook_attempts(&self) -> Vec<Attempt> {
        self.shared.webhooks.attempts()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimulatorConfig {
        &self.shared.config
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
