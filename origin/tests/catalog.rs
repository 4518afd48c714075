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
use wholesail_origin::catalog::copy::StagedCounts;
use wholesail_origin::catalog::merge::MergeError;
use wholesail_origin::catalog::runs::{self, RunStatus};
use wholesail_origin::catalog::{direct, jsonl};
use wholesail_origin::catalog::{merge, Outcome, Progress, RunError, Runner, Settings};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

mod common;

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

/// A resync of the default shop by `r` through `c`, which must succeed.
async fn resync(r: &Runner, c: &AdminClient) -> Outcome {
    r.resync(c, &common::domain(DEFAULT_SHOP), &no_progress)
        .await
        .unwrap()
}

/// A simulator serving `spec` (children in `order`), a runner and a client, after a first
/// resync has loaded the catalog.
async fn loaded(
    pool: &PgPool,
    spec: &CatalogSpec,
    order: ChildOrder,
) -> (Simulator, Runner, AdminClient) {
    let sim = simulator(spec.clone(), order, 50).await;
    let (r, c) = (runner(pool), client(&sim));
    resync(&r, &c).await;
    (sim, r, c)
}

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

/// The shop's newest catalog run.
async fn latest_run(pool: &PgPool) -> runs::Run {
    runs::list(pool, Some(&common::domain(DEFAULT_SHOP)), 1)
        .await
        .unwrap()
        .remove(0)
}

/// Every live row of the shop as text, to show a failed run changed nothing.
async fn snapshot(pool: &PgPool) -> Vec<String> {
    catalog_rows(pool, &[]).await
}

/// Every catalog row of the default shop as JSON text, without the columns `leave_out`.
async fn catalog_rows(pool: &PgPool, leave_out: &[&str]) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT x FROM (
             SELECT 'p' || (to_jsonb(p) - $2::text[])::text AS x FROM products p WHERE shop = $1
             UNION ALL SELECT 'v' || (to_jsonb(v) - $2::text[])::text
             FROM variants v WHERE shop = $1
             UNION ALL SELECT 'l' || (to_jsonb(l) - $2::text[])::text
             FROM inventory_levels l WHERE shop = $1
             UNION ALL SELECT 'm' || (to_jsonb(m) - $2::text[])::text
             FROM catalog_metafields m WHERE shop = $1) s
         ORDER BY x",
    )
    .bind(DEFAULT_SHOP)
    .bind(leave_out)
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
        .resync(&client(&sim), &common::domain(DEFAULT_SHOP), &on_progress)
        .await
        .unwrap();
    let truth = sim
        .bulk_ground_truth(DEFAULT_SHOP, out.run.bulk_operation_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(out.run.status, RunStatus::Completed);
    assert_eq!(out.staged.products, truth.counts.products);
    assert_eq!(out.staged.variants, truth.counts.variants);
    assert_eq!(out.staged.inventory_levels, truth.counts.inventory_levels);
    assert_eq!(out.staged.metafields, truth.counts.metafields);
    assert_eq!(out.run.lines_read as u64, truth.lines);
    assert_eq!(out.run.bytes_read as u64, truth.bytes);
    assert_eq!(out.merged.products.inserted, truth.counts.products);
    assert_eq!(out.merged.variants.inserted, truth.counts.variants);
    assert_eq!(live(&pool).await, expected(&spec));
    // Every row the run wrote names it.
    let writers: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT DISTINCT written_by FROM (
             SELECT written_by FROM products UNION ALL SELECT written_by FROM variants
             UNION ALL SELECT written_by FROM inventory_levels
             UNION ALL SELECT written_by FROM catalog_metafields) w",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(writers, [Some(format!("catalog_run:{}", out.run.id))]);
    // The trace of a SKU resolves it to the run.
    let sku: String = sqlx::query_scalar("SELECT sku FROM variants WHERE sku IS NOT NULL LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let trace = wholesail_origin::trace::lookup(&pool, None, &sku)
        .await
        .unwrap();
    let traced = serde_json::to_value(&trace.records[0]).unwrap();
    assert_eq!(
        traced["writer"],
        serde_json::json!({"kind": "catalog_run", "id": out.run.id, "reconcile_run": null})
    );
    assert_eq!(
        traced["timeline"].as_array().unwrap().last().unwrap()["what"],
        "catalog_run"
    );
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
    resync(&r, &c).await;
    let next = spec.at_revision(1);
    sim.set_catalog(DEFAULT_SHOP, next.clone());
    let out = resync(&r, &c).await;
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
    let again = resync(&r, &c).await;
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
            .resync(&client(&sim), &common::domain(DEFAULT_SHOP), &no_progress)
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
    resync(&r, &c).await;
    let before = snapshot(&pool).await;
    let next = spec.at_revision(1);
    sim.set_catalog(DEFAULT_SHOP, next.clone());
    sim.inject_bulk_fault(DEFAULT_SHOP, fault(&next));
    let err = r
        .resync(&c, &common::domain(DEFAULT_SHOP), &no_progress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Line(_) | RunError::Truncated { .. }),
        "{err}"
    );
    let run = latest_run(&pool).await;
    assert_eq!(run.status, RunStatus::Failed);
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
        .resync(&client(&sim), &common::domain(DEFAULT_SHOP), &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::BulkFailed { .. }), "{err}");
    let run = latest_run(&pool).await;
    assert_eq!(run.status, RunStatus::Failed);
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
        first
            .resync(&c, &common::domain(DEFAULT_SHOP), &no_progress)
            .await
    });
    // Wait until the run is waiting for its bulk operation, then "crash".
    let run = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(r) = runs::active(&pool, &common::domain(DEFAULT_SHOP))
            .await
            .unwrap()
        {
            if r.status == RunStatus::Waiting {
                break r;
            }
        }
    };
    task.abort();
    let _ = task.await;
    // The "crashed" driver's session ends and PostgreSQL releases its lock.
    common::eventually(
        Duration::from_secs(10),
        "the driver lock released",
        || async {
            let held: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                 WHERE l.locktype = 'advisory' AND d.datname = current_database()",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            held == 0
        },
    )
    .await;
    // A new process: resyncing the shop takes the stored run over.
    let out = runner(&pool)
        .resync(&client(&sim), &common::domain(DEFAULT_SHOP), &no_progress)
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
    resync(&r, &c).await;
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
    resync(&r, &c).await;
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

/// Waits until a statement containing `statement` (the merge's) waits on a row lock, that is
/// until the merge reached the row a test's open webhook transaction holds.
async fn until_merge_waits_on(pool: &PgPool, statement: &str) {
    let start = std::time::Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'
               AND datname = current_database()",
        )
        .bind(statement)
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the merge never waited for the webhook's row"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A B2B rule of the default shop: an empty shop with one is loaded through staging (the
/// direct load is for shops without rules).
async fn add_rule(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO rule_line_limits (shop, company_location, target_kind, target_id, increment)
         VALUES ($1, 'gid://shopify/CompanyLocation/1', 'variant', 1, 2)",
    )
    .bind(DEFAULT_SHOP)
    .execute(pool)
    .await
    .unwrap();
}

/// A products/create webhook newer than the export, still in flight when the first resync of
/// the empty shop writes products (`waits_in`: the direct load's COPY, or with a rule the
/// staged load's INSERT): the write waits for it and fails on its key once it commits; the
/// run goes on through staging and the guarded merge, and the webhook's product survives.
async fn webhook_product_during_the_first_resync(pool: PgPool, waits_in: &str) {
    let spec = CatalogSpec::new(29, 20);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 50).await;
    let pid = CatalogSpec::product_id(0) as i64;
    let mut webhook = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO products (shop, id, admin_graphql_api_id, title, source_updated_at, written_by)
         VALUES ($1, $2, 'gid://shopify/Product/' || $2, 'From webhook',
                 now() + interval '1 hour', 'webhook:test')",
    )
    .bind(DEFAULT_SHOP)
    .bind(pid)
    .execute(&mut *webhook)
    .await
    .unwrap();
    let task = {
        let (r, c) = (runner(&pool), client(&sim));
        tokio::spawn(async move {
            r.resync(&c, &common::domain(DEFAULT_SHOP), &no_progress)
                .await
        })
    };
    until_merge_waits_on(&pool, waits_in).await;
    webhook.commit().await.unwrap();
    let out = task.await.unwrap().unwrap();
    let counts = spec.counts(Selection::ALL);
    assert_eq!(out.merged.products.inserted, counts.products - 1);
    let (title, by): (String, String) =
        sqlx::query_as("SELECT title, written_by FROM products WHERE shop = $1 AND id = $2")
            .bind(DEFAULT_SHOP)
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (title.as_str(), by.as_str()),
        ("From webhook", "webhook:test")
    );
    // Its variant set is the webhook's (none), not the older export's.
    let variants: i64 =
        sqlx::query_scalar("SELECT count(*) FROM variants WHERE shop = $1 AND product_id = $2")
            .bind(DEFAULT_SHOP)
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(variants, 0);
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products WHERE shop = $1")
        .bind(DEFAULT_SHOP)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(products as u64, counts.products);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_product_a_webhook_inserts_during_the_direct_first_load_survives_through_staging(
    pool: PgPool,
) {
    webhook_product_during_the_first_resync(pool, "COPY products").await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_product_a_webhook_inserts_during_the_first_resync_survives_the_retried_merge(
    pool: PgPool,
) {
    add_rule(&pool).await;
    webhook_product_during_the_first_resync(pool, "INSERT INTO products").await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_direct_first_load_writes_the_rows_the_staged_load_writes(pool: PgPool) {
    // ~12,000 variants and ~24,000 levels: more than one COPY chunk each.
    let spec = CatalogSpec::new(60, 1500);
    let sim = simulator(spec.clone(), ChildOrder::Scattered { window: 200 }, 20).await;
    let shop = common::domain(DEFAULT_SHOP);
    // Through staging: a rule makes the empty shop ineligible for the direct load.
    add_rule(&pool).await;
    let staged = runner(&pool)
        .resync(&client(&sim), &shop, &no_progress)
        .await
        .unwrap();
    let who_and_when = ["written_by", "applied_at"];
    let through_staging = catalog_rows(&pool, &who_and_when).await;
    for t in [
        "products",
        "variants",
        "inventory_levels",
        "catalog_metafields",
        "rule_line_limits",
    ] {
        sqlx::query(&format!("DELETE FROM {t} WHERE shop = $1"))
            .bind(DEFAULT_SHOP)
            .execute(&pool)
            .await
            .unwrap();
    }
    let direct = runner(&pool)
        .resync(&client(&sim), &shop, &no_progress)
        .await
        .unwrap();
    assert_eq!(catalog_rows(&pool, &who_and_when).await, through_staging);
    assert_eq!(live(&pool).await, expected(&spec));
    assert_eq!(
        (direct.staged, direct.merged),
        (staged.staged, staged.merged)
    );
    assert_eq!(direct.run.status, RunStatus::Completed);
    assert_eq!(
        written_by_run(&pool, direct.run.id).await as u64,
        spec.counts(Selection::ALL).total()
    );
    assert_eq!(
        (staged.run.direct, direct.run.direct),
        (Some(false), Some(true))
    );
}

/// Records the key of every row inserted into `table` from now on, in insertion order (a row
/// trigger writing to `inserted_keys`).
async fn log_inserted_keys(pool: &PgPool, table: &str, key: &str) {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS inserted_keys (
             seq bigserial PRIMARY KEY, tbl text NOT NULL, a bigint NOT NULL, b bigint NOT NULL)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION log_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO inserted_keys (tbl, a, b) SELECT '{table}', k.* FROM (SELECT {key}
                 FROM (SELECT NEW.*) AS r) AS k;
             RETURN NULL;
         END $$;
         CREATE TRIGGER log_{table} AFTER INSERT ON {table}
             FOR EACH ROW EXECUTE FUNCTION log_{table}();"
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// How many times a key is lower than the one before it.
fn descents(keys: &[(i64, i64)]) -> usize {
    keys.windows(2).filter(|w| w[1] < w[0]).count()
}

/// Loads a scattered export into the empty shop (`direct`: straight into the live tables, or
/// through staging when a rule makes the shop ineligible) and checks every table's rows were
/// inserted in primary-key order.
async fn first_load_inserts_in_key_order(pool: PgPool, direct: bool) {
    // Each kind fits one COPY chunk; the export scatters the children.
    let spec = CatalogSpec::new(5, 60);
    let order = ChildOrder::Scattered { window: 200 };
    let exported: Vec<(i64, i64)> = spec
        .rows(Selection::ALL, order)
        .filter_map(|row| match row {
            Row::InventoryLevel(l) => Some((l.inventory_item_id as i64, l.location_id as i64)),
            _ => None,
        })
        .collect();
    assert!(
        descents(&exported) > 10,
        "the export's levels are out of key order"
    );
    let tables = [
        ("products", "r.id, 0"),
        ("variants", "r.id, 0"),
        ("inventory_levels", "r.inventory_item_id, r.location_id"),
        (
            "catalog_metafields",
            "(r.owner_type <> 'Product')::int, r.owner_id",
        ),
    ];
    for (table, key) in tables {
        log_inserted_keys(&pool, table, key).await;
    }
    if !direct {
        add_rule(&pool).await;
    }
    let sim = simulator(spec.clone(), order, 20).await;
    let run = runner(&pool)
        .resync(&client(&sim), &common::domain(DEFAULT_SHOP), &no_progress)
        .await
        .unwrap();
    assert_eq!(run.run.direct, Some(direct));
    assert_eq!(live(&pool).await, expected(&spec));
    for (table, _) in tables {
        let keys: Vec<(i64, i64)> =
            sqlx::query_as("SELECT a, b FROM inserted_keys WHERE tbl = $1 ORDER BY seq")
                .bind(table)
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(keys.len() > 1, "{table}");
        assert_eq!(descents(&keys), 0, "{table} inserted out of key order");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_direct_load_inserts_each_chunk_in_primary_key_order(pool: PgPool) {
    first_load_inserts_in_key_order(pool, true).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_staged_first_load_inserts_in_primary_key_order(pool: PgPool) {
    first_load_inserts_in_key_order(pool, false).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_direct_load_encodes_prices_as_postgresql_reads_them_and_drops_only_orphan_variants(
    pool: PgPool,
) {
    let shop = common::domain(DEFAULT_SHOP);
    let prices = [
        "0",
        "0.5",
        "-0.50",
        "12.",
        "10000",
        "1.0001",
        "-99999.9",
        "12345678",
        "123456789012345.1234",
        "999999999999999.9999",
        "-0",
        "100000000.0100",
    ];
    let product =
        br#"{"id":"gid://shopify/Product/7","title":"P","updatedAt":"2026-01-01T00:00:00Z"}"#
            .to_vec();
    let mut lines = vec![product];
    for (i, p) in prices.iter().enumerate() {
        lines.push(format!(
            r#"{{"id":"gid://shopify/ProductVariant/{}","price":"{p}","compareAtPrice":"{p}","updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/Product/7"}}"#,
            100 + i
        ).into_bytes());
    }
    // A variant whose product is not in the export: the merge never writes one.
    lines.push(br#"{"id":"gid://shopify/ProductVariant/999","price":"1.00","updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/Product/8"}"#.to_vec());
    // A variant read before its product: kept.
    lines.push(br#"{"id":"gid://shopify/ProductVariant/998","price":"1.00","updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/Product/9"}"#.to_vec());
    lines.push(
        br#"{"id":"gid://shopify/Product/9","title":"Q","updatedAt":"2026-01-01T00:00:00Z"}"#
            .to_vec(),
    );
    let mut direct = direct::begin(&pool, 1, &shop)
        .await
        .unwrap()
        .expect("an empty shop loads directly");
    for (n, line) in lines.iter().enumerate() {
        direct
            .write(&jsonl::parse(n as u64 + 1, line).unwrap())
            .await
            .unwrap();
    }
    let mut loaded = direct.finish().await.unwrap();
    assert_eq!(loaded.staged.variants, prices.len() as u64 + 2);
    assert_eq!(loaded.merged.variants.inserted, prices.len() as u64 + 1);
    for (i, p) in prices.iter().enumerate() {
        let (price, compare_at, want): (String, String, String) = sqlx::query_as(
            "SELECT price::text, compare_at_price::text, $3::numeric::text FROM variants
             WHERE shop = $1 AND id = $2",
        )
        .bind(DEFAULT_SHOP)
        .bind(100 + i as i64)
        .bind(p)
        .fetch_one(&mut *loaded.tx)
        .await
        .unwrap();
        assert_eq!(
            (price.as_str(), compare_at.as_str()),
            (want.as_str(), want.as_str()),
            "{p}"
        );
    }
    let kept: Vec<i64> = sqlx::query_scalar("SELECT id FROM variants WHERE id IN (998, 999)")
        .fetch_all(&mut *loaded.tx)
        .await
        .unwrap();
    assert_eq!(kept, [998]);
    // Until it commits, nobody else sees the rows.
    assert!(snapshot(&pool).await.is_empty());
    // A shop that has rows is not loaded directly.
    loaded.tx.commit().await.unwrap();
    assert!(direct::begin(&pool, 2, &shop).await.unwrap().is_none());
}

#[sqlx::test(migrations = "../migrations")]
async fn cancel_while_waiting_cancels_the_bulk_operation_and_ends_the_run(pool: PgPool) {
    let sim = simulator(CatalogSpec::new(2, 20), ChildOrder::Grouped, 3000).await;
    let r = runner(&pool);
    let c = client(&sim);
    let task = tokio::spawn(async move {
        let c = c;
        r.resync(&c, &common::domain(DEFAULT_SHOP), &no_progress)
            .await
    });
    let run = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(r) = runs::active(&pool, &common::domain(DEFAULT_SHOP))
            .await
            .unwrap()
        {
            if r.status == RunStatus::Waiting {
                break r;
            }
        }
    };
    assert!(runs::cancel(&pool, run.id).await.unwrap());
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, RunError::Canceled), "{err}");
    let run = runs::get(&pool, run.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Canceled);
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
        slow.resync(&c, &common::domain(DEFAULT_SHOP), &no_progress)
            .await
    });
    // Play the webhook handler: once Shopify reports the operation finished, call the hook.
    let probe = client(&sim);
    let run = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(r) = runs::active(&pool, &common::domain(DEFAULT_SHOP))
            .await
            .unwrap()
        else {
            continue;
        };
        let Some(gid) = r.bulk_operation_id.clone() else {
            continue;
        };
        let op = probe.bulk_operation(&gid).await.unwrap().unwrap();
        if op.status.is_final() {
            let woke = wholesail_origin::catalog::bulk_finished(
                &pool,
                &common::domain(DEFAULT_SHOP),
                &gid,
            )
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
        shop: common::domain(DEFAULT_SHOP),
        shop_url: Some(sim.base_url().to_owned()),
        api_version: "2026-01".into(),
        access_token: Some(SecretString::from(DEFAULT_TOKEN)),
        poll_secs: 1,
    };
    let shops = wholesail_origin::shops::Shops::default();
    let resync = || {
        cli::resync(
            pool.clone(),
            copy_config(&pool),
            &shops,
            Settings::default(),
            args(),
        )
    };
    let out = resync().await.unwrap();
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
    // The empty shop was loaded straight into the live tables.
    assert!(
        line.contains("; import + merge ")
            && line.contains(" (direct load ")
            && line.contains(", checks "),
        "{line}"
    );
    // The phases are the run's stored durations (what a watcher and the admin API show).
    let stored = runs::get(&pool, out.run.id).await.unwrap().unwrap();
    assert_eq!(
        stored.stage_ms,
        Some(out.stage_time.as_millis() as i64),
        "stage_ms"
    );
    assert!(stored.merge_ms.is_some_and(|m| m >= 0), "merge_ms");
    assert_eq!(stored.direct, Some(true));
    // A shop with a catalog stages and merges.
    let again = resync().await.unwrap();
    let line = cli::summary(&again);
    let (products, variants) = (counts.products, counts.variants);
    assert!(
        line.contains("inserted 0, updated 0, deleted 0")
            && line.contains(&format!(
                "{products} of {products} products and {variants} of {variants} variants \
                 unchanged since the last resync"
            ))
            && line.contains(" (stage ")
            && line.contains(", merge "),
        "{line}"
    );
    assert_eq!(again.run.direct, Some(false));
}

/// `WHOLESAIL_SHOPS` naming the simulator's default shop.
fn shops_env(sim: &Simulator) -> String {
    format!(
        r#"[{{domain="{DEFAULT_SHOP}",url="{}",access_token="{DEFAULT_TOKEN}"}}]"#,
        sim.base_url()
    )
}

/// `GET` or `POST` on origin's admin API with the bearer token; the JSON answer and status.
async fn admin(
    origin: &common::Origin,
    post: Option<serde_json::Value>,
    path: &str,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let req = match post {
        Some(body) => http.post(origin.url(path)).json(&body),
        None => http.get(origin.url(path)),
    };
    let resp = req.bearer_auth(common::ADMIN_TOKEN).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// Polls run `id` through the admin API until it has ended.
async fn until_ended(origin: &common::Origin, id: i64, limit: Duration) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let (status, run) = admin(origin, None, &format!("/admin/catalog/runs/{id}")).await;
        assert_eq!(status, 200, "{run}");
        if !matches!(
            run["status"].as_str(),
            Some("starting" | "waiting" | "importing")
        ) {
            return run;
        }
        assert!(start.elapsed() < limit, "run {id} still active: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn admin_api_resyncs_a_configured_shop_behind_the_bearer_token(pool: PgPool) {
    common::grant_admin(&pool).await;
    let spec = CatalogSpec::new(17, 25);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 200).await;
    let origin = common::Origin::spawn(
        &common::database_url(&pool),
        &[
            ("WHOLESAIL_SHOPS", &shops_env(&sim)),
            ("WHOLESAIL_CATALOG__POLL_INTERVAL_MS", "50"),
        ],
    );
    let anonymous = reqwest::Client::new()
        .post(origin.url("/admin/catalog/resync"))
        .json(&serde_json::json!({"shop": DEFAULT_SHOP}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, body) = admin(
        &origin,
        Some(serde_json::json!({"shop": "other.myshopify.com"})),
        "/admin/catalog/resync",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{body}"
    );

    let (status, run) = admin(
        &origin,
        Some(serde_json::json!({"shop": DEFAULT_SHOP})),
        "/admin/catalog/resync",
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_i64().unwrap();
    // A second request joins the active run.
    let (_, again) = admin(
        &origin,
        Some(serde_json::json!({"shop": DEFAULT_SHOP})),
        "/admin/catalog/resync",
    )
    .await;
    assert_eq!(again["id"].as_i64(), Some(id));
    let done = until_ended(&origin, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["direct"], true, "{done}");
    // Stage and merge are reported apart, in milliseconds.
    assert!(
        done["stage_ms"].as_i64().is_some_and(|ms| ms >= 0),
        "{done}"
    );
    assert!(
        done["merge_ms"].as_i64().is_some_and(|ms| ms >= 0),
        "{done}"
    );
    let counts = spec.counts(Selection::ALL);
    assert_eq!(done["lines_read"].as_u64(), Some(counts.total()));
    assert_eq!(done["inserted"].as_u64(), Some(counts.total()));
    assert_eq!(live(&pool).await, expected(&spec));
    let (missing, _) = admin(&origin, None, "/admin/catalog/runs/999999").await;
    assert_eq!(missing, 404);
    let (cancel, _) = admin(
        &origin,
        Some(serde_json::json!({})),
        &format!("/admin/catalog/runs/{id}/cancel"),
    )
    .await;
    assert_eq!(cancel, 409, "a completed run cannot be canceled");
}

#[sqlx::test(migrations = "../migrations")]
async fn finish_webhook_delivered_to_origin_wakes_its_run(pool: PgPool) {
    common::grant_admin(&pool).await;
    let spec = CatalogSpec::new(4, 10);
    let mut c = SimulatorConfig::default();
    c.shops[0].catalog = spec.clone();
    c.bulk.duration = Duration::from_millis(300);
    c.app_secret = common::SHOPIFY_SECRET.into();
    let sim = Simulator::start(c).await.unwrap();
    let origin = common::Origin::spawn(
        &common::database_url(&pool),
        &[
            ("WHOLESAIL_SHOPS", &shops_env(&sim)),
            // Without the webhook the run would wait a minute for its next poll.
            ("WHOLESAIL_CATALOG__POLL_INTERVAL_MS", "60000"),
        ],
    );
    // Subscribed once origin listens (on a port of its own choosing, so no other process can
    // take it between a probe and the bind).
    sim.subscribe("bulk_operations/finish", &origin.url("/webhooks/shopify"));
    let started = std::time::Instant::now();
    let (_, run) = admin(
        &origin,
        Some(serde_json::json!({"shop": DEFAULT_SHOP})),
        "/admin/catalog/resync",
    )
    .await;
    let done = until_ended(
        &origin,
        run["id"].as_i64().unwrap(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(!done["bulk_finished_at"].is_null(), "{done}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let handled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inbox WHERE topic = 'bulk_operations/finish' AND status = 'done'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(handled >= 1, "the webhook went through the inbox");
    assert_eq!(live(&pool).await, expected(&spec));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_run_waiting_when_origin_dies_is_resumed_by_the_next_origin(pool: PgPool) {
    common::grant_admin(&pool).await;
    let spec = CatalogSpec::new(9, 20);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 3_000).await;
    let env = [
        ("WHOLESAIL_SHOPS", shops_env(&sim)),
        ("WHOLESAIL_CATALOG__POLL_INTERVAL_MS", "100".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = common::Origin::spawn(&common::database_url(&pool), &env);
    let (_, run) = admin(
        &first,
        Some(serde_json::json!({"shop": DEFAULT_SHOP})),
        "/admin/catalog/resync",
    )
    .await;
    let id = run["id"].as_i64().unwrap();
    let waiting = loop {
        let r = runs::get(&pool, id).await.unwrap().unwrap();
        if r.status == RunStatus::Waiting && r.bulk_operation_id.is_some() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill();
    let second = common::Origin::spawn(&common::database_url(&pool), &env);
    let done = until_ended(&second, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["bulk_operation_id"].as_str(),
        waiting.bulk_operation_id.as_deref(),
        "the resumed run kept waiting for the same bulk operation"
    );
    let runs_total: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs_total, 1);
    assert_eq!(live(&pool).await, expected(&spec));
}

/// `origin catalog resync --shop DEFAULT_SHOP` as a child process on the database of `pool`
/// (the shop configured like the servers'); its connections are named `app` in
/// `pg_stat_activity`.
fn cli_resync(pool: &PgPool, sim: &Simulator, app: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .args([
            "catalog",
            "resync",
            "--shop",
            DEFAULT_SHOP,
            "--poll-secs",
            "60",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("PGAPPNAME", app)
        .env("WHOLESAIL_DATABASE_URL", common::database_url(pool))
        .env("WHOLESAIL_SHOPS", shops_env(sim))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("origin binary starts")
}

/// Waits until a connection named `app` is open on the database of `pool`.
async fn until_connected(pool: &PgPool, app: &str) {
    common::eventually(Duration::from_secs(30), "the CLI's connection", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = $1",
        )
        .bind(app)
        .fetch_one(pool)
        .await
        .unwrap();
        n > 0
    })
    .await;
}

/// Plays the `bulk_operations/finish` webhook for run `id` once Shopify reports its bulk
/// operation finished: every process waiting for it wakes at the same moment.
async fn finish_webhook(pool: &PgPool, sim: &Simulator, id: i64) {
    let probe = client(sim);
    common::eventually(Duration::from_secs(60), "the bulk operation", || async {
        let run = runs::get(pool, id).await.unwrap().unwrap();
        let Some(gid) = run.bulk_operation_id else {
            return false;
        };
        let op = probe.bulk_operation(&gid).await.unwrap().unwrap();
        op.status.is_final()
            && wholesail_origin::catalog::bulk_finished(pool, &common::domain(DEFAULT_SHOP), &gid)
                .await
                .unwrap()
                .is_some()
    })
    .await;
}

/// Log lines (JSON) whose message is `message`.
fn logged(lines: &[String], message: &str) -> usize {
    lines
        .iter()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                v.pointer("/fields/message").and_then(|m| m.as_str()) == Some(message)
            })
        })
        .count()
}

/// After a second resync driven by two processes at once (`origins`, and `more` log lines of
/// a finished CLI): one merge, the live catalog is the export, nothing tombstoned.
async fn assert_merged_once(
    pool: &PgPool,
    spec: &CatalogSpec,
    id: i64,
    origins: &[&common::Origin],
    more: &[String],
) {
    let run = runs::get(pool, id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    let merges = || {
        let mut n = logged(more, "catalog resync completed");
        for o in origins {
            n += logged(&o.logs.lock().unwrap(), "catalog resync completed");
        }
        n
    };
    // The driver's log line follows its commit.
    common::eventually(Duration::from_secs(10), "the merge's log line", || async {
        merges() > 0
    })
    .await;
    assert_eq!(merges(), 1, "the run was merged more than once");
    let tombstones: i64 =
        sqlx::query_scalar("SELECT count(*) FROM products WHERE deleted_at IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(tombstones, 0, "a second driver tombstoned the catalog");
    assert_eq!(live(pool).await, expected(spec));
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE tablename ~ '^catalog_stage_[0-9]'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "staging tables left behind");
}

#[sqlx::test(migrations = "../migrations")]
async fn cli_resync_during_a_servers_run_watches_it_and_never_drives_it(pool: PgPool) {
    common::grant_admin(&pool).await;
    let started = std::time::Instant::now();
    let spec = CatalogSpec::new(31, 400);
    let sim = simulator(spec.clone(), ChildOrder::Scattered { window: 500 }, 2_000).await;
    // The live catalog, from a first resync.
    runner(&pool)
        .resync(&client(&sim), &common::domain(DEFAULT_SHOP), &no_progress)
        .await
        .unwrap();
    let origin = common::Origin::spawn(
        &common::database_url(&pool),
        &[
            ("WHOLESAIL_SHOPS", &shops_env(&sim)),
            ("WHOLESAIL_CATALOG__POLL_INTERVAL_MS", "60000"),
        ],
    );
    let (status, run) = admin(
        &origin,
        Some(serde_json::json!({"shop": DEFAULT_SHOP})),
        "/admin/catalog/resync",
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_i64().unwrap();
    // An operator resyncs the same shop from a shell meanwhile.
    let cli = cli_resync(&pool, &sim, "catalog-cli");
    until_connected(&pool, "catalog-cli").await;
    finish_webhook(&pool, &sim, id).await;
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The watcher prints the driver's summary.
    let counts = spec.counts(Selection::ALL);
    assert!(
        stdout.contains(&format!(
            "catalog run {id} for {DEFAULT_SHOP}: {} rows imported",
            counts.total()
        )),
        "{stdout}"
    );
    until_ended(&origin, id, Duration::from_secs(60)).await;
    let cli_logs: Vec<String> = stderr.lines().map(str::to_owned).collect();
    assert_merged_once(&pool, &spec, id, &[&origin], &cli_logs).await;
    eprintln!(
        "two drivers (CLI + serve) test took {:?}",
        started.elapsed()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_second_server_never_drives_a_run_the_first_one_drives(pool: PgPool) {
    common::grant_admin(&pool).await;
    let started = std::time::Instant::now();
    let spec = CatalogSpec::new(37, 400);
    let sim = simulator(spec.clone(), ChildOrder::Scattered { window: 500 }, 2_000).await;
    runner(&pool)
        .resync(&client(&sim), &common::domain(DEFAULT_SHOP), &no_progress)
        .await
        .unwrap();
    let env = [
        ("WHOLESAIL_SHOPS", shops_env(&sim)),
        ("WHOLESAIL_CATALOG__POLL_INTERVAL_MS", "60000".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = common::Origin::spawn(&common::database_url(&pool), &env);
    let (_, run) = admin(
        &first,
        Some(serde_json::json!({"shop": DEFAULT_SHOP})),
        "/admin/catalog/resync",
    )
    .await;
    let id = run["id"].as_i64().unwrap();
    // A replica (or the next version in a rolling deploy) starts while the run waits: it
    // resumes active runs at start-up.
    let second = common::Origin::spawn(&common::database_url(&pool), &env);
    finish_webhook(&pool, &sim, id).await;
    until_ended(&first, id, Duration::from_secs(60)).await;
    assert_merged_once(&pool, &spec, id, &[&first, &second], &[]).await;
    eprintln!("two drivers (two serves) test took {:?}", started.elapsed());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_running_server_takes_over_a_run_whose_driver_was_killed(pool: PgPool) {
    common::grant_admin(&pool).await;
    let spec = CatalogSpec::new(41, 20);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 3_000).await;
    let env = [
        ("WHOLESAIL_SHOPS", shops_env(&sim)),
        ("WHOLESAIL_CATALOG__POLL_INTERVAL_MS", "100".to_owned()),
        ("WHOLESAIL_CATALOG__ADOPT_INTERVAL_MS", "200".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = common::Origin::spawn(&common::database_url(&pool), &env);
    let (_, run) = admin(
        &first,
        Some(serde_json::json!({"shop": DEFAULT_SHOP})),
        "/admin/catalog/resync",
    )
    .await;
    let id = run["id"].as_i64().unwrap();
    let waiting = loop {
        let r = runs::get(&pool, id).await.unwrap().unwrap();
        if r.status == RunStatus::Waiting && r.bulk_operation_id.is_some() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A replica runs beside the driver and leaves the run to it ...
    let second = common::Origin::spawn(&common::database_url(&pool), &env);
    assert_eq!(runs::get(&pool, id).await.unwrap().unwrap().attempt, 1);
    // ... until the driver dies.
    first.kill();
    let done = until_ended(&second, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_ne!(done["driver"].as_str(), waiting.driver.as_deref(), "{done}");
    assert_eq!(
        done["bulk_operation_id"].as_str(),
        waiting.bulk_operation_id.as_deref()
    );
    assert_eq!(live(&pool).await, expected(&spec));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_watching_cli_ends_with_the_drivers_error_when_the_run_fails(pool: PgPool) {
    common::grant_admin(&pool).await;
    let spec = CatalogSpec::new(43, 50);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 1_500).await;
    sim.inject_bulk_fault(DEFAULT_SHOP, BulkFault::CorruptLine { line: 137 });
    let origin = common::Origin::spawn(
        &common::database_url(&pool),
        &[
            ("WHOLESAIL_SHOPS", &shops_env(&sim)),
            ("WHOLESAIL_CATALOG__POLL_INTERVAL_MS", "60000"),
        ],
    );
    let (_, run) = admin(
        &origin,
        Some(serde_json::json!({"shop": DEFAULT_SHOP})),
        "/admin/catalog/resync",
    )
    .await;
    let id = run["id"].as_i64().unwrap();
    let cli = cli_resync(&pool, &sim, "catalog-watcher");
    until_connected(&pool, "catalog-watcher").await;
    finish_webhook(&pool, &sim, id).await;
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("catalog run {id} of {DEFAULT_SHOP} is driven by")),
        "{stderr}"
    );
    assert!(stderr.contains("invalid export: line 137"), "{stderr}");
    let done = until_ended(&origin, id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error_line"], 137, "{done}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_driver_whose_run_was_taken_over_stops_without_touching_it(pool: PgPool) {
    let spec = CatalogSpec::new(47, 20);
    let sim = simulator(spec.clone(), ChildOrder::Grouped, 2_000).await;
    let r = runner(&pool);
    let c = client(&sim);
    let task = tokio::spawn(async move {
        let c = c;
        r.resync(&c, &common::domain(DEFAULT_SHOP), &no_progress)
            .await
    });
    let run = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(r) = runs::active(&pool, &common::domain(DEFAULT_SHOP))
            .await
            .unwrap()
        {
            if r.status == RunStatus::Waiting {
                break r;
            }
        }
    };
    // Another process took the run (as after this driver's lock connection was lost).
    sqlx::query("UPDATE catalog_runs SET attempt = attempt + 1, driver = 'other' WHERE id = $1")
        .bind(run.id)
        .execute(&pool)
        .await
        .unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert!(
        matches!(err, RunError::Superseded(id) if id == run.id),
        "{err}"
    );
    let after = runs::get(&pool, run.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        RunStatus::Waiting,
        "the stale driver changed the run"
    );
    assert_eq!(after.driver.as_deref(), Some("other"));
    assert!(after.error.is_none());
}

/// A resync that reaches its merge after `shop/redact` writes nothing (fails before: the merge
/// took no shop lock and did not look at the redaction, so the catalog came back).
#[sqlx::test(migrations = "../migrations")]
async fn a_resync_of_a_redacted_shop_fails_and_writes_nothing(pool: PgPool) {
    let sim = simulator(CatalogSpec::new(3, 20), ChildOrder::Grouped, 50).await;
    sqlx::query("INSERT INTO shops (shop, redacted_at) VALUES ($1, now())")
        .bind(DEFAULT_SHOP)
        .execute(&pool)
        .await
        .unwrap();
    let err = runner(&pool)
        .resync(&client(&sim), &common::domain(DEFAULT_SHOP), &no_progress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Merge(MergeError::ShopRedacted)),
        "{err}"
    );
    let run = latest_run(&pool).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.unwrap().contains("redacted"));
    for table in [
        "products",
        "variants",
        "inventory_levels",
        "catalog_metafields",
    ] {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 0, "{table}");
    }
}

/// Rows of `after` that differ from `before` (the same shape, only values changed).
fn rows_differing(before: &CatalogSpec, after: &CatalogSpec) -> u64 {
    before
        .rows(Selection::ALL, ChildOrder::Grouped)
        .zip(after.rows(Selection::ALL, ChildOrder::Grouped))
        .filter(|(a, b)| a != b)
        .count() as u64
}

/// Live rows of the shop whose `written_by` names catalog run `run`.
async fn written_by_run(pool: &PgPool, run: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM products WHERE shop = $1 AND written_by = $2)
              + (SELECT count(*) FROM variants WHERE shop = $1 AND written_by = $2)
              + (SELECT count(*) FROM inventory_levels WHERE shop = $1 AND written_by = $2)
              + (SELECT count(*) FROM catalog_metafields WHERE shop = $1 AND written_by = $2)",
    )
    .bind(DEFAULT_SHOP)
    .bind(format!("catalog_run:{run}"))
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_resync_writes_exactly_the_changed_rows_and_leaves_the_others_untouched(pool: PgPool) {
    let spec = CatalogSpec::new(17, 150);
    let sim = simulator(spec.clone(), ChildOrder::Scattered { window: 200 }, 50).await;
    let (r, c) = (runner(&pool), client(&sim));
    let first = resync(&r, &c).await;
    let mut drifted = spec.clone();
    drifted.drift = std::sync::Arc::new(shopify_simulator::CatalogDrift {
        changed_percent: 5,
        ..Default::default()
    });
    let changed = rows_differing(&spec, &drifted);
    assert!(
        changed > 20,
        "the drift changes rows of every kind: {changed}"
    );
    sim.set_catalog(DEFAULT_SHOP, drifted.clone());
    let out = resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&drifted));
    let t = out.merged.total();
    assert_eq!((t.inserted, t.updated, t.deleted), (0, changed, 0));
    for (table, m) in [
        ("products", out.merged.products),
        ("variants", out.merged.variants),
        ("inventory levels", out.merged.inventory_levels),
        ("metafields", out.merged.metafields),
    ] {
        assert!(m.updated > 0, "{table}: {m:?}");
    }
    // Exactly the changed rows name the second run; every other row is still the first run's.
    assert_eq!(written_by_run(&pool, out.run.id).await as u64, changed);
    let counts = spec.counts(Selection::ALL);
    assert_eq!(
        written_by_run(&pool, first.run.id).await as u64,
        counts.total() - changed
    );
    // The same export again writes nothing.
    let again = resync(&r, &c).await;
    assert_eq!(again.merged.total(), Default::default());
    assert_eq!(written_by_run(&pool, again.run.id).await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn rows_missing_from_the_export_are_deleted_only_up_to_the_snapshot(pool: PgPool) {
    let spec = CatalogSpec::new(19, 20);
    let (_sim, r, c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    let pid = CatalogSpec::product_id(0) as i64;
    // Rows the export lacks: written by webhooks before the export started (old) and after it
    // (a version newer than any snapshot).
    for (id, at) in [(1, "2001-01-01T00:00:00Z"), (2, "2999-01-01T00:00:00Z")] {
        sqlx::query(
            "INSERT INTO variants (shop, id, product_id, sku, source_updated_at, written_by)
             VALUES ($1, $2, $3, 'EXTRA', $4::timestamptz, 'webhook:test')",
        )
        .bind(DEFAULT_SHOP)
        .bind(id)
        .bind(pid)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,
                                           source_updated_at, source_digest, written_by)
             VALUES ($1, $2, 1, 5, $3::timestamptz, 7, 'webhook:test')",
        )
        .bind(DEFAULT_SHOP)
        .bind(id)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }
    let out = resync(&r, &c).await;
    assert_eq!(out.merged.variants.deleted, 1, "{:?}", out.merged);
    assert_eq!(out.merged.inventory_levels.deleted, 1, "{:?}", out.merged);
    let left: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM variants WHERE shop = $1 AND sku = 'EXTRA'")
            .bind(DEFAULT_SHOP)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, [2], "the older missing variant goes, the newer stays");
    let left: Vec<i64> = sqlx::query_scalar(
        "SELECT inventory_item_id FROM inventory_levels WHERE shop = $1 AND location_id = 1",
    )
    .bind(DEFAULT_SHOP)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(left, [2], "the older missing level goes, the newer stays");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_variant_the_export_no_longer_has_is_found_by_its_products_stored_digests(pool: PgPool) {
    let spec = CatalogSpec::new(23, 20);
    let counts = spec.counts(Selection::ALL);
    let (_sim, r, c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    // As if the last merged export had one more variant of product 0, with a level, deleted at
    // Shopify since without a webhook: its rows are a resync's (no mark), and the product's
    // stored digests name it.
    let pid = CatalogSpec::product_id(0) as i64;
    sqlx::query(
        "WITH v AS (
             INSERT INTO variants (shop, id, product_id, sku, inventory_item_id,
                                   source_updated_at, written_by)
             VALUES ($1, 7, $2, 'GONE', 77, '2001-01-01T00:00:00Z', 'catalog_run:1'))
         INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,
                                       source_updated_at, source_digest, written_by)
         VALUES ($1, 77, 1, 5, '2001-01-01T00:00:00Z', 0, 'catalog_run:1')",
    )
    .bind(DEFAULT_SHOP)
    .bind(pid)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE catalog_digests
         SET digest = digest + 1, variant_ids = variant_ids || 7::int8,
             variant_digests = variant_digests || 42::int8
         WHERE shop = $1 AND product_id = $2",
    )
    .bind(DEFAULT_SHOP)
    .bind(pid)
    .execute(&pool)
    .await
    .unwrap();
    let marked: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog_dirty WHERE shop = $1")
        .bind(DEFAULT_SHOP)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(marked, 0, "a resync's rows are not marked");
    let out = resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&spec));
    assert_eq!(out.merged.variants.deleted, 1, "{:?}", out.merged);
    assert_eq!(out.merged.inventory_levels.deleted, 1, "{:?}", out.merged);
    assert_eq!(out.merged.total().updated, 0, "{:?}", out.merged);
    assert_eq!(
        (out.merged.unchanged_products, out.merged.unchanged_variants),
        (counts.products - 1, counts.variants),
        "only the gone variant is compared"
    );
    // The product's digests are the export's again: the next resync compares nothing.
    let again = resync(&r, &c).await;
    assert_eq!(again.merged.unchanged_products, counts.products);
    assert_eq!(again.merged.total(), Default::default());
}

#[sqlx::test(migrations = "../migrations")]
async fn digests_emptied_by_a_crash_make_the_next_resync_compare_everything(pool: PgPool) {
    let spec = CatalogSpec::new(23, 20);
    let counts = spec.counts(Selection::ALL);
    let (sim, r, c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    // The digests are unlogged: crash recovery (like a standby's promotion or a restore from a
    // base backup) leaves their table empty while the live rows it recovers stay.
    let persistence: String = sqlx::query_scalar(
        "SELECT relpersistence::text FROM pg_class WHERE oid = 'catalog_digests'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(persistence, "u");
    sqlx::query("TRUNCATE catalog_digests")
        .execute(&pool)
        .await
        .unwrap();
    let mut drifted = spec.clone();
    drifted.drift = std::sync::Arc::new(shopify_simulator::CatalogDrift {
        changed_percent: 5,
        ..Default::default()
    });
    sim.set_catalog(DEFAULT_SHOP, drifted.clone());
    let out = resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&drifted));
    assert_eq!(out.merged.total().updated, rows_differing(&spec, &drifted));
    assert_eq!(
        (out.merged.unchanged_products, out.merged.unchanged_variants),
        (0, 0),
        "without digests every product is compared"
    );
    // The resync stored them again: the next one compares nothing.
    let again = resync(&r, &c).await;
    assert_eq!(again.merged.unchanged_products, counts.products);
    assert_eq!(again.merged.total(), Default::default());
}

/// The digests a resync computes of `spec`'s export.
fn export_digests(spec: &CatalogSpec) -> wholesail_origin::catalog::digest::ProductDigests {
    let mut file = Vec::new();
    spec.jsonl(Selection::ALL, ChildOrder::Grouped)
        .fill(&mut file, usize::MAX);
    let mut digests = wholesail_origin::catalog::digest::Digests::default();
    for (n, line) in file.split(|b| *b == b'\n').enumerate() {
        if !line.is_empty() {
            digests.add(&jsonl::parse(n as u64 + 1, line).unwrap(), line);
        }
    }
    digests.finish().expect("every line has its product")
}

/// The shop's stored digests, one line per product.
async fn stored_digests(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT d::text FROM catalog_digests d WHERE shop = $1 ORDER BY product_id")
        .bind(DEFAULT_SHOP)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_direct_loads_late_digests_never_replace_a_newer_runs(pool: PgPool) {
    let spec = CatalogSpec::new(29, 20);
    let counts = spec.counts(Selection::ALL);
    let (sim, r, c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    let first = latest_run(&pool).await;
    assert_eq!(first.direct, Some(true), "the first resync loaded directly");
    // The direct load stored its export's digests after its commit: a resync of the same
    // export compares nothing.
    assert_eq!(stored_digests(&pool).await.len() as u64, counts.products);
    assert_eq!(
        resync(&r, &c).await.merged.unchanged_products,
        counts.products
    );
    // A newer run merges an export without product 0. The first load's digests, arriving
    // only now (as if its process had stalled between its commit and them), must not replace
    // the newer run's: they would say product 0 is live and unchanged.
    let mut without = spec.clone();
    without.drift = std::sync::Arc::new(shopify_simulator::CatalogDrift {
        deleted: [CatalogSpec::product_id(0)].into(),
        ..Default::default()
    });
    sim.set_catalog(DEFAULT_SHOP, without.clone());
    resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&without));
    let after_newer = stored_digests(&pool).await;
    let shop = common::domain(DEFAULT_SHOP);
    let late = direct::store_digests(&pool, &shop, first.id, &export_digests(&spec)).await;
    assert_eq!(late, Some(direct::LoadedDigests::Superseded));
    assert_eq!(stored_digests(&pool).await, after_newer);
    // The latest run's own digests, stored again, are taken (nothing newer completed).
    sqlx::query("TRUNCATE catalog_digests")
        .execute(&pool)
        .await
        .unwrap();
    let newest = latest_run(&pool).await;
    let again = direct::store_digests(&pool, &shop, newest.id, &export_digests(&without)).await;
    assert_eq!(again, Some(direct::LoadedDigests::Stored));
    assert_eq!(stored_digests(&pool).await, after_newer);
    // They describe the catalog as it is: the same export again compares and writes nothing.
    let same = resync(&r, &c).await;
    assert_eq!(same.merged.total(), Default::default());
    assert_eq!(same.merged.unchanged_products, counts.products - 1);
    assert_eq!(live(&pool).await, expected(&without));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_direct_loads_late_digests_are_not_stored_for_a_redacted_shop(pool: PgPool) {
    let spec = CatalogSpec::new(31, 10);
    let (_sim, _r, _c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    let run = latest_run(&pool).await;
    sqlx::query("TRUNCATE catalog_digests")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO shops (shop, redacted_at) VALUES ($1, now())
         ON CONFLICT (shop) DO UPDATE SET redacted_at = now()",
    )
    .bind(DEFAULT_SHOP)
    .execute(&pool)
    .await
    .unwrap();
    let shop = common::domain(DEFAULT_SHOP);
    let late = direct::store_digests(&pool, &shop, run.id, &export_digests(&spec)).await;
    assert_eq!(late, Some(direct::LoadedDigests::Redacted));
    assert!(stored_digests(&pool).await.is_empty());
}

#[sqlx::test(migrations = "../migrations")]
async fn a_merge_waits_for_the_shops_digests_lock(pool: PgPool) {
    let spec = CatalogSpec::new(37, 10);
    let (sim, r, c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    let revised = spec.at_revision(1);
    sim.set_catalog(DEFAULT_SHOP, revised.clone());
    // Held as a direct load's late digests hold it.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('wholesail-catalog-digests:' || $1, 0))",
    )
    .bind(DEFAULT_SHOP)
    .execute(&mut *holder)
    .await
    .unwrap();
    let merging = tokio::spawn(async move { resync(&r, &c).await });
    until_merge_waits_on(
        &pool,
        "pg_advisory_xact_lock(hashtextextended('wholesail-catalog-digests:'",
    )
    .await;
    assert_eq!(
        live(&pool).await,
        expected(&spec),
        "nothing merged while it waits"
    );
    holder.commit().await.unwrap();
    merging.await.unwrap();
    assert_eq!(live(&pool).await, expected(&revised));
}

/// What `products/delete` does to product `pid`: a tombstone (titled `deleted`, written by
/// `webhook:test`) and its variants removed; returns their inventory items.
async fn delete_product_by_webhook(pool: &PgPool, pid: i64) -> Vec<i64> {
    sqlx::query(
        "UPDATE products SET deleted_at = now(), title = 'deleted', written_by = 'webhook:test'
         WHERE shop = $1 AND id = $2",
    )
    .bind(DEFAULT_SHOP)
    .bind(pid)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query_scalar(
        "DELETE FROM variants WHERE shop = $1 AND product_id = $2 RETURNING inventory_item_id",
    )
    .bind(DEFAULT_SHOP)
    .bind(pid)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tombstoned_product_stays_deleted_when_the_export_still_has_it(pool: PgPool) {
    let spec = CatalogSpec::new(23, 20);
    let (_sim, r, c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    // products/delete after the export was taken: a tombstone, its variants gone.
    let pid = CatalogSpec::product_id(3) as i64;
    delete_product_by_webhook(&pool, pid).await;
    let out = resync(&r, &c).await;
    let (deleted, title, by): (bool, String, String) = sqlx::query_as(
        "SELECT deleted_at IS NOT NULL, title, written_by FROM products
         WHERE shop = $1 AND id = $2",
    )
    .bind(DEFAULT_SHOP)
    .bind(pid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (deleted, title.as_str(), by.as_str()),
        (true, "deleted", "webhook:test")
    );
    let variants: i64 =
        sqlx::query_scalar("SELECT count(*) FROM variants WHERE shop = $1 AND product_id = $2")
            .bind(DEFAULT_SHOP)
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(variants, 0, "variants were written under a tombstone");
    assert_eq!(out.merged.total(), Default::default(), "{:?}", out.merged);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_webhook_committing_a_newer_level_mid_merge_is_not_overwritten(pool: PgPool) {
    let spec = CatalogSpec::new(31, 20);
    let (_sim, r, c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    let (item, location): (i64, i64) = sqlx::query_as(
        "SELECT inventory_item_id, location_id FROM inventory_levels WHERE shop = $1
         ORDER BY 1, 2 LIMIT 1",
    )
    .bind(DEFAULT_SHOP)
    .fetch_one(&pool)
    .await
    .unwrap();
    // Drift behind the pipeline's back, so the merge finds the level different and updates it…
    sqlx::query(
        "UPDATE inventory_levels SET available = -5
         WHERE shop = $1 AND inventory_item_id = $2 AND location_id = $3",
    )
    .bind(DEFAULT_SHOP)
    .bind(item)
    .bind(location)
    .execute(&pool)
    .await
    .unwrap();
    // …while an inventory_levels/update webhook, newer than the export, holds the row.
    let mut webhook = pool.begin().await.unwrap();
    sqlx::query(
        "UPDATE inventory_levels SET available = 777, source_updated_at = now() + interval '1 hour',
                written_by = 'webhook:test'
         WHERE shop = $1 AND inventory_item_id = $2 AND location_id = $3",
    )
    .bind(DEFAULT_SHOP)
    .bind(item)
    .bind(location)
    .execute(&mut *webhook)
    .await
    .unwrap();
    let task = tokio::spawn(async move {
        r.resync(&c, &common::domain(DEFAULT_SHOP), &no_progress)
            .await
    });
    until_merge_waits_on(&pool, "UPDATE inventory_levels").await;
    webhook.commit().await.unwrap();
    let out = task.await.unwrap().unwrap();
    let (available, by): (i32, String) = sqlx::query_as(
        "SELECT available, written_by FROM inventory_levels
         WHERE shop = $1 AND inventory_item_id = $2 AND location_id = $3",
    )
    .bind(DEFAULT_SHOP)
    .bind(item)
    .bind(location)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((available, by.as_str()), (777, "webhook:test"));
    assert_eq!(out.merged.inventory_levels.updated, 0, "{:?}", out.merged);
    // The level still differs from the export: it is marked, so the next resync compares it
    // whatever the digests say.
    assert!(marks(&pool, "inventory_item_id", item).await > 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_merge_counts_staging_tables_that_do_not_hold_what_was_copied(pool: PgPool) {
    let spec = CatalogSpec::new(17, 20);
    let _loaded = loaded(&pool, &spec, ChildOrder::Grouped).await;
    // The staging tables of a run 9999, holding the live products and variants as if copied.
    sqlx::raw_sql(
        "CREATE UNLOGGED TABLE catalog_stage_9999_1_products (LIKE catalog_stage_products);
         CREATE UNLOGGED TABLE catalog_stage_9999_1_variants (LIKE catalog_stage_variants);
         CREATE UNLOGGED TABLE catalog_stage_9999_1_inventory_levels
             (LIKE catalog_stage_inventory_levels);
         CREATE UNLOGGED TABLE catalog_stage_9999_1_metafields (LIKE catalog_stage_metafields);
         INSERT INTO catalog_stage_9999_1_products (id, gid, title, updated_at)
             SELECT id, admin_graphql_api_id, title, source_updated_at FROM products;
         INSERT INTO catalog_stage_9999_1_variants (id, product_id, updated_at)
             SELECT id, product_id, source_updated_at FROM variants;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let counts = spec.counts(Selection::ALL);
    let copied = StagedCounts {
        products: counts.products,
        variants: counts.variants,
        ..Default::default()
    };
    let merged = |copied: StagedCounts| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            let shop = common::domain(DEFAULT_SHOP);
            let now = time::OffsetDateTime::now_utc();
            let (staged, _) = merge::merge(&mut tx, 9999, 1, &shop, now, None, &copied)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            staged
        }
    };
    assert_eq!(merged(copied).await, copied);
    // One table emptied since (an operator's TRUNCATE; a crash empties them all): the merge
    // counts every table, and the runner refuses counts that differ from the copied ones.
    sqlx::query("TRUNCATE catalog_stage_9999_1_variants")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        merged(copied).await,
        StagedCounts {
            variants: 0,
            ..copied
        }
    );
    // Rows where none were copied show the same way.
    sqlx::query(
        "INSERT INTO catalog_stage_9999_1_metafields VALUES (1, 'Product', 1, 'n', 'k', 't', 'v')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let found = merged(copied).await;
    assert_eq!((found.variants, found.metafields), (0, 1));
}

#[sqlx::test(migrations = "../migrations")]
async fn the_merge_compresses_its_wal_only_where_the_server_and_the_role_allow(pool: PgPool) {
    let setting = "SELECT current_setting('wal_compression')";
    let server: String = sqlx::query_scalar(setting).fetch_one(&pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert!(merge::compress_wal(&mut tx, "lz4").await.unwrap());
    let set: String = sqlx::query_scalar(setting)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(set, "lz4");
    tx.rollback().await.unwrap();
    // A method the server does not know, or a role that may not set it: the server's
    // setting stays and the transaction goes on.
    let mut tx = pool.begin().await.unwrap();
    assert!(!merge::compress_wal(&mut tx, "snappy").await.unwrap());
    sqlx::raw_sql(&format!(
        "CREATE ROLE wholesail_no_wal_{0}; SET LOCAL ROLE wholesail_no_wal_{0}",
        std::process::id()
    ))
    .execute(&mut *tx)
    .await
    .unwrap();
    assert!(!merge::compress_wal(&mut tx, "lz4").await.unwrap());
    let kept: String = sqlx::query_scalar(setting)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(kept, server);
    tx.rollback().await.unwrap();
}

/// Marks of the default shop (`catalog_dirty`) naming `column` = `id`.
async fn marks(pool: &PgPool, column: &str, id: i64) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM catalog_dirty WHERE shop = $1 AND {column} = $2"
    ))
    .bind(DEFAULT_SHOP)
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_resync_compares_only_what_changed_in_the_export_or_was_written_since(pool: PgPool) {
    let spec = CatalogSpec::new(41, 40);
    let (products, variants) = {
        let counts = spec.counts(Selection::ALL);
        (counts.products, counts.variants)
    };
    let (sim, r, c) = loaded(&pool, &spec, ChildOrder::Scattered { window: 50 }).await;
    let digests: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog_digests WHERE shop = $1")
        .bind(DEFAULT_SHOP)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        digests as u64, products,
        "the first load stores a digest per product"
    );
    // The same export: every product's digest matches, nothing is compared or written.
    let same = resync(&r, &c).await;
    assert_eq!(same.merged.unchanged_products, products);
    assert_eq!(same.merged.total(), Default::default());
    // Changes that never reached Shopify's export (an operator's SQL, a webhook whose revert
    // was lost), keeping each row's version: the export still has the old values.
    let variant = CatalogSpec::variant_id(2, 0) as i64;
    sqlx::query("UPDATE variants SET price = 999 WHERE shop = $1 AND id = $2")
        .bind(DEFAULT_SHOP)
        .bind(variant)
        .execute(&pool)
        .await
        .unwrap();
    let (item, location): (i64, i64) = sqlx::query_as(
        "UPDATE inventory_levels SET available = available + 100, written_by = 'webhook:test'
         WHERE (shop, inventory_item_id, location_id) = (
             SELECT shop, inventory_item_id, location_id FROM inventory_levels
             WHERE shop = $1 ORDER BY 2, 3 LIMIT 1)
         RETURNING inventory_item_id, location_id",
    )
    .bind(DEFAULT_SHOP)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(marks(&pool, "variant_id", variant).await, 1);
    assert_eq!(marks(&pool, "inventory_item_id", item).await, 1);
    let healed = resync(&r, &c).await;
    assert_eq!(
        live(&pool).await,
        expected(&spec),
        "the marked rows are put back"
    );
    assert_eq!(healed.merged.variants.updated, 1, "{:?}", healed.merged);
    assert_eq!(
        healed.merged.inventory_levels.updated, 1,
        "{:?}",
        healed.merged
    );
    assert_eq!(healed.merged.total().updated, 2, "{:?}", healed.merged);
    assert_eq!(
        marks(&pool, "inventory_item_id", item).await,
        0,
        "{location}"
    );
    assert_eq!(marks(&pool, "variant_id", variant).await, 0);
    // Stock changed at Shopify for one level of each of two products, without webhooks: only
    // those two products are compared, and the export lands exactly.
    let mut levels = std::collections::BTreeMap::new();
    for i in [0, 5] {
        let (item, location): (i64, i64) = sqlx::query_as(
            "SELECT l.inventory_item_id, l.location_id FROM inventory_levels l
             JOIN variants v ON v.shop = l.shop AND v.inventory_item_id = l.inventory_item_id
             WHERE l.shop = $1 AND v.product_id = $2 ORDER BY 1, 2 LIMIT 1",
        )
        .bind(DEFAULT_SHOP)
        .bind(CatalogSpec::product_id(i) as i64)
        .fetch_one(&pool)
        .await
        .unwrap();
        levels.insert(
            (item as u64, location as u64),
            (4242, "2030-01-01T00:00:00Z".to_owned()),
        );
    }
    let mut stock = spec.clone();
    stock.drift = std::sync::Arc::new(shopify_simulator::CatalogDrift {
        levels,
        ..Default::default()
    });
    sim.set_catalog(DEFAULT_SHOP, stock.clone());
    let out = resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&stock));
    assert_eq!(out.merged.total().updated, 2, "{:?}", out.merged);
    assert_eq!(out.merged.unchanged_products, products - 2);
    assert_eq!(
        out.merged.unchanged_variants,
        variants - 2,
        "one variant each"
    );
    // A product whose digest was stored without its own and variant digests (before they
    // existed) has every variant compared when its digest differs.
    let first = CatalogSpec::product_id(0) as i64;
    sqlx::query(
        "UPDATE catalog_digests SET own = NULL, variant_ids = NULL, variant_digests = NULL
         WHERE shop = $1 AND product_id = $2",
    )
    .bind(DEFAULT_SHOP)
    .bind(first)
    .execute(&pool)
    .await
    .unwrap();
    let mut restocked = stock.clone();
    let mut levels = stock.drift.levels.clone();
    // The first of the two changed levels: product 0's (its items come first).
    for level in levels.values_mut().take(1) {
        level.0 = 4343;
    }
    restocked.drift = std::sync::Arc::new(shopify_simulator::CatalogDrift {
        levels,
        ..Default::default()
    });
    sim.set_catalog(DEFAULT_SHOP, restocked.clone());
    let out = resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&restocked));
    assert_eq!(out.merged.total().updated, 1, "{:?}", out.merged);
    let of_first: i64 =
        sqlx::query_scalar("SELECT count(*) FROM variants WHERE shop = $1 AND product_id = $2")
            .bind(DEFAULT_SHOP)
            .bind(first)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(out.merged.unchanged_variants, variants - of_first as u64);
    let stock = restocked;
    // 5% of rows changed reaches most products but few variants: only those variants (with
    // their levels and metafields) are compared, and the export lands exactly.
    let drift = |base: &CatalogSpec, percent| {
        let mut drifted = base.clone();
        drifted.drift = std::sync::Arc::new(shopify_simulator::CatalogDrift {
            changed_percent: percent,
            levels: stock.drift.levels.clone(),
            ..Default::default()
        });
        sim.set_catalog(DEFAULT_SHOP, drifted.clone());
        drifted
    };
    let drifted = drift(&stock, 5);
    let out = resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&drifted));
    assert_eq!(out.merged.total().updated, rows_differing(&stock, &drifted));
    assert!(
        out.merged.unchanged_variants > variants / 2 && out.merged.unchanged_variants < variants,
        "{:?}",
        out.merged
    );
    // 40% reaches most variants: the merge compares everything (narrowing a scope that wide
    // costs more than it saves), and lands exactly.
    let wide = drift(&drifted, 40);
    let out = resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&wide));
    assert_eq!(out.merged.total().updated, rows_differing(&drifted, &wide));
    assert_eq!(
        (out.merged.unchanged_products, out.merged.unchanged_variants),
        (0, 0),
        "{:?}",
        out.merged
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog_dirty WHERE shop = $1")
        .bind(DEFAULT_SHOP)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "every difference was written: no mark is left");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_rows_of_variants_a_webhook_deleted_go_with_the_next_resync(pool: PgPool) {
    let spec = CatalogSpec::new(43, 20);
    let (sim, r, c) = loaded(&pool, &spec, ChildOrder::Grouped).await;
    // products/delete: a tombstone and the variants removed; their inventory levels and the
    // metafields of the product and its variants stay behind, as the handler leaves them.
    let pid = CatalogSpec::product_id(3) as i64;
    assert!(!delete_product_by_webhook(&pool, pid).await.is_empty());
    // The export no longer has the product: it is in neither side of the digests.
    let mut gone = spec.clone();
    gone.drift = std::sync::Arc::new(shopify_simulator::CatalogDrift {
        deleted: [pid as u64].into(),
        ..Default::default()
    });
    sim.set_catalog(DEFAULT_SHOP, gone.clone());
    let out = resync(&r, &c).await;
    assert_eq!(live(&pool).await, expected(&gone), "{:?}", out.merged);
    assert!(out.merged.inventory_levels.deleted > 0, "{:?}", out.merged);
    assert!(out.merged.metafields.deleted > 0, "{:?}", out.merged);
    assert_eq!(
        out.merged.unchanged_products,
        gone.counts(Selection::ALL).products
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn repeated_marks_older_than_an_hour_are_compacted_to_the_newest(pool: PgPool) {
    // Item 45 marked three times and item 46 once, two hours ago; item 47 twice just now;
    // item 48 once two hours ago and once now.
    sqlx::query(
        "INSERT INTO catalog_dirty (shop, inventory_item_id, marked_at)
         SELECT $1, item, now() - age
         FROM unnest(ARRAY[45, 45, 45, 46, 47, 47, 48, 48]::int8[],
                     ARRAY['2 hours', '2 hours', '2 hours', '2 hours', '0', '0', '2 hours',
                           '0']::interval[]) AS m(item, age)",
    )
    .bind(DEFAULT_SHOP)
    .execute(&pool)
    .await
    .unwrap();
    let newest_45: i64 = sqlx::query_scalar(
        "SELECT max(mark_id) FROM catalog_dirty WHERE shop = $1 AND inventory_item_id = 45",
    )
    .bind(DEFAULT_SHOP)
    .fetch_one(&pool)
    .await
    .unwrap();
    let compacted = wholesail_origin::catalog::marks::compact(&pool)
        .await
        .unwrap();
    assert_eq!(compacted, 2);
    let left: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT inventory_item_id, count(*) FROM catalog_dirty WHERE shop = $1
         GROUP BY 1 ORDER BY 1",
    )
    .bind(DEFAULT_SHOP)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(left, [(45, 1), (46, 1), (47, 2), (48, 2)]);
    assert_eq!(
        marks(&pool, "mark_id", newest_45).await,
        1,
        "the newest is kept"
    );
    assert_eq!(
        wholesail_origin::catalog::marks::compact(&pool)
            .await
            .unwrap(),
        0
    );
}
