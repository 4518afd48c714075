//! Retries on injected 5xx, 429 and timeouts; and no blind retry of a write that must not run
//! twice.

mod common;

use std::time::Duration;

use common::{client, client_config, simulator};
use shopify_simulator::{CatalogSpec, DEFAULT_SHOP};
use wholesail_shopify_admin::draft_orders::{DraftOrderInput, DraftOrderLineItemInput};
use wholesail_shopify_admin::{AdminClient, AdminError};

#[tokio::test]
async fn injected_5xx_are_retried_until_the_request_succeeds() {
    let sim = simulator(|_| {}).await;
    sim.fail_next(3, 503);
    assert_eq!(client(&sim).shop_name().await.unwrap(), "wholesail-test");
    assert_eq!(sim.requests(), 4);
}

#[tokio::test]
async fn retries_are_bounded_and_end_in_the_last_error() {
    let sim = simulator(|_| {}).await;
    sim.fail_next(10, 502);
    let mut cfg = client_config(&sim);
    cfg.max_retries = 2;
    let err = AdminClient::new(cfg)
        .unwrap()
        .shop_name()
        .await
        .unwrap_err();
    assert!(
        matches!(err, AdminError::Http { status: 502, .. }),
        "{err:?}"
    );
    assert_eq!(sim.requests(), 3);
}

#[tokio::test]
async fn random_5xx_at_a_fifth_of_requests_are_absorbed() {
    let sim = simulator(|c| {
        c.faults.error_rate = 0.2;
        c.faults.seed = 9;
    })
    .await;
    let client = client(&sim);
    for _ in 0..30 {
        client.shop_name().await.unwrap();
    }
    assert!(sim.requests() > 30, "some requests failed and were retried");
}

#[tokio::test]
async fn a_timed_out_read_is_retried() {
    let sim = simulator(|_| {}).await;
    sim.delay_next(1, Duration::from_millis(800));
    let mut cfg = client_config(&sim);
    cfg.request_timeout = Duration::from_millis(300);
    let client = AdminClient::new(cfg).unwrap();
    assert_eq!(client.shop_name().await.unwrap(), "wholesail-test");
    assert_eq!(sim.requests(), 2);
}

fn one_line_draft(tag: &str) -> DraftOrderInput {
    DraftOrderInput {
        line_items: vec![DraftOrderLineItemInput {
            variant_id: Some(format!(
                "gid://shopify/ProductVariant/{}",
                CatalogSpec::variant_id(1, 0)
            )),
            quantity: 2,
            title: None,
            original_unit_price_with_currency: None,
            applied_discount: None,
        }],
        tags: vec![tag.to_owned()],
        ..DraftOrderInput::default()
    }
}

#[tokio::test]
async fn a_draft_order_create_that_timed_out_is_not_retried_blindly() {
    let sim = simulator(|_| {}).await;
    sim.delay_next(1, Duration::from_millis(800));
    let mut cfg = client_config(&sim);
    cfg.request_timeout = Duration::from_millis(300);
    let client = AdminClient::new(cfg).unwrap();
    let err = client
        .draft_order_create(&one_line_draft("quote-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::OutcomeUnknown(_)), "{err:?}");
    // Shopify did create it: the caller finds it by tag instead of creating a duplicate.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let page = client
        .draft_orders_by_tag("quote-1", 10, None)
        .await
        .unwrap();
    assert_eq!(page.drafts.len(), 1);
    assert_eq!(sim.draft_orders(DEFAULT_SHOP).len(), 1);
}

#[tokio::test]
async fn a_draft_order_create_refused_with_429_is_retried_once_and_created_once() {
    let sim = simulator(|_| {}).await;
    sim.fail_next(1, 429);
    let d = client(&sim)
        .draft_order_create(&one_line_draft("quote-2"))
        .await
        .unwrap();
    assert_eq!(d.tags, vec!["quote-2"]);
    assert_eq!(sim.draft_orders(DEFAULT_SHOP).len(), 1);
    assert_eq!(sim.requests(), 2);
}
