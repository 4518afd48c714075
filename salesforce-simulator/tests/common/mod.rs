//! Shared test helpers: start a simulator, log in, call the REST API, wait on conditions.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use salesforce_simulator::{Config, Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::Value;

/// A simulator and a logged-in HTTP client.
pub struct Org {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn start(config: Config) -> Org {
    let sim = Simulator::start(config).await.expect("simulator starts");
    let http = reqwest::Client::new();
    let token = login(&http, &sim).await;
    Org { sim, http, token }
}

pub async fn login(http: &reqwest::Client, sim: &Simulator) -> String {
    let resp: Value = http
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["access_token"].as_str().expect("a token").to_owned()
}

impl Org {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.data_url())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json, headers)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::GET, path, None).await;
        (s, v)
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::PATCH, path, Some(body)).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.send(reqwest::Method::POST, path, Some(body)).await;
        (s, v)
    }

    pub async fn query(&self, soql: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url("/query"))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
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

pub fn account(company: &str, name: &str) -> Value {
    serde_json::json!({"attributes": {"type": "Account"}, "Name": name, "Shopify_Company_Id__c": company})
}
