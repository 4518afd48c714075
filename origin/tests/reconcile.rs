//! Reconciliation against the Shopify simulator: webhook subscriptions deleted by Shopify
//! (after deliveries failed every retry) or by someone else are found, recreated at the
//! edge's address, recorded as a run with its findings, and a second run finds nothing.

mod common;

use secrecy::SecretString;
use shopify_simulator::{Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN};
use sqlx::PgPool;
use wholesail_origin::reconcile::runs::{self, Mode, Trigger};
use wholesail_origin::reconcile::subscriptions::{self, required_topics};
use wholesail_shopify_admin::webhooks::topic_enum;
use wholesail_shopify_admin::{AdminClient, AdminConfig};

/// The edge's address (nothing listens there: deliveries to it fail at once).
const EDGE: &str = "http://127.0.0.1:9/webhooks";

fn client(sim: &Simulator) -> AdminClient {
    AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))
    .unwrap()
}

/// The shop subscribed to every required topic at the edge (Shopify's 4 hours of retries
/// compressed into milliseconds).
async fn subscribed_shop() -> (Simulator, AdminClient) {
    let mut config = SimulatorConfig::default();
    config.delivery.time_scale = 0.000_01;
    let sim = Simulator::start(config).await.unwrap();
    let client = client(&sim);
    for topic in required_topics() {
        client
            .create_webhook_subscription(topic, EDGE)
            .await
            .unwrap();
    }
    (sim, client)
}

/// The topics subscribed at `uri`, as Shopify names them.
async fn topics_at(client: &AdminClient, uri: &str) -> Vec<String> {
    let (listed, _) = client.webhook_subscriptions().await.unwrap();
    let mut topics: Vec<String> = listed
        .into_iter()
        .filter(|s| s.uri == uri)
        .map(|s| s.topic)
        .collect();
    topics.sort();
    topics
}

fn all_required() -> Vec<String> {
    let mut all: Vec<String> = required_topics().map(topic_enum).collect();
    all.sort();
    all
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn deleted_subscriptions_are_found_recreated_and_recorded(pool: PgPool) {
    let (sim, client) = subscribed_shop().await;
    let shop = common::domain(DEFAULT_SHOP);
    assert!(sim.delete_webhook_subscription(DEFAULT_SHOP, "orders/create"));
    assert!(sim.delete_webhook_subscription(DEFAULT_SHOP, "inventory_levels/update"));
    // A previous deployment's edge still holds products/update.
    assert!(sim.delete_webhook_subscription(DEFAULT_SHOP, "products/update"));
    client
        .create_webhook_subscription("products/update", "https://old-edge.example/webhooks")
        .await
        .unwrap();

    let (run, counts) =
        subscriptions::reconcile(&pool, &client, &shop, EDGE, Mode::Heal, Trigger::Operator)
            .await
            .unwrap();
    let required = required_topics().count() as i64;
    assert_eq!(
        (
            counts.compared,
            counts.missing,
            counts.stale,
            counts.healed,
            counts.failed
        ),
        (required, 2, 1, 3, 0)
    );
    assert!(counts.cost_used > 0);
    assert_eq!(topics_at(&client, EDGE).await, all_required());
    let findings = runs::findings(&pool, &shop, run).await.unwrap();
    let mut found: Vec<(String, String, bool)> = findings
        .iter()
        .map(|f| (f.kind.clone(), f.record.clone(), f.healed_at.is_some()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                "subscription_elsewhere".into(),
                "products/update".into(),
                true
            ),
            (
                "subscription_missing".into(),
                "inventory_levels/update".into(),
                true
            ),
            ("subscription_missing".into(), "orders/create".into(), true),
        ]
    );
    let elsewhere = findings
        .iter()
        .find(|f| f.kind == "subscription_elsewhere")
        .unwrap();
    assert_eq!(
        elsewhere.detail["elsewhere"][0],
        "https://old-edge.example/webhooks"
    );

    // Healed: the next run finds nothing and changes nothing.
    let (second, again) =
        subscriptions::reconcile(&pool, &client, &shop, EDGE, Mode::Heal, Trigger::Schedule)
            .await
            .unwrap();
    assert_eq!((again.missing, again.stale, again.healed), (0, 0, 0));
    assert!(runs::findings(&pool, &shop, second)
        .await
        .unwrap()
        .is_empty());
    let recent = runs::recent(&pool, Some(&shop), 10).await.unwrap();
    assert_eq!(
        recent.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second, run]
    );
    assert!(recent
        .iter()
        .all(|r| r.finished_at.is_some() && r.error.is_none()));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_report_only_run_records_the_finding_and_changes_nothing(pool: PgPool) {
    let (sim, client) = subscribed_shop().await;
    let shop = common::domain(DEFAULT_SHOP);
    assert!(sim.delete_webhook_subscription(DEFAULT_SHOP, "orders/paid"));
    let (run, counts) =
        subscriptions::reconcile(&pool, &client, &shop, EDGE, Mode::Report, Trigger::Operator)
            .await
            .unwrap();
    assert_eq!((counts.missing, counts.healed), (1, 0));
    assert!(!topics_at(&client, EDGE)
        .await
        .contains(&"ORDERS_PAID".to_owned()));
    let findings = runs::findings(&pool, &shop, run).await.unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].record, "orders/paid");
    assert!(findings[0].healed_at.is_none() && findings[0].error.is_none());
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_subscription_shopify_dropped_after_failed_deliveries_is_recreated(pool: PgPool) {
    let (sim, client) = subscribed_shop().await;
    let shop = common::domain(DEFAULT_SHOP);
    // The edge was down for every retry: Shopify gives up and deletes the subscription.
    let reports = sim
        .emit(DEFAULT_SHOP, "orders/create", br#"{"id": 1}"#.to_vec())
        .await;
    assert!(
        reports.iter().all(|r| !r.delivered),
        "the edge address does not answer"
    );
    assert!(!topics_at(&client, EDGE)
        .await
        .contains(&"ORDERS_CREATE".to_owned()));
    assert_eq!(sim.removed_subscriptions(DEFAULT_SHOP).len(), 1);

    let (_, counts) =
        subscriptions::reconcile(&pool, &client, &shop, EDGE, Mode::Heal, Trigger::Schedule)
            .await
            .unwrap();
    assert_eq!((counts.missing, counts.healed), (1, 1));
    assert_eq!(topics_at(&client, EDGE).await, all_required());
}
