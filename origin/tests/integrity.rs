//! Intake integrity against real PostgreSQL and the real `origin` binary: captured bodies
//! replayed as deletes or for another shop, payloads `jsonb` refuses, the v2 envelope
//! signature, the `i64::MIN` timestamp.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_webhook::{BatchResponse, ItemStatus, ShopifySecrets, SigningKey, SIGNATURE_HEADER};

const SHOP: &str = "acme-wholesale.myshopify.com";
const OTHER: &str = "globex.myshopify.com";

/// Delivers `body` to origin's direct-mode route as Shopify would, signed with the app secret.
async fn deliver(url: &str, body: &[u8], topic: &str, shop: &str, webhook_id: &str) -> u16 {
    let hmac = ShopifySecrets::new(SHOPIFY_SECRET, None::<&str>).sign(body);
    reqwest::Client::new()
        .post(url)
        .header("X-Shopify-Hmac-Sha256", hmac)
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Shop-Domain", shop)
        .header("X-Shopify-API-Version", "2025-07")
        .header("X-Shopify-Webhook-Id", webhook_id)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// (status, last_error) of the inbox row of `webhook_id`.
async fn row(pool: &PgPool, webhook_id: &str) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, last_error FROM inbox WHERE webhook_id = $1")
        .bind(webhook_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn full_order(seed: u64) -> Vec<u8> {
    let spec = shopify_simulator::payloads::OrderSpec::new(seed, 2);
    serde_json::to_vec(&shopify_simulator::payloads::order(&spec)).unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn captured_update_resent_as_delete_leaves_the_order_alive(pool: PgPool) {
    // Fails before the fix: the delete was applied and the order tombstoned.
    let origin = Origin::spawn(&database_url(&pool), &[]);
    let url = origin.url("/webhooks/shopify");
    let body = full_order(41);
    let id = shopify_simulator::payloads::OrderSpec::new(41, 0).id as i64;
    assert_eq!(
        deliver(&url, &body, "orders/updated", SHOP, "u-1").await,
        200
    );
    // The attacker re-sends the captured signed body under orders/delete, new webhook id.
    assert_eq!(
        deliver(&url, &body, "orders/delete", SHOP, "forged-1").await,
        200
    );
    // Through the edge's envelope too (an edge that predates the shape check).
    let stripped = wholesail_webhook::strip("orders/updated", &body).unwrap();
    let mut env = envelope("forged-2", SHOP, 41);
    env["meta"]["topic"] = json!("orders/delete");
    env["payload"]["json"]["body"] = serde_json::from_str(&stripped.json).unwrap();
    let r: BatchResponse = post_signed(&origin.url("/internal/webhooks"), &env)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r.results[0].status, ItemStatus::Accepted);

    eventually(Duration::from_secs(20), "inbox drained", || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox WHERE status IN ('pending', 'processing')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        open == 0
    })
    .await;
    let deleted: Option<Option<String>> =
        sqlx::query_scalar("SELECT deleted_at::text FROM orders WHERE shop = $1 AND id = $2")
            .bind(SHOP)
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert_eq!(deleted, Some(None), "the order is alive");
    for forged in ["forged-1", "forged-2"] {
        let (status, reason) = row(&pool, forged).await;
        assert_eq!(status, "quarantined", "{forged}");
        assert!(
            reason.as_deref().unwrap().contains("delete shape"),
            "{reason:?}"
        );
    }
    // A genuine delete still applies.
    assert_eq!(
        deliver(&url, br#"{"id":1}"#, "orders/delete", SHOP, "d-1").await,
        200
    );
    let (status, reason) = row(&pool, "d-1").await;
    assert!(
        status != "quarantined" && reason.is_none(),
        "{status} {reason:?}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_body_accepted_for_one_shop_is_quarantined_for_another(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let url = format!("http://{addr}/webhooks/shopify");
    let body = full_order(42);
    assert_eq!(
        deliver(&url, &body, "orders/updated", SHOP, "a-1").await,
        200
    );
    // One payload under several topics of one shop is normal.
    assert_eq!(deliver(&url, &body, "orders/paid", SHOP, "a-2").await, 200);
    // The same signed body replayed for another shop.
    assert_eq!(
        deliver(&url, &body, "orders/updated", OTHER, "b-1").await,
        200
    );
    assert_eq!(row(&pool, "a-1").await, ("pending".into(), None));
    assert_eq!(row(&pool, "a-2").await, ("pending".into(), None));
    let (status, reason) = row(&pool, "b-1").await;
    assert_eq!(status, "quarantined");
    let reason = reason.unwrap();
    assert!(
        reason.contains(SHOP) && reason.contains("webhook a-"),
        "{reason}"
    );

    // Within one edge batch too, judged against earlier items of the batch.
    let mut a = envelope("e-1", SHOP, 43);
    let mut b = envelope("e-2", OTHER, 43);
    let hash = wholesail_webhook::hex(&wholesail_webhook::body_sha256(b"raw body 43"));
    a["body_sha256"] = json!(hash);
    b["body_sha256"] = json!(hash);
    let r: BatchResponse = post_signed(
        &format!("http://{addr}/internal/webhooks"),
        &json!({"envelopes": [a, b]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(r.results.iter().all(|r| r.status == ItemStatus::Accepted));
    assert_eq!(row(&pool, "e-1").await.0, "pending");
    assert_eq!(row(&pool, "e-2").await.0, "quarantined");
    let digest: Vec<u8> =
        sqlx::query_scalar("SELECT body_sha256 FROM inbox WHERE webhook_id = 'e-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(wholesail_webhook::hex(&digest), hash);
}

#[sqlx::test(migrations = "../migrations")]
async fn payloads_jsonb_refuses_are_quarantined_alone(pool: PgPool) {
    // Fails before the fix: the whole batch failed (503) and none of it was stored.
    let addr = serve_routes(pool.clone(), 4 << 20).await;
    let url = format!("http://{addr}/internal/webhooks");
    // Built as text: serde_json's Value would refuse the deep one before origin sees it.
    let with_body = |id: &str, order: u64, body: &str| -> String {
        let mut env = envelope(id, SHOP, order);
        env["payload"]["json"]["body"] = json!("BODY");
        env.to_string().replace(r#""BODY""#, body)
    };
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let batch = format!(
        r#"{{"envelopes":[{},{},{},{},{}]}}"#,
        envelope("ok-1", SHOP, 51),
        with_body("surrogate", 52, r#"{"id":52,"name":"\ud800"}"#),
        with_body("huge-number", 53, r#"{"id":53,"total_price":1e999999}"#),
        with_body("deep", 54, &format!(r#"{{"id":54,"tags":{deep}}}"#)),
        envelope("ok-2", SHOP, 55),
    );
    let sig = SigningKey::new(KEY_ID, KEY_SECRET).unwrap().sign_request(
        "/internal/webhooks",
        batch.as_bytes(),
        now(),
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .header(SIGNATURE_HEADER, sig)
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r: BatchResponse = resp.json().await.unwrap();
    assert!(
        r.results.iter().all(|r| r.status == ItemStatus::Accepted),
        "{r:?}"
    );
    for ok in ["ok-1", "ok-2"] {
        assert_eq!(row(&pool, ok).await, ("pending".into(), None), "{ok}");
    }
    for bad in ["surrogate", "huge-number", "deep"] {
        let (status, reason) = row(&pool, bad).await;
        assert_eq!(status, "quarantined", "{bad}");
        assert!(
            reason
                .as_deref()
                .unwrap()
                .contains("PostgreSQL cannot store"),
            "{bad}: {reason:?}"
        );
    }
    let kept: Vec<u8> =
        sqlx::query_scalar("SELECT raw_body FROM inbox WHERE webhook_id = 'surrogate'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kept, br#"{"id":52,"name":"\ud800"}"#);
}

#[sqlx::test(migrations = "../migrations")]
async fn v2_signatures_bind_the_intake_path(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let webhooks = format!("http://{addr}/internal/webhooks");
    let dead = format!("http://{addr}/internal/dead-letters");
    let body = serde_json::to_vec(&envelope("p-1", SHOP, 61)).unwrap();
    let key = SigningKey::new(KEY_ID, KEY_SECRET).unwrap();
    let post = |url: &str, sig: String| {
        reqwest::Client::new()
            .post(url)
            .header(SIGNATURE_HEADER, sig)
            .body(body.clone())
            .send()
    };
    // Signed for the main intake, replayed to the dead-letter intake.
    let for_webhooks = key.sign_request("/internal/webhooks", &body, now());
    let moved = post(&dead, for_webhooks.clone()).await.unwrap();
    assert_eq!(moved.status(), 401);
    assert_eq!(post(&webhooks, for_webhooks).await.unwrap().status(), 200);
    // v1 still passes while `internal.accept_v1` allows it.
    let (body2, v1) = signed(&envelope("p-2", SHOP, 62));
    let resp = reqwest::Client::new()
        .post(&webhooks)
        .header(SIGNATURE_HEADER, v1)
        .body(body2)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[sqlx::test(migrations = "../migrations")]
async fn v1_is_refused_once_the_rollout_is_over(pool: PgPool) {
    let origin = Origin::spawn(
        &database_url(&pool),
        &[("WHOLESAIL_INTERNAL__ACCEPT_V1", "false")],
    );
    let env = envelope("r-1", SHOP, 71);
    let (bytes, v1) = signed(&env);
    let resp = reqwest::Client::new()
        .post(origin.url("/internal/webhooks"))
        .header(SIGNATURE_HEADER, v1)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"].as_str().unwrap().contains("v1"),
        "{err}"
    );
    let ok = post_signed(&origin.url("/internal/webhooks"), &env).await;
    assert_eq!(ok.status(), 200);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_timestamp_of_i64_min_is_refused_not_a_crash(pool: PgPool) {
    // Fails before the fix: the skew overflowed and the handler panicked (no answer).
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/internal/webhooks"))
        .header(
            SIGNATURE_HEADER,
            format!("v2,kid={KEY_ID},t={},sig=AAAA", i64::MIN),
        )
        .body(r#"{"envelopes":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tolerance window"),
        "{err}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_direct_body_shorter_than_its_content_length_is_a_bad_request(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let body = full_order(81);
    let hmac = ShopifySecrets::new(SHOPIFY_SECRET, None::<&str>).sign(&body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhooks/shopify HTTP/1.1\r\nhost: {addr}\r\nx-shopify-hmac-sha256: {hmac}\r\n\
         x-shopify-topic: orders/create\r\nx-shopify-shop-domain: {SHOP}\r\n\
         x-shopify-api-version: 2025-07\r\nx-shopify-webhook-id: short-1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len() + 100
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    stream.shutdown().await.unwrap(); // the declared length never arrives
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}
