//! The order a claimed batch is applied in: one global order by shop and resource, so two
//! worker batches touching the same orders lock them in the same order (no deadlock).

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
    let claimed = inbox::claim(&pool, "t", 50, 50, "", Duration::from_secs(60))
        .await
        .unwrap();
    let order: Vec<&str> = claimed
        .iter()
        .map(|c| c.event.webhook_id.as_str())
        .collect();
    assert_eq!(order, ["w3", "w6", "w2", "w5", "w1", "w4"]);
}
