//! Starting a simulator and a client pointed at it.

#![allow(dead_code)] // each test file uses a different part

use std::time::Duration;

use secrecy::SecretString;
use shopify_simulator::{BucketConfig, Simulator, SimulatorConfig, DEFAULT_TOKEN};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

pub const VERSION: &str = "2026-01";

pub async fn simulator(configure: impl FnOnce(&mut SimulatorConfig)) -> Simulator {
    let mut config = SimulatorConfig::default();
    configure(&mut config);
    Simulator::start(config).await.expect("simulator starts")
}

pub fn client_config(sim: &Simulator) -> AdminConfig {
    let mut c = AdminConfig::new(sim.base_url(), VERSION, SecretString::from(DEFAULT_TOKEN));
    c.request_timeout = Duration::from_secs(5);
    c.backoff_base = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(100);
    c
}

pub fn client(sim: &Simulator) -> AdminClient {
    AdminClient::new(client_config(sim)).unwrap()
}

pub fn bucket(maximum_available: f64, restore_rate: f64) -> BucketConfig {
    BucketConfig {
        maximum_available,
        restore_rate,
    }
}

/// Raw GraphQL POST with the default token.
pub async fn raw(sim: &Simulator, query: &str, variables: serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(sim.graphql_url(VERSION))
        .header("X-Shopify-Access-Token", DEFAULT_TOKEN)
        .json(&serde_json::json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
