//! Shared test helpers: a simulator, a client for it, waiting on conditions.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use salesforce_simulator::{
    Config as SimConfig, Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use serde::{Deserialize, Serialize};
use wholesail_salesforce::{Client, Config};

/// Starts a simulator configured by `tweak`.
pub async fn simulator(tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut config = SimConfig::default();
    tweak(&mut config);
    Simulator::start(config).await.expect("simulator starts")
}

/// A client configuration for `sim`.
pub fn config(sim: &Simulator) -> Config {
    let mut config = Config::new(
        sim.base_url(),
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET.to_owned().into(),
    );
    config.api_version = sim.config().api_version.clone();
    config.request_timeout = Duration::from_secs(10);
    config
}

/// A client for `sim` with the default configuration.
pub fn client(sim: &Simulator) -> Client {
    Client::new(config(sim)).unwrap()
}

/// An Account row as Wholesail writes it.
#[derive(Clone, Debug, Serialize)]
pub struct AccountIn {
    #[serde(rename = "Name")]
    pub name: Option<String>,
    #[serde(rename = "Shopify_Company_Id__c")]
    pub company_id: String,
}

/// `n` accounts `company-{i}` named `Company {i}`.
pub fn accounts(range: std::ops::Range<usize>) -> Vec<AccountIn> {
    range
        .map(|i| AccountIn {
            name: Some(format!("Company {i}")),
            company_id: format!("company-{i}"),
        })
        .collect()
}

/// An Account row as Wholesail reads it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct AccountRow {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Shopify_Company_Id__c")]
    pub company_id: Option<String>,
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
