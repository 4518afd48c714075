//! Drift injection through the Shopify simulator: state changed at Shopify without a webhook
//! (orders created silently, stock levels changed, products deleted, a subscription removed)
//! is found exactly by reconciliation, healed through the same handlers and merge as live
//! changes, and a second run finds nothing — while live webhooks keep flowing during the
//! runs, and none of them counts as drift or is overwritten by older data.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::catalog::Row;
use shopify_simulator::payloads::{order, OrderSpec};
use shopify_simulator::{
    CatalogSpec, ChildOrder, Selection, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN,
};
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use wholesail_origin::catalog::{Runner, Settings};
use wholesail_origin::config::WorkerConfig;
use wholesail_origin::pipeline::runner::Workers;
use wholesail_origin::reconcile::orders::Timing;
use wholesail_origin::reconcile::runs::{self, Counts, Mode, Trigger, Window};
use wholesail_origin::reconcile::{catalog, orders, subscriptions};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

use common::{domain, eventually};

const SETTLE: Duration = Duration::from_millis(1_500);

fn client(sim: &Simulator) -> AdminClient {
    AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))
    .unwrap()
}

fn runner(pool: &PgPool) -> Runner {
    let o = pool.connect_options();
    let mut c = tokio_postgres::Config::new();
    c.host(o.get_host())
        .port(o.get_port())
        .user(o.get_username())
        .dbname(o.get_database().unwrap_or("postgres"));
    Runner::new(
        pool.clone(),
        c,
        Settings {
            poll_interval: Duration::from_millis(50),
            progress_interval: Duration::from_millis(20),
            ..Settings::default()
        },
    )
}

fn timing() -> Timing {
    Timing {
        settle: SETTLE,
        poll_interval: Duration::from_millis(50),
        bulk_timeout: Duration::from_secs(60),
        result_hosts: Vec::new(),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// An order of `seed` updated at `at`.
fn order_at(seed: u64, at: OffsetDateTime) -> Value {
    let mut spec = OrderSpec::new(seed, 3);
    spec.updated_at = rfc3339(at);
    order(&spec)
}

/// Origin's intake (direct mode) and workers in-process, the simulator subscribed to every
/// required topic at it, the catalog resynced, and `live` orders delivered by webhook.
struct World {
    sim: Arc<Simulator>,
    client: Arc<AdminClient>,
    runner: Runner,
    workers: CancellationToken,
    uri: String,
}

async fn world(pool: &PgPool, spec: CatalogSpec, live: u64) -> World {
    let w = installed(pool, spec).await;
    w.runner
        .resync(&w.client, &domain(DEFAULT_SHOP), &|_| {})
        .await
        .unwrap();
    let earlier = OffsetDateTime::now_utc() - time::Duration::minutes(30);
    for seed in 1..=live {
        w.sim
            .put_order(DEFAULT_SHOP, order_at(seed, earlier), Some("orders/create"))
            .await;
    }
    let want = live as i64;
    eventually(
        Duration::from_secs(30),
        "the live orders are applied",
        || async { orders_count(pool).await == want },
    )
    .await;
    w
}

/// The simulator and origin's intake and workers, nothing synced yet (a new install).
async fn installed(pool: &PgPool, spec: CatalogSpec) -> World {
    let mut config = SimulatorConfig::default();
    config.shops[0].catalog = spec;
    config.app_secret = common::SHOPIFY_SECRET.into();
    config.bulk.duration = Duration::from_millis(100);
    config.bulk.child_order = ChildOrder::Grouped;
    let sim = Arc::new(Simulator::start(config).await.unwrap());
    let addr = common::serve_routes(pool.clone(), 4 << 20).await;
    let uri = format!("http://{addr}/webhooks/shopify");
    let client = Arc::new(client(&sim));
    for topic in subscriptions::required_topics() {
        client
            .create_webhook_subscription(topic, &uri)
            .await
            .unwrap();
    }
    let workers = CancellationToken::new();
    let w = Workers::new(
        pool.clone(),
        WorkerConfig {
            per_shop: 50,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            poll_interval_ms: 50,
            shutdown_grace_ms: 1_000,
            ..WorkerConfig::default()
        },
        "drift-test".into(),
    );
    tokio::spawn(w.run(workers.clone()));
    let runner = runner(pool);
    World {
        sim,
        client,
        runner,
        workers,
        uri,
    }
}

async fn orders_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders WHERE deleted_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn inbox_settled(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM inbox WHERE status IN ('pending', 'processing')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
        == 0
}

/// The inventory levels of the catalog, as `(item, location, available)`.
fn levels(spec: &CatalogSpec) -> Vec<(u64, u64, i64)> {
    spec.rows(Selection::ALL, ChildOrder::Grouped)
        .filter_map(|r| match r {
            Row::InventoryLevel(l) => Some((l.inventory_item_id, l.location_id, l.available)),
            _ => None,
        })
        .collect()
}

fn products(spec: &CatalogSpec) -> Vec<u64> {
    spec.rows(Selection::ALL, ChildOrder::Grouped)
        .filter_map(|r| match r {
            Row::Product(p) => Some(p.id),
            _ => None,
        })
        .collect()
}

async fn kinds(pool: &PgPool, run: i64) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = runs::findings(pool, &domain(DEFAULT_SHOP), run)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.kind, f.record))
        .collect();
    k.sort();
    k
}

/// Live traffic while the runs compare: orders updated and stock changed at Shopify, each
/// with its webhook, on records the drift does not touch. Returns a stop flag and a count.
fn live_traffic(
    sim: Arc<Simulator>,
    live: u64,
    items: Vec<(u64, u64)>,
) -> (Arc<AtomicBool>, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let (s, n) = (stop.clone(), sent.clone());
    let task = tokio::spawn(async move {
        let mut i = 0u64;
        while !s.load(Ordering::Relaxed) {
            let now = OffsetDateTime::now_utc();
            let mut o = order_at(1 + i % live, now);
            o["financial_status"] = json!("paid");
            sim.put_order(DEFAULT_SHOP, o, Some("orders/updated")).await;
            let (item, location) = items[(i as usize) % items.len()];
            let available = 1_000 + i as i64;
            sim.set_inventory_silently(DEFAULT_SHOP, item, location, available, rfc3339(now));
            let body = json!({
                "inventory_item_id": item, "location_id": location,
                "available": available, "updated_at": rfc3339(now),
            });
            sim.emit(
                DEFAULT_SHOP,
                "inventory_levels/update",
                body.to_string().into_bytes(),
            )
            .await;
            n.fetch_add(1, Ordering::Relaxed);
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (stop, sent, task)
}

/// A heal run of subscriptions, orders updated since `since`, and the catalog, in that order.
async fn heal_all(pool: &PgPool, w: &World, since: OffsetDateTime) -> [(i64, Counts); 3] {
    let shop = domain(DEFAULT_SHOP);
    let (heal, op) = (Mode::Heal, Trigger::Operator);
    let window = Window {
        start: Some(since),
        end: None,
    };
    [
        subscriptions::reconcile(pool, &w.client, &shop, &w.uri, heal, op)
            .await
            .unwrap(),
        orders::reconcile(pool, &w.client, &shop, window, &timing(), heal, op)
            .await
            .unwrap(),
        catalog::reconcile(pool, &w.runner, w.client.clone(), &shop, SETTLE, heal, op)
            .await
            .unwrap(),
    ]
}

#[sqlx::test(migrations = "../migrations")]
async fn injected_drift_is_found_exactly_healed_and_gone_on_a_second_run(pool: PgPool) {
    const LIVE: u64 = 12;
    const N: u64 = 5;
    const M: usize = 4;
    const K: usize = 3;
    let spec = CatalogSpec::new(31, 24);
    let w = world(&pool, spec.clone(), LIVE).await;
    let shop = domain(DEFAULT_SHOP);

    // The drift: N orders, M stock levels, K products, one subscription, all silent.
    let past = OffsetDateTime::now_utc() - time::Duration::minutes(10);
    for seed in 100..100 + N {
        w.sim
            .put_order(DEFAULT_SHOP, order_at(seed, past), None)
            .await;
    }
    let all_levels = levels(&spec);
    let deleted: Vec<u64> = products(&spec).into_iter().rev().take(K).collect();
    let deleted_items: Vec<u64> = spec
        .rows(Selection::ALL, ChildOrder::Grouped)
        .filter_map(|r| match r {
            Row::Variant(v) if deleted.contains(&v.product_id) => Some(v.inventory_item_id),
            _ => None,
        })
        .collect();
    let kept: Vec<(u64, u64, i64)> = all_levels
        .iter()
        .copied()
        .filter(|(item, _, _)| !deleted_items.contains(item))
        .collect();
    let drifted = &kept[..M];
    for (item, location, available) in drifted {
        w.sim.set_inventory_silently(
            DEFAULT_SHOP,
            *item,
            *location,
            available + 47,
            rfc3339(past),
        );
    }
    w.sim.delete_products_silently(DEFAULT_SHOP, &deleted);
    assert!(w
        .sim
        .delete_webhook_subscription(DEFAULT_SHOP, "ORDERS_PAID"));

    // Live webhooks keep flowing on other records while the runs compare.
    let untouched: Vec<(u64, u64)> = kept[M..M + 5].iter().map(|(i, l, _)| (*i, *l)).collect();
    let (stop, sent, traffic) = live_traffic(w.sim.clone(), LIVE, untouched.clone());
    eventually(Duration::from_secs(10), "live traffic flows", || async {
        sent.load(Ordering::Relaxed) >= 3
    })
    .await;

    let [(sub_run, sub), (order_run, ord), (catalog_run, cat)] =
        heal_all(&pool, &w, past - time::Duration::hours(1)).await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();

    // Exactly N + M + K + 1, nothing else.
    assert_eq!((sub.missing, sub.stale, sub.healed), (1, 0, 1), "{sub:?}");
    assert_eq!(
        kinds(&pool, sub_run).await,
        vec![("subscription_missing".into(), "orders/paid".into())]
    );
    assert_eq!(
        (ord.missing, ord.stale, ord.healed, ord.failed),
        (N as i64, 0, N as i64, 0),
        "{ord:?}"
    );
    // Live orders updated after the window's end are not compared (their webhooks apply them).
    assert!(ord.compared >= N as i64, "{ord:?}");
    let mut want: Vec<(String, String)> = (100..100 + N)
        .map(|s| {
            (
                "order_missing".to_string(),
                (5_000_000_000_000 + s).to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(kinds(&pool, order_run).await, want);
    assert_eq!(
        (cat.missing, cat.stale, cat.healed),
        (0, (M + K) as i64, (M + K) as i64),
        "{cat:?}"
    );
    // The catalog run's bulk query and polls, charged by the simulator.
    assert!(cat.cost_used >= 10, "{cat:?}");
    let found = runs::findings(&pool, &shop, catalog_run).await.unwrap();
    let drift: Vec<&runs::Finding> = found
        .iter()
        .filter(|f| f.kind == "inventory_drift")
        .collect();
    assert_eq!(drift.len(), M);
    assert!(
        drift
            .iter()
            .all(|f| f.detail["units"] == 47 && f.healed_at.is_some()),
        "{drift:?}"
    );
    let mut gone: Vec<String> = found
        .iter()
        .filter(|f| f.kind == "product_deleted")
        .map(|f| f.record.clone())
        .collect();
    gone.sort();
    let mut want_gone: Vec<String> = deleted.iter().map(u64::to_string).collect();
    want_gone.sort();
    assert_eq!(gone, want_gone);

    // Healed: the orders applied by the handlers, stock equal to Shopify's, products
    // tombstoned, the subscription back.
    eventually(
        Duration::from_secs(30),
        "the reconcile events are applied",
        || async { inbox_settled(&pool).await && orders_count(&pool).await == (LIVE + N) as i64 },
    )
    .await;
    let reconciled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inbox WHERE source = 'reconcile' AND status = 'done'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reconciled, N as i64);
    for (item, location, available) in drifted {
        let ours: Option<i32> = sqlx::query_scalar(
            "SELECT available FROM inventory_levels WHERE inventory_item_id = $1 AND location_id = $2",
        )
        .bind(*item as i64)
        .bind(*location as i64)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(ours, Some((available + 47) as i32));
    }
    let tombstoned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products WHERE id = ANY($1) AND deleted_at IS NOT NULL",
    )
    .bind(deleted.iter().map(|d| *d as i64).collect::<Vec<_>>())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tombstoned, K as i64);
    // The live changes were not overwritten by the older export: once the last live webhook
    // is applied, every live level equals Shopify's.
    let catalog = levels(&w.sim.catalog(DEFAULT_SHOP));
    let want: Vec<Option<i32>> = untouched
        .iter()
        .map(|(item, location)| {
            let (_, _, available) = catalog
                .iter()
                .find(|(i, l, _)| (i, l) == (item, location))
                .unwrap();
            Some(*available as i32)
        })
        .collect();
    let ours = || async {
        let mut got = Vec::new();
        for (item, location) in &untouched {
            got.push(
                sqlx::query_scalar::<_, Option<i32>>(
                    "SELECT available FROM inventory_levels
                     WHERE inventory_item_id = $1 AND location_id = $2",
                )
                .bind(*item as i64)
                .bind(*location as i64)
                .fetch_one(&pool)
                .await
                .unwrap(),
            );
        }
        got
    };
    eventually(
        Duration::from_secs(30),
        "live stock equals Shopify's",
        || async { inbox_settled(&pool).await && ours().await == want },
    )
    .await;

    // A second run of each finds nothing.
    let [(_, sub), (_, ord), (_, cat)] = heal_all(&pool, &w, past - time::Duration::hours(1)).await;
    for c in [sub, ord, cat] {
        assert_eq!((c.missing, c.stale), (0, 0), "{c:?}");
    }
    w.workers.cancel();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_report_only_run_records_the_drift_and_changes_nothing(pool: PgPool) {
    let spec = CatalogSpec::new(32, 10);
    let w = world(&pool, spec.clone(), 3).await;
    let shop = domain(DEFAULT_SHOP);
    let past = OffsetDateTime::now_utc() - time::Duration::minutes(10);
    w.sim
        .put_order(DEFAULT_SHOP, order_at(200, past), None)
        .await;
    let (item, location, available) = levels(&spec)[0];
    w.sim
        .set_inventory_silently(DEFAULT_SHOP, item, location, available + 5, rfc3339(past));

    let (_, ord) = orders::reconcile(
        &pool,
        &w.client,
        &shop,
        Window::default(),
        &timing(),
        Mode::Report,
        Trigger::Operator,
    )
    .await
    .unwrap();
    let (run, cat) = catalog::reconcile(
        &pool,
        &w.runner,
        w.client.clone(),
        &shop,
        SETTLE,
        Mode::Report,
        Trigger::Operator,
    )
    .await
    .unwrap();
    assert_eq!((ord.missing, ord.healed), (1, 0), "{ord:?}");
    assert_eq!((cat.stale, cat.healed), (1, 0), "{cat:?}");
    let f = &runs::findings(&pool, &shop, run).await.unwrap()[0];
    assert_eq!(
        (f.kind.as_str(), f.detail["units"].as_i64(), f.healed_at),
        ("inventory_drift", Some(5), None)
    );
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE source = 'reconcile'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);
    let ours: Option<i32> = sqlx::query_scalar(
        "SELECT available FROM inventory_levels WHERE inventory_item_id = $1 AND location_id = $2",
    )
    .bind(item as i64)
    .bind(location as i64)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ours, Some(available as i32));
    let status: String = sqlx::query_scalar(
        "SELECT c.status FROM catalog_runs c JOIN reconcile_runs r ON r.catalog_run = c.id WHERE r.id = $1",
    )
    .bind(run)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "canceled");
    let _: Counts = cat;
    w.workers.cancel();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stale_order_is_replaced_by_shopifys_newer_version_never_the_reverse(pool: PgPool) {
    let w = world(&pool, CatalogSpec::new(33, 4), 2).await;
    let shop = domain(DEFAULT_SHOP);
    // Order 1 paid at Shopify without its webhook; order 2's webhook is newer than the export
    // will be (applied after the window's end): only order 1 is drift.
    let past = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let mut paid = order_at(1, past);
    paid["financial_status"] = json!("paid");
    w.sim.put_order(DEFAULT_SHOP, paid, None).await;
    let mut newer = order_at(2, OffsetDateTime::now_utc());
    newer["financial_status"] = json!("refunded");
    w.sim
        .put_order(DEFAULT_SHOP, newer, Some("orders/updated"))
        .await;

    let (run, c) = orders::reconcile(
        &pool,
        &w.client,
        &shop,
        Window::default(),
        &timing(),
        Mode::Heal,
        Trigger::Operator,
    )
    .await
    .unwrap();
    assert_eq!((c.missing, c.stale, c.healed), (0, 1, 1), "{c:?}");
    assert_eq!(
        kinds(&pool, run).await,
        vec![("order_stale".into(), "5000000000001".into())]
    );
    eventually(
        Duration::from_secs(30),
        "order 1 is paid, order 2 stays refunded",
        || async {
            let s: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, financial_status FROM orders ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            s == vec![
                (5_000_000_000_001, "paid".into()),
                (5_000_000_000_002, "refunded".into()),
            ]
        },
    )
    .await;
    w.workers.cancel();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_new_install_is_backfilled_and_its_catalog_resynced_by_the_schedule(pool: PgPool) {
    use wholesail_origin::reconcile::scheduler::{self, Context};
    use wholesail_origin::reconcile::{OrdersSchedule, Settings as ReconcileSettings};
    use wholesail_origin::shops::{ShopConfig, Shops};

    let spec = CatalogSpec::new(34, 6);
    let w = installed(&pool, spec.clone()).await;
    // History placed before the install: 3 orders in the backfill window, 1 older.
    let now = OffsetDateTime::now_utc();
    for (seed, days) in [(300, 1), (301, 20), (302, 55), (303, 90)] {
        let at = now - time::Duration::days(days);
        w.sim
            .put_order(DEFAULT_SHOP, order_at(seed, at), None)
            .await;
    }
    let shops = Arc::new(
        Shops::new(vec![ShopConfig {
            domain: domain(DEFAULT_SHOP),
            url: Some(w.sim.base_url().into()),
            access_token: SecretString::from(DEFAULT_TOKEN),
            api_version: Some("2026-01".into()),
        }])
        .unwrap(),
    );
    let settings = ReconcileSettings {
        orders: vec![OrdersSchedule {
            every_ms: 3_600_000,
            window_hours: 48,
        }],
        settle_ms: SETTLE.as_millis() as u64,
        install_backfill_days: 62,
        catalog_interval_ms: 3_600_000,
        price_lists_interval_ms: 0,
        salesforce_interval_ms: 0,
        ..ReconcileSettings::default()
    };
    let stop = CancellationToken::new();
    let context = Context {
        pool: pool.clone(),
        shops,
        settings,
        catalog: w.runner.clone(),
        timing: timing(),
        salesforce: Default::default(),
        salesforce_sync: Default::default(),
    };
    tokio::spawn(scheduler::run(context, stop.clone()));
    let variants = spec.counts(Selection::ALL).variants as i64;
    eventually(
        Duration::from_secs(60),
        "the backfilled orders and the first resync",
        || async {
            let resynced: i64 = sqlx::query_scalar("SELECT count(*) FROM variants WHERE shop = $1")
                .bind(DEFAULT_SHOP)
                .fetch_one(&pool)
                .await
                .unwrap();
            orders_count(&pool).await == 3 && inbox_settled(&pool).await && resynced == variants
        },
    )
    .await;
    stop.cancel();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM orders ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        ids,
        [300, 301, 302].map(|s| 5_000_000_000_000 + s).to_vec(),
        "the 90-day-old order is outside the backfill"
    );
    let backfill: (String, f64) = sqlx::query_as(
        "SELECT trigger, extract(epoch FROM started_at - window_start)::float8 / 86400
         FROM reconcile_runs WHERE scope = 'orders' ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(backfill.0, "schedule");
    assert!((backfill.1 - 62.0).abs() < 0.01, "{backfill:?}");
    w.workers.cancel();
}
