//! Intake over HTTP against a real PostgreSQL: signatures, per-item verdicts, deduplication,
//! quarantine, the edge's dead letters, direct mode and the admin API.

mod common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_webhook::{BatchResponse, ItemStatus, SigningKey, SIGNATURE_HEADER};

const SHOP: &str = "acme-wholesale.myshopify.com";

async fn results(resp: reqwest::Response) -> Vec<(Option<String>, ItemStatus, Option<String>)> {
    assert_eq!(resp.status(), 200);
    let body: BatchResponse = resp.json().await.unwrap();
    body.results
        .into_iter()
        .map(|r| (r.webhook_id, r.status, r.reason))
        .collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn duplicate_delivery_is_acknowledged_and_ignored(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let url = format!("http://{addr}/internal/webhooks");
    let batch = json!({"envelopes": [envelope("w-1", SHOP, 1), envelope("w-1", SHOP, 1), envelope("w-2", SHOP, 2)]});
    let first = results(post_signed(&url, &batch).await).await;
    let statuses: Vec<ItemStatus> = first.iter().map(|r| r.1).collect();
    assert_eq!(
        statuses,
        [
            ItemStatus::Accepted,
            ItemStatus::Duplicate,
            ItemStatus::Accepted
        ]
    );
    // The edge redelivers the same envelope on its own: still one row.
    let again = results(post_signed(&url, &envelope("w-1", SHOP, 1)).await).await;
    assert_eq!(again[0].1, ItemStatus::Duplicate);
    let rows: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT webhook_id, event_id, status FROM inbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            ("w-1".into(), Some("evt-w-1".into()), "pending".into()),
            ("w-2".into(), Some("evt-w-2".into()), "pending".into())
        ]
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn each_envelope_is_judged_alone_and_malformed_payloads_are_quarantined(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let url = format!("http://{addr}/internal/webhooks");
    let mut no_shop = envelope("w-bad", SHOP, 3);
    no_shop["meta"]["shop"] = json!("evil.example.com");
    let malformed = json!({
        "meta": envelope("w-garbled", SHOP, 4)["meta"].clone(),
        "received_at_ms": now() * 1000,
        "original_bytes": 5,
        "payload": {"malformed": {
            "reason": "payload is not valid JSON: key must be a string at line 1 column 2",
            "body_base64": base64::engine::general_purpose::STANDARD.encode(b"{oops")
        }}
    });
    let batch = json!({"envelopes": [envelope("w-ok", SHOP, 1), no_shop, {"not": "an envelope"}, malformed]});
    let r = results(post_signed(&url, &batch).await).await;
    assert_eq!(r[0], (Some("w-ok".into()), ItemStatus::Accepted, None));
    assert_eq!(r[1].0.as_deref(), Some("w-bad"));
    assert_eq!(r[1].1, ItemStatus::Rejected);
    assert!(
        r[1].2.as_ref().unwrap().contains("myshopify"),
        "{:?}",
        r[1].2
    );
    assert_eq!(r[2].1, ItemStatus::Rejected);
    assert!(r[2].2.as_ref().unwrap().contains("invalid envelope"));
    assert_eq!(r[3], (Some("w-garbled".into()), ItemStatus::Accepted, None));

    let (status, err, raw): (String, Option<String>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT status, last_error, raw_body FROM inbox WHERE webhook_id = 'w-garbled'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "quarantined");
    assert!(err.unwrap().contains("not valid JSON"));
    assert_eq!(raw.unwrap(), b"{oops");
    assert_eq!(count(&pool, "pending").await, 1);

    // Operators find it, with the reason and the body as received.
    let client = reqwest::Client::new();
    let listed: Vec<Value> = client
        .get(format!("http://{addr}/admin/dead-letters?quarantined=true"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["webhook_id"], "w-garbled");
    let shown: Value = client
        .get(format!(
            "http://{addr}/admin/dead-letters/{}",
            listed[0]["id"]
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "quarantined");
    assert_eq!(
        shown["raw_body_base64"],
        base64::engine::general_purpose::STANDARD.encode(b"{oops")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_or_expired_signatures_are_refused_with_the_reason_and_store_nothing(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let url = format!("http://{addr}/internal/webhooks");
    let body = serde_json::to_vec(&envelope("w-1", SHOP, 1)).unwrap();
    let client = reqwest::Client::new();
    let send = |sig: Option<String>| {
        let mut req = client.post(&url).body(body.clone());
        if let Some(sig) = sig {
            req = req.header(SIGNATURE_HEADER, sig);
        }
        req.send()
    };
    let cases = [
        (None, "missing X-Wholesail-Signature"),
        (
            Some(SigningKey::new(KEY_ID, "wrong").unwrap().sign(&body, now())),
            "does not match",
        ),
        (
            Some(
                SigningKey::new(KEY_ID, KEY_SECRET)
                    .unwrap()
                    .sign(&body, now() - 3600),
            ),
            "outside the tolerance window",
        ),
        (
            Some(
                SigningKey::new("other", KEY_SECRET)
                    .unwrap()
                    .sign(&body, now()),
            ),
            "unknown signing key",
        ),
    ];
    for (sig, reason) in cases {
        let resp = send(sig).await.unwrap();
        assert_eq!(resp.status(), 401);
        let err: Value = resp.json().await.unwrap();
        assert!(
            err["error"]["message"].as_str().unwrap().contains(reason),
            "{err}"
        );
    }
    let garbage = post_signed_bytes(&url, b"{not json").await;
    assert_eq!(garbage.status(), 400);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

async fn post_signed_bytes(url: &str, bytes: &[u8]) -> reqwest::Response {
    let sig = SigningKey::new(KEY_ID, KEY_SECRET)
        .unwrap()
        .sign(bytes, now());
    reqwest::Client::new()
        .post(url)
        .header(SIGNATURE_HEADER, sig)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn bodies_over_the_cap_are_refused_with_413(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 4096).await;
    let mut big = envelope("w-big", SHOP, 1);
    big["payload"]["json"]["body"]["note"] = json!("x".repeat(8192));
    let resp = post_signed(&format!("http://{addr}/internal/webhooks"), &big).await;
    assert_eq!(resp.status(), 413);
}

#[sqlx::test(migrations = "../migrations")]
async fn edge_dead_letters_are_stored_dead_and_can_be_replayed_through_the_admin_api(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let batch = json!({"envelopes": [envelope("w-dlq", SHOP, 9)]});
    let r =
        results(post_signed(&format!("http://{addr}/internal/dead-letters"), &batch).await).await;
    assert_eq!(r[0].1, ItemStatus::Accepted);
    let client = reqwest::Client::new();
    let admin = |path: &str| format!("http://{addr}/admin/dead-letters{path}");

    assert_eq!(client.get(admin("")).send().await.unwrap().status(), 401);
    let wrong = client
        .get(admin(""))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let list: Vec<Value> = client
        .get(admin(&format!("?shop={SHOP}&topic=orders/create")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["webhook_id"], "w-dlq");
    assert_eq!(list[0]["source"], "edge_dlq");
    assert!(list[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("edge dead-letter queue"));
    let id = list[0]["id"].as_i64().unwrap();

    let other_shop: Vec<Value> = client
        .get(admin("?shop=other.myshopify.com"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(other_shop.is_empty());

    let shown: Value = client
        .get(admin(&format!("/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "dead");
    assert_eq!(
        shown["payload"]["id"],
        envelope("w-dlq", SHOP, 9)["payload"]["json"]["body"]["id"]
    );

    let everything = client
        .post(admin("/replay"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        everything.status(),
        400,
        "an unfiltered replay needs \"all\": true"
    );
    let replayed: Value = client
        .post(admin(&format!("/{id}/replay")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["replayed"], json!([id]));
    let (status, attempts, replays): (String, i32, i32) =
        sqlx::query_as("SELECT status, attempts, replays FROM inbox WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts, replays), ("pending", 0, 1));
}

#[sqlx::test(migrations = "../migrations")]
async fn direct_mode_verifies_shopify_hmac_and_strips_into_the_same_inbox(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let url = format!("http://{addr}/webhooks/shopify");
    let spec = shopify_simulator::payloads::OrderSpec::new(7, 3);
    let body = serde_json::to_vec(&shopify_simulator::payloads::order(&spec)).unwrap();
    let hmac = wholesail_webhook::ShopifySecrets::new(SHOPIFY_SECRET, None::<&str>).sign(&body);
    let client = reqwest::Client::new();
    let deliver = |hmac: &str, webhook_id: Option<&str>| {
        let mut req = client
            .post(&url)
            .header("X-Shopify-Hmac-Sha256", hmac)
            .header("X-Shopify-Topic", "orders/create")
            .header("X-Shopify-Shop-Domain", SHOP)
            .header("X-Shopify-API-Version", "2025-07")
            .header("X-Shopify-Event-Id", "evt-direct")
            .body(body.clone());
        if let Some(id) = webhook_id {
            req = req.header("X-Shopify-Webhook-Id", id);
        }
        req.send()
    };
    assert_eq!(deliver(&hmac, Some("d-1")).await.unwrap().status(), 200);
    assert_eq!(deliver(&hmac, Some("d-1")).await.unwrap().status(), 200);
    assert_eq!(deliver("AAAA", Some("d-2")).await.unwrap().status(), 401);
    let forged = wholesail_webhook::ShopifySecrets::new("other", None::<&str>).sign(&body);
    assert_eq!(deliver(&forged, Some("d-3")).await.unwrap().status(), 401);
    assert_eq!(deliver(&hmac, None).await.unwrap().status(), 400);

    let (n, source, event_id, original, stored): (i64, String, Option<String>, i64, i64) =
        sqlx::query_as(
            "SELECT count(*) OVER (), source, event_id, original_bytes,
                    length(payload::text)::int8 FROM inbox",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(source, "direct");
    assert_eq!(event_id.as_deref(), Some("evt-direct"));
    assert_eq!(original, body.len() as i64);
    assert!(
        stored < original,
        "the payload is stripped ({stored} of {original} bytes)"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_batches_sharing_webhook_ids_do_not_deadlock(pool: PgPool) {
    use rand::seq::SliceRandom;
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let url = format!("http://{addr}/internal/webhooks");
    let items: Vec<Value> = (0..100)
        .map(|i| envelope(&format!("c-{i}"), SHOP, i))
        .collect();
    let mut rng = rand::thread_rng();
    for _ in 0..10 {
        sqlx::query("TRUNCATE inbox").execute(&pool).await.unwrap();
        // Four edge consumers redeliver the same events, each batch in its own order.
        let bodies: Vec<Value> = (0..4)
            .map(|_| {
                let mut b = items.clone();
                b.shuffle(&mut rng);
                json!({ "envelopes": b })
            })
            .collect();
        let mut sends = tokio::task::JoinSet::new();
        for body in bodies {
            let url = url.clone();
            sends.spawn(async move { results(post_signed(&url, &body).await).await });
        }
        let mut accepted = 0;
        while let Some(r) = sends.join_next().await {
            accepted += r
                .unwrap()
                .iter()
                .filter(|r| r.1 == ItemStatus::Accepted)
                .count();
        }
        assert_eq!(
            accepted, 100,
            "each id accepted exactly once across the batches"
        );
    }
}
