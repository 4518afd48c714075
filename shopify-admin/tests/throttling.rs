//! The cost bucket: the simulator's arithmetic and error shapes, and a client that paces
//! itself so that it never overdraws.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{bucket, client, client_config, raw, simulator, VERSION};
use secrecy::SecretString;
use serde_json::json;
use shopify_simulator::DEFAULT_SHOP;
use wholesail_shopify_admin::metafields::{CompareDigest, MetafieldsSetInput};
use wholesail_shopify_admin::{AdminClient, AdminError};

const DRAFTS_50: &str = "query { draftOrders(first: 50) { nodes { id } } }";

#[tokio::test]
async fn requests_without_a_valid_token_are_401_and_access_denied() {
    let sim = simulator(|_| {}).await;
    let resp = reqwest::Client::new()
        .post(sim.graphql_url(VERSION))
        .json(&json!({"query": "{ shop { name } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let mut cfg = client_config(&sim);
    cfg.access_token = SecretString::from("shpat_wrong");
    let err = AdminClient::new(cfg)
        .unwrap()
        .shop_name()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::AccessDenied {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_api_version_the_shop_does_not_serve_is_refused() {
    let sim = simulator(|_| {}).await;
    let mut cfg = client_config(&sim);
    cfg.api_version = "2019-04".into();
    let err = AdminClient::new(cfg)
        .unwrap()
        .shop_name()
        .await
        .unwrap_err();
    assert!(
        matches!(err, AdminError::Http { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(client(&sim).shop_name().await.unwrap(), "wholesail-test");
}

#[tokio::test]
async fn requested_cost_is_taken_and_the_unused_part_refunded() {
    let sim = simulator(|c| c.bucket = bucket(1000.0, 0.0)).await;
    // 2 + 50 requested; no drafts exist, so it actually costs 2.
    let r = raw(&sim, DRAFTS_50, json!({})).await;
    let cost = &r["extensions"]["cost"];
    assert_eq!(cost["requestedQueryCost"], 52);
    assert_eq!(cost["actualQueryCost"], 2);
    assert_eq!(cost["throttleStatus"]["currentlyAvailable"], 998);
    assert_eq!(cost["throttleStatus"]["maximumAvailable"], 1000.0);
    assert_eq!(cost["throttleStatus"]["restoreRate"], 0.0);
}

#[tokio::test]
async fn a_request_the_bucket_cannot_cover_is_throttled_with_shopifys_shape() {
    let sim = simulator(|c| c.bucket = bucket(60.0, 0.0)).await;
    let first = raw(&sim, DRAFTS_50, json!({})).await; // 60 → 58 after the refund
    assert!(first["errors"].is_null());
    // 52 requested against 58: admitted; then 56 left... until it is not.
    let mut throttled = None;
    for _ in 0..40 {
        let r = raw(&sim, DRAFTS_50, json!({})).await;
        if !r["errors"].is_null() {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("the bucket ran out");
    assert_eq!(r["errors"][0]["message"], "Throttled");
    assert_eq!(r["errors"][0]["extensions"]["code"], "THROTTLED");
    assert!(r["data"].is_null());
    assert_eq!(r["extensions"]["cost"]["requestedQueryCost"], 52);
    assert!(r["extensions"]["cost"]["actualQueryCost"].is_null());
    assert!(
        r["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
            .as_u64()
            .unwrap()
            < 52
    );
    let events = sim.throttled(DEFAULT_SHOP);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].requested, 52);
}

#[tokio::test]
async fn a_query_over_1000_points_is_refused_whatever_the_bucket() {
    let sim = simulator(|c| c.bucket = bucket(20_000.0, 1000.0)).await;
    let r = raw(
        &sim,
        "{ draftOrders(first: 250) { nodes { id lineItems(first: 250) { nodes { id } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED");
    assert_eq!(r["errors"][0]["extensions"]["maxCost"], 1000);
    assert_eq!(sim.cost_log(DEFAULT_SHOP).len(), 0, "nothing was charged");
    let err = client(&sim).draft_orders_by_tag("x", 250, None).await;
    assert!(err.is_ok(), "252 points is fine: {err:?}");
}

fn metafield(i: usize) -> MetafieldsSetInput {
    MetafieldsSetInput {
        owner_id: format!("gid://shopify/ProductVariant/{i}"),
        namespace: "$app:rules".into(),
        key: "limits".into(),
        value: format!("{{\"max\":{i}}}"),
        kind: "json".into(),
        compare_digest: CompareDigest::Unchecked,
    }
}

/// 16 concurrent workers writing metafields (10 points each) as fast as they can against a
/// bucket of 100 points restored at 2,000/s: the simulator must see no overdraw attempt (with
/// this much concurrency, answers often arrive out of the server's order), and the client must
/// still use most of the restore rate.
#[tokio::test]
async fn a_client_at_full_speed_never_overdraws_a_small_bucket() {
    let sim = simulator(|c| c.bucket = bucket(100.0, 2000.0)).await;
    let client = Arc::new(client(&sim));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                client
                    .metafields_set(&[metafield(w * 100 + i)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        sim.throttled(DEFAULT_SHOP).is_empty(),
        "overdrew: {:?}",
        sim.throttled(DEFAULT_SHOP)
    );
    let points: u32 = sim.cost_log(DEFAULT_SHOP).iter().map(|c| c.actual).sum();
    assert_eq!(points, 4000);
    // The bound: the bucket's 100 points plus 2,000/s.
    let bound = (points as f64 - 100.0) / 2000.0;
    assert!(
        elapsed >= bound * 0.95,
        "faster than the bucket allows: {elapsed}s"
    );
    assert!(elapsed <= bound * 3.0, "too slow: {elapsed}s vs {bound}s");
}

#[tokio::test]
async fn a_throttled_answer_is_retried_once_the_bucket_refills() {
    let sim = simulator(|c| c.bucket = bucket(100.0, 50.0)).await;
    let client = client(&sim);
    client.shop_name().await.unwrap(); // the client now believes ~99 points are there
                                       // Another app instance drains the bucket behind the client's back.
    while raw(
        &sim,
        "{ draftOrders(first: 8) { nodes { id } } }",
        json!({}),
    )
    .await["errors"]
        .is_null()
    {}
    client.metafields_set(&[metafield(1)]).await.unwrap();
    let throttled = sim.throttled(DEFAULT_SHOP);
    assert!(
        throttled.iter().any(|e| e.operation == "metafieldsSet"),
        "{throttled:?}"
    );
    assert!(sim
        .metafield(
            DEFAULT_SHOP,
            "gid://shopify/ProductVariant/1",
            "$app:rules",
            "limits"
        )
        .is_some());
}

#[tokio::test]
async fn each_shop_has_its_own_bucket() {
    let sim = simulator(|c| {
        c.bucket = bucket(60.0, 0.0);
        let mut other = c.shops[0].clone();
        other.domain = "other-shop.myshopify.com".into();
        other.access_token = "shpat_other".into();
        c.shops.push(other);
    })
    .await;
    while raw(&sim, DRAFTS_50, json!({})).await["errors"].is_null() {}
    let mut cfg = client_config(&sim);
    cfg.access_token = SecretString::from("shpat_other");
    let other = AdminClient::new(cfg).unwrap();
    assert_eq!(other.shop_name().await.unwrap(), "other-shop");
    assert!(sim.throttled("other-shop.myshopify.com").is_empty());
    assert_eq!(sim.throttled(DEFAULT_SHOP).len(), 1);
}
