//! The webhook sender against a real local receiver: signatures, retries, timeouts,
//! duplicates, disorder, and the simulator's `bulk_operations/finish`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use shopify_simulator::{
    DeliveryConfig, Outcome, Simulator, SimulatorConfig, WebhookSender, DEFAULT_SHOP, DEFAULT_TOKEN,
};
use wholesail_webhook::{ShopifySecrets, VerifiedWebhook};

const SECRET: &str = "hush-its-the-app-secret";

/// What the receiver does with each request: (status, delay), then 200 forever.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<(u16, Duration)>>>,
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (status, delay) = r
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, Duration::ZERO));
    r.seen.lock().unwrap().push((headers, body));
    tokio::time::sleep(delay).await;
    StatusCode::from_u16(status).unwrap()
}

async fn receiver(script: &[(u16, Duration)]) -> (Receiver, String) {
    let r = Receiver::default();
    r.script.lock().unwrap().extend(script.iter().copied());
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

fn fast() -> DeliveryConfig {
    DeliveryConfig {
        time_scale: 0.01, // 1 s connect → 10 ms, 5 s total → 50 ms, 1 min retry → 0.6 s
        retry_delays: vec![Duration::from_secs(1); 3],
        ..DeliveryConfig::default()
    }
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> &'h str {
    h.get(name).unwrap().to_str().unwrap()
}

fn pairs(h: &HeaderMap) -> Vec<(&str, &str)> {
    h.iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn deliveries_are_signed_like_shopify_and_verify() {
    let (r, url) = receiver(&[]).await;
    let sender = WebhookSender::new(SECRET.as_bytes(), fast());
    let w = sender.webhook("orders/create", br#"{"id":1,"note":"caf\u00e9"}"#.to_vec());
    let report = sender.deliver(&url, &w).await;
    assert!(report.delivered);
    let seen = r.seen.lock().unwrap();
    let (headers, body) = &seen[0];
    let secrets = ShopifySecrets::new(SECRET, None::<&str>);
    let v = VerifiedWebhook::verify(body, pairs(headers), &secrets).expect("verifies");
    assert_eq!(v.meta().topic.as_str(), "orders/create");
    assert_eq!(v.meta().webhook_id.as_str(), w.webhook_id);
    assert_eq!(v.meta().event_id.as_deref(), Some(w.event_id.as_str()));
    // A different secret does not verify.
    let wrong = ShopifySecrets::new("other", None::<&str>);
    assert!(VerifiedWebhook::verify(body, pairs(headers), &wrong).is_err());
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_webhook_id_then_delivered() {
    let (r, url) = receiver(&[(500, Duration::ZERO), (302, Duration::ZERO)]).await;
    let sender = WebhookSender::new(SECRET.as_bytes(), fast());
    let w = sender.webhook("products/update", b"{}".to_vec());
    let report = sender.deliver(&url, &w).await;
    let outcomes: Vec<_> = report.attempts.iter().map(|a| a.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Rejected(500),
            Outcome::Rejected(302),
            Outcome::Delivered(200)
        ]
    );
    assert!(report.delivered);
    let seen = r.seen.lock().unwrap();
    assert!(seen
        .iter()
        .all(|(h, _)| header(h, "x-shopify-webhook-id") == w.webhook_id));
    assert_eq!(sender.attempts().len(), 3);
}

#[tokio::test]
async fn a_receiver_slower_than_five_seconds_times_out() {
    // Compressed 100×: the 5 s limit is 50 ms; the receiver takes "200 s" (2 s).
    let (_r, url) = receiver(&[(200, Duration::from_secs(2))]).await;
    let sender = WebhookSender::new(
        SECRET.as_bytes(),
        DeliveryConfig {
            retry_delays: vec![],
            ..fast()
        },
    );
    let report = sender
        .deliver(&url, &sender.webhook("orders/create", b"{}".to_vec()))
        .await;
    assert!(!report.delivered);
    let a = &report.attempts[0];
    assert_eq!(a.outcome, Outcome::TimedOut);
    assert!(a.elapsed >= Duration::from_millis(45), "{:?}", a.elapsed);
    assert!(a.elapsed < Duration::from_secs(1), "{:?}", a.elapsed);
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_then_given_up() {
    let sender = WebhookSender::new(SECRET.as_bytes(), fast());
    let report = sender
        .deliver(
            "http://127.0.0.1:9/hooks",
            &sender.webhook("orders/create", b"{}".to_vec()),
        )
        .await;
    assert!(!report.delivered);
    assert_eq!(report.attempts.len(), 4); // first + 3 retries
    assert!(matches!(
        report.attempts[0].outcome,
        Outcome::ConnectFailed(_)
    ));
}

#[tokio::test]
async fn duplicates_carry_the_same_webhook_id() {
    let (r, url) = receiver(&[]).await;
    let sender = WebhookSender::new(
        SECRET.as_bytes(),
        DeliveryConfig {
            duplicate_rate: 1.0,
            ..fast()
        },
    );
    let w = sender.webhook("orders/paid", b"{\"id\":7}".to_vec());
    let report = sender.deliver(&url, &w).await;
    assert_eq!(report.attempts.len(), 2);
    assert!(report.attempts[1].duplicate);
    let seen = r.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        header(&seen[0].0, "x-shopify-webhook-id"),
        header(&seen[1].0, "x-shopify-webhook-id")
    );
    assert_eq!(seen[0].1, seen[1].1);
}

#[tokio::test]
async fn shuffled_delivery_reorders_but_delivers_everything() {
    let (r, url) = receiver(&[]).await;
    let sender = WebhookSender::new(SECRET.as_bytes(), DeliveryConfig { seed: 3, ..fast() });
    let hooks: Vec<_> = (0..20)
        .map(|i| {
            sender.webhook(
                "inventory_levels/update",
                format!("{{\"seq\":{i}}}").into_bytes(),
            )
        })
        .collect();
    let reports = sender.deliver_shuffled(&url, hooks).await;
    assert!(reports.iter().all(|r| r.delivered));
    let seqs: Vec<i64> = r
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| {
            serde_json::from_slice::<Value>(b).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    assert_ne!(seqs, sorted, "delivered in creation order");
}

#[tokio::test]
async fn a_finished_bulk_operation_sends_a_signed_bulk_operations_finish_webhook() {
    let (r, url) = receiver(&[(503, Duration::ZERO)]).await;
    let mut config = SimulatorConfig {
        app_secret: SECRET.into(),
        webhook_subscriptions: vec![("bulk_operations/finish".into(), url)],
        delivery: fast(),
        ..SimulatorConfig::default()
    };
    config.bulk.duration = Duration::from_millis(100);
    let sim = Simulator::start(config).await.unwrap();
    let resp: Value = reqwest::Client::new()
        .post(sim.graphql_url("2026-01"))
        .header("X-Shopify-Access-Token", DEFAULT_TOKEN)
        .json(&json!({"query": "mutation { bulkOperationRunQuery(query: \"{ products { edges { node { id } } } }\") { bulkOperation { id status } userErrors { message } } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gid = resp["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..100 {
        if r.seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = r.seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "one 503, then the retry");
    let (headers, body) = &seen[1];
    let v = VerifiedWebhook::verify(
        body,
        pairs(headers),
        &ShopifySecrets::new(SECRET, None::<&str>),
    )
    .unwrap();
    assert_eq!(v.meta().topic.as_str(), "bulk_operations/finish");
    assert_eq!(v.meta().shop.as_str(), DEFAULT_SHOP);
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["admin_graphql_api_id"], gid);
    assert_eq!(payload["status"], "completed");
    assert_eq!(payload["type"], "query");
    assert_eq!(sim.webhook_attempts().len(), 2);
}
