//! How the workers complete a claimed batch: the batch's shop locks taken once
//! ([`ShopGate`]), events applied without savepoints unless one fails, and two loops on
//! overlapping orders never deadlocking.

mod common;

use std::time::Duration;

use serde_json::json;
use shopify_simulator::payloads::{order, OrderSpec};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_origin::config::WorkerConfig;
use wholesail_origin::handlers::{self, Verdict};
use wholesail_origin::pipeline::runner::Workers;
use wholesail_origin::shop_lock::ShopGate;

const SHOP: &str = "northwind.myshopify.com";
/// The application name of the deadlock test's worker connections.
const WORKERS_APP: &str = "deadlock-test-workers";

/// A stripped 2-line order `id` at version `hour` (its `updated_at`).
fn order_version(id: u64, hour: u32) -> String {
    let mut spec = OrderSpec::new(id, 2);
    spec.updated_at = format!("2026-11-23T{hour:02}:00:00Z");
    let full = serde_json::to_vec(&order(&spec)).unwrap();
    wholesail_webhook::strip("orders/create", &full)
        .unwrap()
        .json
}

#[sqlx::test(migrations = "../migrations")]
async fn a_shop_redacted_earlier_in_the_batch_makes_its_later_events_stale(pool: PgPool) {
    let mut tx = pool.begin().await.unwrap();
    let shop = common::domain(SHOP);
    let mut gate = ShopGate::take(&mut tx, [&shop]).await.unwrap();
    assert!(gate.is_clear(&shop), "a shop never redacted is clear");

    let redact = common::inbox_event(
        SHOP,
        1,
        "shop/redact",
        &json!({"shop_id": 954889, "shop_domain": SHOP}),
    );
    assert_eq!(
        handlers::apply_in_batch(&mut tx, &redact, &mut gate)
            .await
            .unwrap(),
        Verdict::Applied
    );
    // Without `forget` the gate still says clear and this order would be applied.
    let order = common::inbox_event(
        SHOP,
        2,
        "orders/create",
        &json!(order(&OrderSpec::new(7, 2))),
    );
    let verdict = handlers::apply_in_batch(&mut tx, &order, &mut gate)
        .await
        .unwrap();
    assert_eq!(
        verdict,
        Verdict::Stale("the shop is redacted (shop/redact)".into())
    );
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(orders, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_gate_taken_on_a_redacted_shop_does_not_call_it_clear(pool: PgPool) {
    let redact = common::inbox_event(
        SHOP,
        1,
        "shop/redact",
        &json!({"shop_id": 954889, "shop_domain": SHOP}),
    );
    let mut tx = pool.begin().await.unwrap();
    handlers::apply(&mut tx, &redact).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let shop = common::domain(SHOP);
    let mut gate = ShopGate::take(&mut tx, [&shop, &shop]).await.unwrap();
    assert!(!gate.is_clear(&shop));
    let order = common::inbox_event(
        SHOP,
        2,
        "orders/create",
        &json!(order(&OrderSpec::new(7, 2))),
    );
    assert!(matches!(
        handlers::apply_in_batch(&mut tx, &order, &mut gate)
            .await
            .unwrap(),
        Verdict::Stale(_)
    ));
}

/// Two worker loops on 40 orders × 5 versions in 2 shops, arriving shuffled: every event is
/// applied once, on the first claim, each order ends at its newest version, and PostgreSQL
/// detected no deadlock (counted once the workers' connections have closed and flushed their
/// statistics).
#[sqlx::test(migrations = "../migrations")]
async fn two_loops_on_overlapping_orders_never_deadlock(pool: PgPool) {
    let shops = ["a-wholesale.myshopify.com", "b-wholesale.myshopify.com"];
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for o in 0..40u64 {
        for v in 0..5u32 {
            let topic = if v == 0 {
                "orders/create"
            } else {
                "orders/updated"
            };
            rows.push((
                format!("w-{o}-{v}"),
                shops[(o % 2) as usize].to_owned(),
                topic.to_owned(),
                order_version(1_000 + o, 10 + v),
            ));
        }
    }
    // A fixed shuffle: versions of one order interleave with other orders' and arrive out of
    // order.
    let n = rows.len();
    let mut shuffled = Vec::with_capacity(n);
    for i in 0..n {
        shuffled.push(rows[(i * 73) % n].clone());
    }
    let (ids, shop, topic, payload): (Vec<_>, Vec<_>, Vec<_>, Vec<_>) = shuffled.into_iter().fold(
        (vec![], vec![], vec![], vec![]),
        |(mut a, mut b, mut c, mut d), (w, s, t, p)| {
            a.push(w);
            b.push(s);
            c.push(t);
            d.push(p);
            (a, b, c, d)
        },
    );
    sqlx::query(
        "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                            original_bytes, payload)
         SELECT w, s, t, '2025-07', now(), 'allowlist', length(p), p::jsonb
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
              AS u(w, s, t, p, n)
         ORDER BY n",
    )
    .bind(&ids)
    .bind(&shop)
    .bind(&topic)
    .bind(&payload)
    .execute(&pool)
    .await
    .unwrap();
    let deadlocks_before = deadlocks(&pool).await;

    let options: PgConnectOptions = common::database_url(&pool).parse().unwrap();
    let workers_pool = PgPoolOptions::new()
        .max_connections(6)
        .connect_with(options.application_name(WORKERS_APP))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let workers = Workers::new(
        workers_pool.clone(),
        WorkerConfig {
            batch_size: 10,
            max_attempts: 5,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            poll_interval_ms: 20,
            shutdown_grace_ms: 5_000,
            ..WorkerConfig::default()
        },
        "deadlock-test".into(),
    );
    let running = tokio::spawn(workers.run(shutdown.clone()));
    common::eventually(Duration::from_secs(60), "all 200 events done", || async {
        common::count(&pool, "done").await == n as i64
    })
    .await;
    shutdown.cancel();
    running.await.unwrap();
    workers_pool.close().await;
    // A backend flushes its statistics when it exits.
    common::eventually(
        Duration::from_secs(10),
        "the workers' backends gone",
        || async {
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = $1",
            )
            .bind(WORKERS_APP)
            .fetch_one(&pool)
            .await
            .unwrap();
            others == 0
        },
    )
    .await;
    assert_eq!(
        deadlocks(&pool).await - deadlocks_before,
        0,
        "deadlocks detected"
    );

    let (max_attempts, max_count): (i32, i32) =
        sqlx::query_as("SELECT max(attempts), max(processed_count) FROM inbox")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (max_attempts, max_count),
        (1, 1),
        "no retry, no double apply"
    );
    let newest: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE source_updated_at = '2026-11-23T14:00:00Z'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(newest, 40, "every order at its newest version");
}

async fn deadlocks(pool: &PgPool) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(pool)
        .await
        .unwrap()
}
