//! Salesforce sync support: Shopify events applied as the handlers apply them, the simulator
//! and clients for it, the sync loop with test timings, and the outbox as the tests read it.

use std::collections::HashMap;
use std::time::Duration;

use salesforce_simulator::{Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::payloads::{order, OrderSpec};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wholesail_origin::handlers::{self, InboxEvent, Outcome};
use wholesail_origin::salesforce::runner::{Settings, Sync};

/// The shop whose rows the tests sync.
pub const SHOP: &str = "acme.myshopify.com";
/// A Shopify `updated_at`.
pub const T1: &str = "2026-11-23T10:00:00-05:00";
/// A later `updated_at`.
pub const T2: &str = "2026-11-23T10:05:00-05:00";

/// Inbox event `id` of SHOP: `payload` stripped as the edge strips `topic`.
pub fn event(id: i64, topic: &str, payload: &Value) -> InboxEvent {
    let stripped = wholesail_webhook::strip(topic, payload.to_string().as_bytes()).unwrap();
    InboxEvent {
        id,
        webhook_id: format!("wh-{id}"),
        event_id: None,
        shop: super::domain(SHOP),
        topic: topic.to_owned(),
        payload: stripped.json,
    }
}

/// Applies `event` in its own transaction, as the inbox worker does.
pub async fn apply(pool: &PgPool, event: &InboxEvent) -> Outcome {
    let mut tx = pool.begin().await.unwrap();
    let outcome = handlers::apply(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
    outcome
}

/// A `companies/*` payload.
pub fn company(id: u64, name: &str, at: &str) -> Value {
    json!({"admin_graphql_api_id": format!("gid://shopify/Company/{id}"), "name": name,
           "external_id": null, "note": null, "customer_since": "2025-01-01T00:00:00Z",
           "created_at": "2025-01-01T00:00:00Z", "updated_at": at,
           "main_contact_admin_graphql_api_id": null})
}

/// An order of `seed` (its company is `9_000_000 + seed % 500`).
pub fn order_of(seed: u64, at: &str) -> (Value, u64) {
    let mut spec = OrderSpec::new(seed, 2);
    spec.updated_at = at.to_owned();
    (order(&spec), 9_000_000 + seed % 500)
}

/// The catalog products of `order`'s lines (one products/create per product, its variants as
/// the lines name them).
pub fn products_of(order: &Value, at: &str) -> Vec<Value> {
    let mut products: Vec<Value> = Vec::new();
    for line in order["line_items"].as_array().unwrap() {
        let variant = json!({"id": line["variant_id"], "product_id": line["product_id"],
            "sku": line["sku"], "title": line["variant_title"], "price": line["price"],
            "position": products.len() + 1});
        match products.iter_mut().find(|p| p["id"] == line["product_id"]) {
            Some(p) => p["variants"].as_array_mut().unwrap().push(variant),
            None => products.push(json!({"id": line["product_id"],
                "admin_graphql_api_id": format!("gid://shopify/Product/{}", line["product_id"]),
                "title": line["title"], "status": "active", "updated_at": at,
                "variants": [variant]})),
        }
    }
    products
}

/// Applies the catalog products of `order` (event ids from `first_id`); returns how many.
pub async fn apply_catalog(pool: &PgPool, order: &Value, first_id: i64) -> i64 {
    let products = products_of(order, T1);
    for (i, p) in products.iter().enumerate() {
        apply(pool, &event(first_id + i as i64, "products/create", p)).await;
    }
    products.len() as i64
}

/// A simulator with the default configuration.
pub async fn simulator() -> Simulator {
    Simulator::start(salesforce_simulator::Config::default())
        .await
        .unwrap()
}

/// The client configuration for `sim`'s org (defaults otherwise).
pub fn client_config(sim: &Simulator) -> wholesail_salesforce::Config {
    wholesail_salesforce::Config::new(
        sim.base_url(),
        DEFAULT_CLIENT_ID,
        SecretString::from(DEFAULT_CLIENT_SECRET),
    )
}

/// A client of `sim`'s org.
pub fn client(sim: &Simulator) -> wholesail_salesforce::Client {
    wholesail_salesforce::Client::new(client_config(sim)).unwrap()
}

/// Short backoffs, few attempts and a fast poll.
pub fn test_settings() -> Settings {
    Settings {
        backoff_base_ms: 20,
        backoff_max_ms: 100,
        max_attempts: 5,
        poll_interval_ms: 50,
        wait_ms: 100,
        ..Settings::default()
    }
}

/// The sync of SHOP to `sim` with [`test_settings`].
pub fn sync(pool: &PgPool, sim: &Simulator) -> Sync {
    sync_with(pool, sim, test_settings())
}

/// The sync of SHOP to `sim` with `settings`.
pub fn sync_with(pool: &PgPool, sim: &Simulator, settings: Settings) -> Sync {
    sync_through(pool, client(sim), "test-sync", settings)
}

/// The sync of SHOP through `client` as `worker` (several syncs need several workers).
pub fn sync_through(
    pool: &PgPool,
    client: wholesail_salesforce::Client,
    worker: &str,
    settings: Settings,
) -> Sync {
    Sync::new(
        pool.clone(),
        HashMap::from([(super::domain(SHOP), client)]),
        worker,
        settings,
    )
}

/// Sync loops running in the background until [`Running::stop`].
pub struct Running {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Runs each of `syncs`.
    pub fn start(syncs: impl IntoIterator<Item = Sync>) -> Running {
        let stop = CancellationToken::new();
        let tasks = syncs
            .into_iter()
            .map(|s| tokio::spawn(s.run(stop.clone())))
            .collect();
        Running { stop, tasks }
    }

    /// Stops them and waits until they have given back what they held.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Outbox rows by status.
pub async fn outbox_status(pool: &PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT status, count(*) FROM salesforce_outbox GROUP BY status",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Whether nothing is pending or in flight.
pub async fn drained(pool: &PgPool) -> bool {
    let s = outbox_status(pool).await;
    !s.contains_key("pending") && !s.contains_key("processing")
}

/// Runs the sync until nothing is pending or in flight.
pub async fn drain(pool: &PgPool, sim: &Simulator) {
    let running = Running::start([sync(pool, sim)]);
    super::eventually(Duration::from_secs(20), "the outbox drains", || {
        drained(pool)
    })
    .await;
    running.stop().await;
}
