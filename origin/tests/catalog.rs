//! Catalog resync end to end: the simulator's bulk export → binary COPY → one merge
//! transaction into the live tables of a real PostgreSQL, checked against the generator's
//! ground truth.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use shopify_simulator::catalog::Row;
use shopify_simulator::{
    BulkFault, CatalogSpec, ChildOrder, Selection, Simulator, SimulatorConfig, DEFAULT_SHOP,
    DEFAULT_TOKEN,
};
use sqlx::PgPool;
use wholesail_origin::catalog::{runs, Progress, RunError, Runner, Settings};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

async fn simulator(spec: CatalogSpec, order: ChildOrder, bulk_ms: u64) -> Simulator {
    let mut c = SimulatorConfig::default();
    c.shops[0].catalog = spec;
    c.bulk.child_order = order;
    c.bulk.duration = Duration::from_millis(bulk_ms);
    Simulator::start(c).await.unwrap()
}

fn client(sim: &Simulator) -> AdminClient {
    AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))
    .unwrap()
}

/// The COPY connections' configuration for the test database behind `pool`.
fn copy_config(pool: &PgPool) -> tokio_postgres::Config {
    let o = pool.connect_options();
    let mut c = tokio_postgres::Config::new();
    c.host(o.get_host())
        .port(o.get_port())
        .user(o.get_username())
        .dbname(o.get_database().unwrap_or("postgres"));
    c
}

fn runner(pool: &PgPool) -> Runner {
    Runner::new(
        pool.clone(),
        copy_config(pool),
        Settings {
            poll_interval: Duration::from_millis(50),
            progress_interval: Duration::from_millis(10),
            ..Settings::default()
        },
    )
}

fn no_progress(_: Progress) {}

/// What the live tables should hold for `spec`: (products, variants with price, levels, metafields).
#[derive(Debug, PartialEq, Default)]
struct Catalog {
    products: BTreeMap<i64, String>,
    variants: BTreeMap<i64, (i64, String)>,
    levels: BTreeMap<(i64, i64), Option<i32>>,
    metafields: BTreeMap<(i64, String), String>,
}

fn expected(spec: &CatalogSpec) -> Catalog {
    let mut c = Catalog::default();
    for row in spec.rows(Selection::ALL, ChildOrder::Grouped) {
        match row {
            Row::Product(p) => {
                c.products.insert(p.id as i64, p.title);
            }
            Row::Variant(v) => {
                let price = format!("{}.{:02}", v.price_cents / 100, v.price_cents % 100);
                c.variants.insert(v.id as i64, (v.product_id as i64, price));
            }
            Row::InventoryLevel(l) => {
                c.levels.insert(
                    (l.inventory_item_id as i64, l.location_id as i64),
                    Some(l.available as i32),
                );
            }
            Row::Metafield(m) => {
                let owner = match m.owner {
                    shopify_simulator::catalog::Owner::Product(p) => p,
                    shopify_simulator::catalog::Owner::Variant(v) => v,
                };
                c.metafields.insert((owner as i64, m.key), m.value);
            }
        }
    }
    c
}

async fn live(pool: &PgPool) -> Catalog {
    let mut c = Catalog::default();
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, title FROM products WHERE shop = $1 AND deleted_at IS NULL")
            .bind(DEFAULT_SHOP)
            .fetch_all(pool)
            .await
            .unwrap();
    c.products.extend(rows);
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT id, product_id, to_char(price, 'FM999999990.00') FROM variants WHERE shop = $1",
    )
    .bind(DEFAULT_SHOP)
    .fetch_all(pool)
    .await
    .unwrap();
    c.variants
        .extend(rows.into_iter().map(|(id, p, price)| (id, (p, price))));
    let rows: Vec<(i64, i64, Option<i32>)> = sqlx::query_as(
        "SELECT inventory_item_id, location_id, available FROM inventory_levels WHERE shop = $1",
    )
    .bind(DEFAULT_SHOP)
    .fetch_all(pool)
    .await
    .unwrap();
    c.levels
        .extend(rows.into_iter().map(|(i, l, a)| ((i, l), a)));
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT owner_id, key, value FROM catalog_metafields WHERE shop = $1")
            .bind(DEFAULT_SHOP)
            .fetch_all(pool)
            .await
            .unwrap();
    c.metafields
        .extend(rows.into_iter().map(|(o, k, v)| ((o, k), v)));
    c
}

/// Every live row of the shop as text, to show a failed run changed nothing.
async fn snapshot(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT x FROM (
             SELECT 'p' || p::text AS x FROM products p WHERE shop = $1
             UNION ALL SELECT 'v' || v::text FROM variants v WHERE shop = $1
             UNION ALL SELECT 'l' || l::text FROM inventory_levels l WHERE shop = $1
             UNION ALL SELECT 'm' || m::text FROM catalog_metafields m WHERE shop = $1) s
         ORDER BY x",
    )
    .bind(DEFAULT_SHOP)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn small_catalog_resync_loads_exactly_the_export_without_throttling(pool: PgPool) {
    let spec = CatalogSpec::new(7, 40);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 100).await;
    let seen = std::sync::Mutex::new(Vec::new());
    let on_progress = |p: Progress| seen.lock().unwrap().push(p);
    let out = runner(&pool)
        .resync(&client(&sim), DEFAULT_SHOP, &on_progress)
        .await
        .unwrap();
    let truth = sim
        .bulk_ground_truth(DEFAULT_SHOP, out.run.bulk_operation_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(out.run.status, "completed");
    assert_eq!(out.staged.products, truth.counts.products);
    assert_eq!(out.staged.variants, truth.counts.variants);
    assert_eq!(out.staged.inventory_levels, truth.counts.inventory_levels);
    assert_eq!(out.staged.metafields, truth.counts.metafields);
    assert_eq!(out.run.lines_read as u64, truth.lines);
    assert_eq!(out.run.bytes_read as u64, truth.bytes);
    assert_eq!(out.merged.products.inserted, truth.counts.products);
    assert_eq!(out.merged.variants.inserted, truth.counts.variants);
    assert_eq!(live(&pool).await, expected(&spec));
    let last = *seen.lock().unwrap().last().unwrap();
    assert_eq!((last.lines, last.bytes), (truth.lines, truth.bytes));
    assert!(
        sim.throttled(DEFAULT_SHOP).is_empty(),
        "the client overdrew the bucket"
    );
    // The staging tables are gone.
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'catalog_stage_%\\_%\\_%' AND tablename ~ '^catalog_stage_[0-9]'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn resync_after_a_revision_inserts_updates_and_deletes_to_the_new_ground_truth(pool: PgPool) {
    let spec = CatalogSpec::new(11, 120);
    let sim = simulator(spec.clone(), ChildOrder::Scattered { window: 300 }, 50).await;
    let r = runner(&pool);
    let c = client(&sim);
    r.resync(&c, DEFAULT_SHOP, &no_progress).await.unwrap();
    let next = spec.at_revision(1);
    sim.set_catalog(DEFAULT_SHOP, next.clone());
    let out = r.resync(&c, DEFAULT_SHOP, &no_progress).await.unwrap();
    assert_eq!(live(&pool).await, expected(&next));
    let m = out.merged;
    assert!(m.products.inserted > 0 && m.products.deleted > 0, "{m:?}");
    assert!(
        m.variants.inserted > 0 && m.variants.updated > 0 && m.variants.deleted > 0,
        "{m:?}"
    );
    assert!(
        m.inventory_levels.updated > 0 && m.inventory_levels.deleted > 0,
        "{m:?}"
    );
    // Deleted products are tombstones, without variants.
    let tombstones: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products p WHERE shop = $1 AND deleted_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM variants v WHERE v.shop = p.shop AND v.product_id = p.id)",
    )
    .bind(DEFAULT_SHOP)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tombstones as u64, m.products.deleted);
    // The same export again changes nothing.
    let again = r.resync(&c, DEFAULT_SHOP, &no_progress).await.unwrap();
    let t = again.merged.total();
    assert_eq!((t.inserted, t.updated, t.deleted), (0, 0, 0));
    assert!(sim.throttled(DEFAULT_SHOP).is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn children_before_or_long_after_their_parents_load_the_same_catalog(pool: PgPool) {
    let spec = CatalogSpec::new(5, 60);
    for order in [
        ChildOrder::ParentsFirst,
        ChildOrder::Scattered { window: 5000 },
        ChildOrder::Scattered { window: 3 },
    ] {
        sqlx::query("TRUNCATE products, variants, inventory_levels, catalog_metafields")
            .execute(&pool)
            .await
            .unwrap();
        let sim = simulator(spec.clone(), order, 50).await;
        runner(&pool)
            .resync(&client(&sim), DEFAULT_SHOP, &no_progress)
            .await
            .unwrap();
        assert_eq!(live(&pool).await, expected(&spec), "{order:?}");
    }
}

async fn failed_file(
    pool: PgPool,
    fault: impl Fn(&CatalogSpec) -> BulkFault,
    line_check: impl Fn(i64),
) {
    let spec = CatalogSpec::new(3, 50);
    let sim = simulator(spec.clone(), ChildOrder::Scattered { window: 100 }, 50).await;
    let r = runner(&pool);
    let c = client(&sim);
    r.resync(&c, DEFAULT_SHOP, &no_progress).await.unwrap();
    let before = snapshot(&pool).await;
    let next = spec.at_revision(1);
    sim.set_catalog(DEFAULT_SHOP, next.clone());
    sim.inject_bulk_fault(DEFAULT_SHOP, fault(&next));
    let err = r.resync(&c, DEFAULT_SHOP, &no_progress).await.unwrap_err();
    assert!(
        matches!(err, RunError::Line(_) | RunError::Truncated { .. }),
        "{err}"
    );
    let run = runs::list(&pool, Some(DEFAULT_SHOP), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(run.status, "failed");
    assert!(run.error.is_some());
    line_check(run.error_line.expect("the failure names its line"));
    assert_eq!(
        snapshot(&pool).await,
        before,
        "a failed run changed the live tables"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn corrupt_line_fails_the_run_with_its_line_number_and_leaves_live_tables_untouched(
    pool: PgPool,
) {
    failed_file(
        pool,
        |_| BulkFault::CorruptLine { line: 137 },
        |l| assert_eq!(l, 137),
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn truncated_file_fails_the_run_with_its_last_line_and_leaves_live_tables_untouched(
    pool: PgPool,
) {
    failed_file(
        pool,
        |_| BulkFault::Truncate { at_byte: 40_000 },
        |l| assert!(l > 10, "line {l}"),
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn failed_bulk_operation_fails_the_run_with_shopifys_error_code(pool: PgPool) {
    let sim = simulator(CatalogSpec::new(1, 10), ChildOrder::Grouped, 50).await;
    sim.inject_bulk_fault(
        DEFAULT_SHOP,
        BulkFault::Fail {
            code: "INTERNAL_SERVER_ERROR",
            partial_lines: Some(5),
        },
    );
    let err = runner(&pool)
        .resync(&client(&sim), DEFAULT_SHOP, &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::BulkFailed { .. }), "{err}");
    let run = runs::list(&pool, Some(DEFAULT_SHOP), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(run.status, "failed");
    assert!(run.error.unwrap().contains("INTERNAL_SERVER_ERROR"));
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(products, 0, "partial data is never merged");
}

#[sqlx::test(migrations = "../migrations")]
async fn restart_while_the_bulk_operation_runs_resumes_the_same_operation(pool: PgPool) {
    let spec = CatalogSpec::new(9, 30);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 1500).await;
    let first = runner(&pool);
    let c = client(&sim);
    let task = tokio::spawn(async move {
        let c = c;
        first.resync(&c, DEFAULT_SHOP, &no_progress).await
    });
    // Wait until the run is waiting for its bulk operation, then "crash".
    let run = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(r) = runs::active(&pool, DEFAULT_SHOP).await.unwrap() {
            if r.status == "waiting" {
                break r;
            }
        }
    };
    task.abort();
    let _ = task.await;
    // A new process: resyncing the shop joins the stored run.
    let out = runner(&pool)
        .resync(&client(&sim), DEFAULT_SHOP, &no_progress)
        .await
        .unwrap();
    assert_eq!(out.run.id, run.id);
    assert_eq!(out.run.bulk_operation_id, run.bulk_operation_id);
    let started = sim
        .cost_log(DEFAULT_SHOP)
        .iter()
        .filter(|e| e.operation == "bulkOperationRunQuery")
        .count();
    assert_eq!(started, 1, "the restart started a second bulk operation");
    assert_eq!(live(&pool).await, expected(&spec));
}

#[sqlx::test(migrations = "../migrations")]
async fn webhook_versions_newer_than_the_export_are_not_overwritten(pool: PgPool) {
    let spec = CatalogSpec::new(13, 20);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 50).await;
    let r = runner(&pool);
    let c = client(&sim);
    r.resync(&c, DEFAULT_SHOP, &no_progress).await.unwrap();
    // A products/update webhook applied after the export: newer version, new title, one
    // variant less.
    let (pid, vid): (i64, i64) =
        sqlx::query_as("SELECT product_id, id FROM variants WHERE shop = $1 ORDER BY id LIMIT 1")
            .bind(DEFAULT_SHOP)
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query(
        "UPDATE products SET title = 'From webhook', source_updated_at = now() + interval '1 hour'
         WHERE shop = $1 AND id = $2",
    )
    .bind(DEFAULT_SHOP)
    .bind(pid)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM variants WHERE shop = $1 AND id = $2")
        .bind(DEFAULT_SHOP)
        .bind(vid)
        .execute(&pool)
        .await
        .unwrap();
    r.resync(&c, DEFAULT_SHOP, &no_progress).await.unwrap();
    let title: String =
        sqlx::query_scalar("SELECT title FROM products WHERE shop = $1 AND id = $2")
            .bind(DEFAULT_SHOP)
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(title, "From webhook");
    let back: i64 = sqlx::query_scalar("SELECT count(*) FROM variants WHERE shop = $1 AND id = $2")
        .bind(DEFAULT_SHOP)
        .bind(vid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        back, 0,
        "the export's older variant set replaced the webhook's"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn cancel_while_waiting_cancels_the_bulk_operation_and_ends_the_run(pool: PgPool) {
    let sim = simulator(CatalogSpec::new(2, 20), ChildOrder::Grouped, 3000).await;
    let r = runner(&pool);
    let c = client(&sim);
    let task = tokio::spawn(async move {
        let c = c;
        r.resync(&c, DEFAULT_SHOP, &no_progress).await
    });
    let run = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(r) = runs::active(&pool, DEFAULT_SHOP).await.unwrap() {
            if r.status == "waiting" {
                break r;
            }
        }
    };
    assert!(runs::cancel(&pool, run.id).await.unwrap());
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, RunError::Canceled), "{err}");
    let run = runs::get(&pool, run.id).await.unwrap().unwrap();
    assert_eq!(run.status, "canceled");
    assert!(run.finished_at.is_some());
}

#[sqlx::test(migrations = "../migrations")]
async fn finish_webhook_wakes_the_runner_before_its_next_poll(pool: PgPool) {
    let spec = CatalogSpec::new(4, 10);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 300).await;
    let slow = Runner::new(
        pool.clone(),
        copy_config(&pool),
        Settings {
            poll_interval: Duration::from_secs(60),
            ..Settings::default()
        },
    );
    let c = client(&sim);
    let started = std::time::Instant::now();
    let task = tokio::spawn(async move {
        let c = c;
        slow.resync(&c, DEFAULT_SHOP, &no_progress).await
    });
    // Play the webhook handler: once Shopify reports the operation finished, call the hook.
    let probe = client(&sim);
    let run = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(r) = runs::active(&pool, DEFAULT_SHOP).await.unwrap() else {
            continue;
        };
        let Some(gid) = r.bulk_operation_id.clone() else {
            continue;
        };
        let op = probe.bulk_operation(&gid).await.unwrap().unwrap();
        if op.status.is_final() {
            let woke = wholesail_origin::catalog::bulk_finished(&pool, DEFAULT_SHOP, &gid)
                .await
                .unwrap();
            assert_eq!(woke, Some(r.id));
            break r;
        }
    };
    let out = task.await.unwrap().unwrap();
    assert_eq!(out.run.id, run.id);
    assert!(out.run.bulk_finished_at.is_some());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the runner waited for its poll"
    );
    assert_eq!(live(&pool).await, expected(&spec));
}

#[sqlx::test(migrations = "../migrations")]
async fn cli_resync_prints_a_summary_of_inserted_updated_deleted(pool: PgPool) {
    use wholesail_origin::catalog::cli;
    let spec = CatalogSpec::new(21, 15);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 50).await;
    let args = || cli::ResyncArgs {
        shop: DEFAULT_SHOP.into(),
        shop_url: Some(sim.base_url().to_owned()),
        api_version: "2026-01".into(),
        access_token: SecretString::from(DEFAULT_TOKEN),
        poll_secs: 1,
    };
    let out = cli::resync(pool.clone(), copy_config(&pool), args())
        .await
        .unwrap();
    let line = cli::summary(&out);
    let counts = spec.counts(Selection::ALL);
    assert!(
        line.contains(&format!("{} rows imported", counts.total())),
        "{line}"
    );
    assert!(
        line.contains(&format!("inserted {}", counts.total())),
        "{line}"
    );
    assert!(line.contains("updated 0, deleted 0"), "{line}");
}

#[sqlx::test(migrations = "../migrations")]
async fn admin_api_starts_a_resync_and_reports_it_until_completed(pool: PgPool) {
    use std::sync::Arc;
    use wholesail_origin::catalog::admin::{router, CatalogApi};
    let spec = CatalogSpec::new(17, 25);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 200).await;
    let base = sim.base_url().to_owned();
    let api = CatalogApi {
        runner: runner(&pool),
        clients: Arc::new(move |_shop: &str| {
            AdminClient::new(AdminConfig::new(
                base.clone(),
                "2026-01",
                SecretString::from(DEFAULT_TOKEN),
            ))
        }),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router::<()>(api);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let started = http
        .post(format!("http://{addr}/admin/catalog/resync"))
        .json(&serde_json::json!({"shop": DEFAULT_SHOP}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let run: serde_json::Value = started.json().await.unwrap();
    let id = run["id"].as_i64().unwrap();
    // A second request joins the active run.
    let again: serde_json::Value = http
        .post(format!("http://{addr}/admin/catalog/resync"))
        .json(&serde_json::json!({"shop": DEFAULT_SHOP}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"].as_i64(), Some(id));
    let done = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r: serde_json::Value = http
            .get(format!("http://{addr}/admin/catalog/runs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] != "waiting" && r["status"] != "starting" && r["status"] != "importing" {
            break r;
        }
    };
    assert_eq!(done["status"], "completed", "{done}");
    let counts = spec.counts(Selection::ALL);
    assert_eq!(done["lines_read"].as_u64(), Some(counts.total()));
    assert_eq!(done["inserted"].as_u64(), Some(counts.total()));
    let missing = http
        .get(format!("http://{addr}/admin/catalog/runs/999999"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let cancel = http
        .post(format!("http://{addr}/admin/catalog/runs/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 409, "a completed run cannot be canceled");
}
