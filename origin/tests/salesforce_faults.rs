//! The Salesforce sync loop under Salesforce's faults, against the simulator: a 5xx storm that
//! opens the org's circuit breaker until a half-open probe closes it, the daily API budget
//! running out mid-drain, row locks held by another integration, sessions revoked mid-batch
//! and expired between rounds, and the org's 25 concurrent long-running requests taken while
//! several syncs drain one outbox. In each the rows are retried, none is dead, and every record
//! reaches Salesforce once. (The client's own handling of these faults is tested in
//! `salesforce-client/tests`.)

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::salesforce::*;
use salesforce_simulator::{AfterApply, Simulator};
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_origin::salesforce::outbox;
use wholesail_origin::salesforce::runner::Settings;
use wholesail_salesforce::{BreakerConfig, BreakerState, Client};

/// Orders in each test, all of one company.
const ORDERS: u64 = 8;
/// Their company (`order_of` gives seeds 500 apart the same one).
const COMPANY: u64 = 9_000_007;

/// The seeds of the ORDERS orders.
fn seeds() -> impl Iterator<Item = u64> {
    (0..ORDERS).map(|i| 7 + 500 * i)
}

/// Applies the ORDERS orders at `at` (one pending row each).
async fn apply_orders(pool: &PgPool, at: &str, first_id: i64) {
    for (i, seed) in seeds().enumerate() {
        let topic = if at == T1 {
            "orders/create"
        } else {
            "orders/updated"
        };
        apply(
            pool,
            &event(first_id + i as i64, topic, &order_of(seed, at).0),
        )
        .await;
    }
}

/// Connects SHOP and sends the orders' company and the products of their lines; then applies
/// the orders (pending), so that the faults meet orders whose parents are in Salesforce.
async fn orders_pending(pool: &PgPool, sim: &Simulator) {
    outbox::connect(pool, &common::domain(SHOP)).await.unwrap();
    apply(
        pool,
        &event(1, "companies/create", &company(COMPANY, "Northwind", T1)),
    )
    .await;
    for (i, seed) in seeds().enumerate() {
        apply_catalog(pool, &order_of(seed, T1).0, 100 + 10 * i as i64).await;
    }
    drain(pool, sim).await;
    apply_orders(pool, T1, 1000).await;
}

/// Retries that outlast a fault of a second: up to 10 attempts, 50 to 800 ms apart (at least
/// 2.3 s in all).
fn patient() -> Settings {
    Settings {
        backoff_base_ms: 50,
        backoff_max_ms: 800,
        max_attempts: 10,
        ..test_settings()
    }
}

/// The last errors of the dead rows.
async fn dead(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT last_error FROM salesforce_outbox WHERE status = 'dead'")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Pending rows whose last failure says `error` (SQL `LIKE`).
async fn waiting_after(pool: &PgPool, error: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM salesforce_outbox WHERE status = 'pending' AND last_error LIKE $1",
    )
    .bind(error)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The attempts of each row of `object`.
async fn attempts(pool: &PgPool, object: &str) -> Vec<i32> {
    sqlx::query_scalar("SELECT attempts FROM salesforce_outbox WHERE object = $1 ORDER BY id")
        .bind(object)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Waits until the outbox has nothing pending or in flight.
async fn until_drained(pool: &PgPool) {
    common::eventually(Duration::from_secs(30), "the outbox drains", || {
        drained(pool)
    })
    .await;
}

/// Every row is done (none dead, none waiting) and Salesforce holds each record once: one
/// Account, a Product2 and a PricebookEntry per variant, the orders and their two lines each.
async fn assert_all_arrived_once(pool: &PgPool, sim: &Simulator) {
    let status = outbox_status(pool).await;
    assert_eq!(status.keys().collect::<Vec<_>>(), ["done"], "{status:?}");
    let variants: HashSet<String> = seeds()
        .flat_map(|seed| {
            let (o, _) = order_of(seed, T1);
            let lines = o["line_items"].as_array().unwrap().clone();
            lines.into_iter().map(|l| l["variant_id"].to_string())
        })
        .collect();
    assert_eq!(sim.count("Account"), 1);
    assert_eq!(sim.count("Product2"), variants.len());
    assert_eq!(sim.count("PricebookEntry"), variants.len());
    assert_eq!(sim.count("Order") as u64, ORDERS);
    assert_eq!(sim.count("OrderItem") as u64, 2 * ORDERS);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_5xx_storm_opens_the_circuit_and_after_a_half_open_probe_every_row_is_sent_once(
    pool: PgPool,
) {
    let sim = simulator().await;
    orders_pending(&pool, &sim).await;
    // Salesforce answers the next STORM calls 503: three open the breaker, and each half-open
    // probe meets the rest of the storm (100, 200, then 400 ms open) until one gets through.
    const STORM: usize = 5;
    sim.fail_next(STORM, 503);
    let client = Client::new(wholesail_salesforce::Config {
        breaker: BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_millis(100),
            max_cool_down: Duration::from_millis(400),
        },
        ..client_config(&sim)
    })
    .unwrap();
    let running = Running::start([sync_through(&pool, client.clone(), "test-sync", patient())]);
    common::eventually(Duration::from_secs(10), "the circuit opens", || async {
        matches!(client.breaker().state(), BreakerState::Open { .. })
    })
    .await;
    common::eventually(
        Duration::from_secs(10),
        "orders wait for the circuit",
        || async { waiting_after(&pool, "%circuit is open%").await > 0 },
    )
    .await;
    until_drained(&pool).await;
    running.stop().await;

    assert_eq!(
        client.breaker().state(),
        BreakerState::Closed,
        "a probe got through"
    );
    let failed = sim.calls().iter().filter(|c| c.status == 503).count();
    assert_eq!(failed, STORM, "the whole storm was met");
    let tries = attempts(&pool, "order").await;
    assert!(
        tries.iter().all(|&a| a >= 2),
        "every order was retried: {tries:?}"
    );
    assert_all_arrived_once(&pool, &sim).await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn rows_wait_for_the_next_api_day_when_the_daily_budget_runs_out_and_none_is_dead(
    pool: PgPool,
) {
    const BUDGET: u64 = 60;
    const ROOM: u64 = 10;
    let sim = Simulator::start(salesforce_simulator::Config {
        daily_api_requests: BUDGET,
        ..salesforce_simulator::Config::default()
    })
    .await
    .unwrap();
    orders_pending(&pool, &sim).await;
    // The org's other integrations leave the sync ROOM calls of today's budget: enough for
    // some orders (one a round), not for all.
    let other = client(&sim);
    while sim.api_usage().0 < BUDGET - ROOM {
        other.limits().await.unwrap();
    }
    let settings = Settings {
        batch_size: 1,
        ..test_settings()
    };
    let running = Running::start([sync_with(&pool, &sim, settings.clone())]);
    common::eventually(Duration::from_secs(10), "the budget runs out", || async {
        sim.api_usage().0 == BUDGET
    })
    .await;
    let sent = sim.count("Order");
    assert!(sent >= 1, "some orders went before the budget ran out");

    // For longer than the sync's whole retry schedule, the others wait for the next day.
    let backoff = wholesail_backoff::Backoff::new(
        Duration::from_millis(settings.backoff_base_ms),
        Duration::from_millis(settings.backoff_max_ms),
    );
    let schedule: Duration = (1..=settings.max_attempts.unsigned_abs())
        .map(|attempt| backoff.ceiling(attempt))
        .sum::<Duration>()
        + Duration::from_secs(1);
    let start = Instant::now();
    common::eventually(
        schedule * 2,
        "a retry schedule passes or a row dies",
        || async { !dead(&pool).await.is_empty() || start.elapsed() > schedule },
    )
    .await;
    let dead = dead(&pool).await;
    assert!(
        dead.is_empty(),
        "nothing is dead for a spent budget: {dead:?}"
    );
    let status = outbox_status(&pool).await;
    assert!(
        status.get("pending").copied().unwrap_or(0) >= 1,
        "{status:?}"
    );
    assert_eq!(sim.api_usage(), (BUDGET, BUDGET), "nothing was executed");
    assert!(sim.count("Order") < ORDERS as usize);

    sim.advance_to_next_day();
    until_drained(&pool).await;
    running.stop().await;
    assert_all_arrived_once(&pool, &sim).await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn orders_whose_account_another_integration_holds_locked_are_retried_until_done(
    pool: PgPool,
) {
    let sim = simulator().await;
    orders_pending(&pool, &sim).await;
    // Another integration keeps writing the company's Account, each write holding its row
    // locks for 500 ms, until an order has met one of them.
    sim.set_lock_hold(Duration::from_millis(500));
    let other = client(&sim);
    let stop_writing = CancellationToken::new();
    let writer = tokio::spawn({
        let stop = stop_writing.clone();
        async move {
            let key = COMPANY.to_string();
            while !stop.is_cancelled() {
                let record = json!({"Shopify_Company_Id__c": key, "Description": "Net 60"});
                other
                    .upsert("Account", "Shopify_Company_Id__c", &[record])
                    .await
                    .unwrap();
            }
        }
    });
    common::eventually(Duration::from_secs(10), "the Account is locked", || async {
        sim.locked_rows() > 0
    })
    .await;
    let running = Running::start([sync_with(&pool, &sim, patient())]);
    common::eventually(
        Duration::from_secs(10),
        "an order meets the lock",
        || async { waiting_after(&pool, "%UNABLE_TO_LOCK_ROW%").await > 0 },
    )
    .await;
    stop_writing.cancel();
    writer.await.unwrap();
    sim.set_lock_hold(Duration::ZERO);
    until_drained(&pool).await;
    running.stop().await;

    let tries = attempts(&pool, "order").await;
    assert!(
        tries.iter().all(|&a| a >= 2),
        "every order was retried: {tries:?}"
    );
    assert_all_arrived_once(&pool, &sim).await;
    let account = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", &COMPANY.to_string())
        .unwrap();
    assert_eq!(
        account["Description"],
        json!("Net 60"),
        "the other write stands"
    );
}

/// The access token `client` holds now.
async fn token(client: &Client) -> String {
    let session = client.session().await.unwrap();
    session.access_token.expose_secret().to_owned()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_session_revoked_mid_batch_or_expired_between_rounds_costs_no_attempt(pool: PgPool) {
    let sim = simulator().await;
    orders_pending(&pool, &sim).await;
    // The Orders are saved, then their answer is held: meanwhile every session is revoked,
    // so the batch's next call (the OrderItems) is made with a dead token.
    sim.fail_after_applying(1, AfterApply::Delay(Duration::from_secs(1)));
    let client = client(&sim);
    let running = Running::start([sync_through(
        &pool,
        client.clone(),
        "test-sync",
        test_settings(),
    )]);
    common::eventually(Duration::from_secs(10), "the Orders are saved", || async {
        sim.count("Order") as u64 == ORDERS
    })
    .await;
    let revoked = token(&client).await;
    sim.revoke_tokens();
    until_drained(&pool).await;
    let second = token(&client).await;
    assert_ne!(second, revoked, "the sync logged in again");

    // The new session expires (its lifetime passes on the simulator clock) before the next
    // changes are sent.
    sim.advance_clock(sim.config().token_lifetime + Duration::from_secs(1));
    apply_orders(&pool, T2, 2000).await;
    until_drained(&pool).await;
    running.stop().await;
    assert_ne!(token(&client).await, second, "and again");

    let tries = attempts(&pool, "order").await;
    assert!(tries.iter().all(|&a| a == 1), "no attempt spent: {tries:?}");
    assert_all_arrived_once(&pool, &sim).await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn syncs_refused_while_the_orgs_25_long_running_requests_are_taken_retry_and_send_each_order_once(
    pool: PgPool,
) {
    let sim = Simulator::start(salesforce_simulator::Config {
        long_running_after: Duration::from_millis(50),
        ..salesforce_simulator::Config::default()
    })
    .await
    .unwrap();
    let slots = sim.config().max_long_running;
    assert_eq!(slots, 25, "Salesforce's limit");
    orders_pending(&pool, &sim).await;
    // Another integration's slow calls take every long-running slot for a second.
    let other = Client::new(wholesail_salesforce::Config {
        max_concurrent: slots,
        ..client_config(&sim)
    })
    .unwrap();
    token(&other).await;
    sim.delay_next(slots, Duration::from_secs(1));
    let slow: Vec<_> = (0..slots)
        .map(|_| {
            let other = other.clone();
            tokio::spawn(async move { other.limits().await.map(|_| ()) })
        })
        .collect();
    common::eventually(Duration::from_secs(10), "every slot is taken", || async {
        sim.long_running() == slots
    })
    .await;
    // Four origin processes, each with its own client, drain the outbox two orders a round.
    let syncs = (0..4).map(|i| {
        let settings = Settings {
            batch_size: 2,
            ..patient()
        };
        sync_through(&pool, client(&sim), &format!("origin-{i}"), settings)
    });
    let running = Running::start(syncs);
    common::eventually(
        Duration::from_secs(10),
        "a sync is refused for the long-running requests",
        || async { waiting_after(&pool, "%concurrent long-running%").await > 0 },
    )
    .await;
    for call in slow {
        call.await.unwrap().unwrap();
    }
    until_drained(&pool).await;
    running.stop().await;

    assert!(sim.max_concurrency() >= slots as u64);
    assert_all_arrived_once(&pool, &sim).await;
}
