//! The order a claimed batch is applied in: one global order by shop and resource, so two
//! worker batches touching the same orders lock them in the same order (no deadlock). And its
//! size: at most `batch` rows and, past the first, `max_bytes` of payload as sent.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use wholesail_origin::pipeline::inbox::{self, Body, NewEvent, Source};

const SHOP: &str = "acme-wholesale.myshopify.com";

fn event(webhook_id: &str, topic: &str, payload: serde_json::Value) -> NewEvent {
    let json = payload.to_string();
    NewEvent {
        webhook_id: webhook_id.to_owned(),
        event_id: None,
        shop: wholesail_webhook::ShopDomain::parse(SHOP).unwrap(),
        topic: topic.to_owned(),
        api_version: "2025-07".to_owned(),
        triggered_at: None,
        received_at: OffsetDateTime::now_utc(),
        stripping: "allowlist".to_owned(),
        original_bytes: json.len() as i64,
        body_sha256: wholesail_webhook::body_sha256(webhook_id.as_bytes()),
        body: Body::Json(json),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_claimed_batch_is_ordered_by_resource_then_age(pool: PgPool) {
    // Fails before the fix: the batch came back in inbox order, so batch A could lock
    // order 2 then 1 while batch B locked 1 then 2 (23 deadlocks in a 20,000-event storm).
    let events = [
        event("w1", "orders/create", json!({"id": 2})),
        event("w2", "orders/create", json!({"id": 1})),
        event(
            "w3",
            "inventory_levels/update",
            json!({"inventory_item_id": 7, "location_id": 8, "admin_graphql_api_id": "gid://x"}),
        ),
        event("w4", "orders/updated", json!({"id": 2})),
        event("w5", "orders/delete", json!({"id": 1})),
        event(
            "w6",
            "inventory_levels/disconnect",
            json!({"inventory_item_id": 7, "location_id": 8}),
        ),
    ];
    inbox::insert(&pool, Source::Edge, &events).await.unwrap();
    let claimed = inbox::claim(&pool, "t", 50, 50, "", Duration::from_secs(60), i64::MAX)
        .await
        .unwrap();
    let order: Vec<&str> = claimed
        .iter()
        .map(|c| c.event.webhook_id.as_str())
        .collect();
    assert_eq!(order, ["w3", "w6", "w2", "w5", "w1", "w4"]);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_claim_stops_at_its_byte_budget_but_takes_at_least_one_row(pool: PgPool) {
    // Orders of these sizes (bytes as Shopify sent them), oldest first.
    let sizes = [600, 600, 5_000, 100, 100];
    for (n, bytes) in sizes.iter().enumerate() {
        let mut e = event(&format!("w{n}"), "orders/create", json!({"id": n}));
        e.original_bytes = *bytes;
        // One insert per event: each gets a later id, so the claim order is the list's.
        inbox::insert(&pool, Source::Edge, &[e]).await.unwrap();
    }
    let claim = || inbox::claim(&pool, "t", 50, 50, "", Duration::from_secs(60), 1_000);
    let webhooks = |batch: &[inbox::Claimed]| -> Vec<String> {
        batch.iter().map(|c| c.event.webhook_id.clone()).collect()
    };

    // 600 < 1,000 before it takes the second row; 1,200 ≥ 1,000 stops before the third.
    let first = claim().await.unwrap();
    assert_eq!(webhooks(&first), ["w0", "w1"]);
    assert_eq!(first.iter().map(|c| c.bytes).sum::<i64>(), 1_200);
    // A row over the whole budget is still claimed, alone.
    assert_eq!(webhooks(&claim().await.unwrap()), ["w2"]);
    assert_eq!(webhooks(&claim().await.unwrap()), ["w3", "w4"]);
    assert!(claim().await.unwrap().is_empty());

    let processing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inbox WHERE status = 'processing'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        processing,
        sizes.len() as i64,
        "every row claimed exactly once"
    );
}
