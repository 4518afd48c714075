//! Shared test support: signed envelopes, an in-process server on a test database, and the
//! real `origin` binary as a child process.

#![allow(dead_code)] // Each test file uses a different part of this module.

pub mod salesforce;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_webhook::SigningKey;

/// The envelope key id and secret every test server accepts.
pub const KEY_ID: &str = "edge-test";
/// The envelope secret.
pub const KEY_SECRET: &str = "edge-test-secret-0123456789abcdefghij";
/// A bearer token with every scope, once [`grant_admin`] has stored it.
pub const ADMIN_TOKEN: &str = "wso_admin-test-token-with-every-scope-00";
/// Shopify client secret for direct mode.
pub const SHOPIFY_SECRET: &str = "shopify-test-secret-0123456789abcdefgh";

/// Seconds since the epoch.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// An envelope for an `orders/create` event of `shop` with a small valid order.
pub fn envelope(webhook_id: &str, shop: &str, order_id: u64) -> Value {
    json!({
        "meta": {
            "webhook_id": webhook_id,
            "event_id": format!("evt-{webhook_id}"),
            "topic": "orders/create",
            "shop": shop,
            "api_version": "2025-07",
            "triggered_at": "2026-11-23T10:00:00Z",
            "name": null
        },
        "received_at_ms": now() * 1000,
        "original_bytes": 1234,
        "payload": {"json": {"stripping": "allowlist", "body": order(order_id)}}
    })
}

/// A small stripped order body.
pub fn order(id: u64) -> Value {
    let spec = shopify_simulator::payloads::OrderSpec::new(id, 2);
    let full = serde_json::to_vec(&shopify_simulator::payloads::order(&spec)).unwrap();
    let stripped = wholesail_webhook::strip("orders/create", &full).unwrap();
    serde_json::from_str(&stripped.json).unwrap()
}

/// A body and its v2 signature header for a request to `url`, signed now.
pub fn signed_for(url: &str, body: &Value) -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(body).unwrap();
    let path = reqwest::Url::parse(url).unwrap().path().to_owned();
    let sig = SigningKey::new(KEY_ID, KEY_SECRET)
        .unwrap()
        .sign_request(&path, &bytes, now());
    (bytes, sig)
}

/// A body and its v1 signature header (no path bound, as edges before v2 signed), signed now.
pub fn signed(body: &Value) -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = SigningKey::new(KEY_ID, KEY_SECRET)
        .unwrap()
        .sign(&bytes, now());
    (bytes, sig)
}

/// The URL of the database `pool` is connected to.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL (eval \"$(cargo xtask pg)\")");
    let db = pool
        .connect_options()
        .get_database()
        .expect("test pool names its database")
        .to_owned();
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL ends with /dbname");
    format!("{server}/{db}")
}

/// A running `origin serve` child process.
pub struct Origin {
    /// The child.
    pub child: Child,
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Its log lines so far (JSON).
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    /// Starts `origin serve` on a free port against `database_url`, with short worker timings
    /// and the test keys; `env` overrides (`WHOLESAIL_WORKER__…`).
    pub fn spawn(database_url: &str, env: &[(&str, &str)]) -> Origin {
        Origin::start(Origin::command(database_url, env))
    }

    /// The command [`Origin::spawn`] runs, to adjust before [`Origin::start`].
    pub fn command(database_url: &str, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_origin"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("WHOLESAIL_BIND", "127.0.0.1:0")
            .env("WHOLESAIL_DATABASE_URL", database_url)
            .env(
                "WHOLESAIL_INTERNAL__KEYS",
                format!(r#"[{{id="{KEY_ID}",secret="{KEY_SECRET}"}}]"#),
            )
            .env("WHOLESAIL_SHOPIFY__SECRET", SHOPIFY_SECRET)
            .env("WHOLESAIL_POOL_SIZE", "5")
            .env("WHOLESAIL_WORKER__POLL_INTERVAL_MS", "200")
            .env("WHOLESAIL_WORKER__LEASE_MS", "2000")
            .env("WHOLESAIL_WORKER__BACKOFF_BASE_MS", "200")
            .env("WHOLESAIL_WORKER__BACKOFF_MAX_MS", "2000")
            // No scheduled order, catalog or Salesforce reconciliation (nor install
            // backfill): tests that want them run them.
            .env("WHOLESAIL_RECONCILE__ORDERS", "[]")
            .env("WHOLESAIL_RECONCILE__CATALOG_INTERVAL_MS", "0")
            .env("WHOLESAIL_RECONCILE__SALESFORCE_INTERVAL_MS", "0")
            .env("WHOLESAIL_RECONCILE__PRICE_LISTS_INTERVAL_MS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `cmd` (an `origin serve`) and waits until it listens.
    pub fn start(mut cmd: Command) -> Origin {
        let mut child = cmd.spawn().expect("origin binary starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v.pointer("/fields/message").and_then(Value::as_str)
                        == Some("origin listening")
                    {
                        let addr = v.pointer("/fields/addr").and_then(Value::as_str).unwrap();
                        let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("origin did not start: {:#?}", logs.lock().unwrap());
            }
        };
        Origin { child, addr, logs }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit (at most `limit`); returns whether it exited 0.
    pub fn terminate(mut self, limit: Duration) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("origin ignored SIGTERM for {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stores [`ADMIN_TOKEN`] with every scope, as `test-admin`.
pub async fn grant_admin(pool: &PgPool) {
    use wholesail_origin::auth::{tokens, Scope};
    tokens::insert(pool, "test-admin", &Scope::ALL, ADMIN_TOKEN, None)
        .await
        .expect("the admin test token is stored");
}

/// Posts a signed envelope body to `url`.
pub async fn post_signed(url: &str, body: &Value) -> reqwest::Response {
    let (bytes, sig) = signed_for(url, body);
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(wholesail_webhook::SIGNATURE_HEADER, sig)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// Polls `check` until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rows by status.
pub async fn count(pool: &PgPool, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inbox WHERE status = $1")
        .bind(status)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Serves every origin route (the draft-order ones included) in-process on a free port over
/// `pool` (no workers, no shops), with the test keys, `max_body_bytes` as the body cap, and
/// [`ADMIN_TOKEN`] granted.
pub async fn serve_routes(pool: PgPool, max_body_bytes: usize) -> SocketAddr {
    use std::sync::Arc;
    use wholesail_origin::app::{router, AppState};
    use wholesail_origin::draft_orders::{self, api::DraftOrdersApi};
    grant_admin(&pool).await;
    let catalog = wholesail_origin::catalog::Runner::from_url(
        pool.clone(),
        &database_url(&pool),
        wholesail_origin::catalog::Settings::default(),
    )
    .unwrap();
    let state = AppState {
        pool,
        // v1 still accepted, as `internal.accept_v1` defaults to during the rollout.
        keyring: Arc::new(
            wholesail_webhook::Keyring::new(
                vec![SigningKey::new(KEY_ID, KEY_SECRET).unwrap()],
                300,
            )
            .accepting_v1(true),
        ),
        shopify: Some(Arc::new(wholesail_webhook::ShopifySecrets::new(
            SHOPIFY_SECRET,
            None::<&str>,
        ))),
        max_lag_secs: 60.0,
        metrics: wholesail_origin::ops::recorder(),
        shops: Arc::new(wholesail_origin::shops::Shops::default()),
        catalog,
    };
    let draft_orders = draft_orders::api::router(DraftOrdersApi {
        pool: state.pool.clone(),
        shops: state.shops.clone(),
        callbacks: draft_orders::Settings::default().callback_policy(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(state, max_body_bytes).merge(draft_orders))
            .await
            .unwrap()
    });
    addr
}

/// Runs `origin <args>` against the database at `url` and asserts it succeeded; returns its
/// stdout and stderr.
pub fn origin_cli(url: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_origin"))
        .args(args)
        .env_clear()
        .env("WHOLESAIL_DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// `s` as a shop domain (test shops are valid `*.myshopify.com` names).
pub fn domain(s: &str) -> wholesail_webhook::ShopDomain {
    wholesail_webhook::ShopDomain::parse(s).expect("a myshopify domain")
}

/// An event of `shop` as the worker hands it over, its payload stripped by the real allowlist.
pub fn inbox_event(
    shop: &str,
    id: i64,
    topic: &str,
    payload: &Value,
) -> wholesail_origin::handlers::InboxEvent {
    let stripped = wholesail_webhook::strip(topic, payload.to_string().as_bytes()).unwrap();
    wholesail_origin::handlers::InboxEvent {
        id,
        webhook_id: format!("wh-{id}"),
        event_id: Some(format!("ev-{id}")),
        shop: domain(shop),
        topic: topic.to_owned(),
        payload: stripped.json,
    }
}
