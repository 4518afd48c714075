//! `cargo xtask bench reconcile [--rounds R] [--orders N] [--levels N] [--skip-subscriptions]`:
//! reconciliation runs against the Shopify simulator on a real PostgreSQL (scratch database
//! `wholesail_bench_reconcile`, needs `DATABASE_URL`), each beside its floor measured in the
//! same run. Three phases, each with its own simulator:
//!
//! **Webhook subscriptions.** A shop subscribed to every required topic at the edge; per
//! round, 3 of them are deleted (as Shopify does after failed deliveries) and a heal run finds
//! and recreates them, then a second run finds nothing. Printed: the runs' wall time and
//! Shopify cost points beside the listing alone (`webhookSubscriptions`, the least any run
//! must read) and the cost of the 3 creates it cannot avoid. Medians of `--rounds` (default 7).
//!
//! **Orders** (`--orders N`, default 100,000; 0 skips). N 3-line orders stored at Shopify and
//! applied to PostgreSQL through `handlers::apply` (setup, not measured); then 0.1% of them
//! paid at Shopify and 0.1% more created there, both without webhooks. The floor is the bulk
//! export alone: the same `orders` bulk query (`reconcile::orders::NODE`), its polls, the
//! download and every line read. Against it: a heal run (`reconcile::orders::reconcile`), then
//! the reconcile events applied by the inbox workers, then a clean run, each run beside a
//! floor measured just before it. Printed: wall, cost points (the simulator's log, and the
//! run's own count), the findings, the events queued and the order rows the workers wrote.
//!
//! **Inventory** (`--levels N`, default 1,000,000; 0 skips). A generated catalog with about N
//! inventory levels, loaded by a first resync (setup), then 0.1% of the levels changed at
//! Shopify without webhooks. The floor is the catalog's bulk export alone (the resync's
//! `BULK_QUERY`, polls, download, every line read, nothing staged). Against it: a heal run
//! (`reconcile::catalog::reconcile`, a full resync whose merge records the drift), then a
//! clean run. Printed: wall and its stage / merge split, cost points, findings and what the
//! merge wrote per table.
//!
//! The orders and inventory runs are one-shot (a heal run heals), so their figures are one
//! round each, paired with the floor measured just before. Beside each wall time: CPU seconds
//! of this process (the simulator generating the export, and the client) and of the whole
//! machine (adds PostgreSQL), so the excess over the floor can be placed. Peak RSS of this
//! whole process (simulator, its order store and the runs) is printed after each phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::catalog::Row;
use shopify_simulator::orders::{OrderStore, UpdatedRange};
use shopify_simulator::payloads::{order, OrderSpec};
use shopify_simulator::{
    CatalogSpec, ChildOrder, Selection, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN,
};
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use wholesail_bench::{median, scratch_database, shop_domain};
use wholesail_origin::catalog::merge::MergeSummary;
use wholesail_origin::catalog::{Runner, Settings};
use wholesail_origin::config::WorkerConfig;
use wholesail_origin::handlers::{self, InboxEvent};
use wholesail_origin::pipeline::runner::Workers;
use wholesail_origin::reconcile::catalog as catalog_reconcile;
use wholesail_origin::reconcile::orders::{self, Timing, NODE};
use wholesail_origin::reconcile::runs::{Counts, Mode, Trigger, Window};
use wholesail_origin::reconcile::subscriptions::{self, required_topics};
use wholesail_shopify_admin::bulk::BulkStatus;
use wholesail_shopify_admin::{AdminClient, AdminConfig};

const DB: &str = "wholesail_bench_reconcile";
const EDGE: &str = "http://127.0.0.1:9/webhooks";
const DROPPED: [&str; 3] = [
    "orders/create",
    "inventory_levels/update",
    "products/update",
];
/// Changes younger than this are left to their webhooks (every injected change is older).
const SETTLE: Duration = Duration::from_secs(60);
/// Between two polls of a bulk operation, for the floors and the runs alike.
const POLL: Duration = Duration::from_millis(50);
/// Injected drift: one record in this many.
const DRIFT_EVERY: u64 = 1000;
/// Orders applied per setup transaction, and setup tasks.
const SETUP_BATCH: usize = 200;
const SETUP_TASKS: u64 = 3;

struct Args {
    rounds: usize,
    orders: u64,
    levels: u64,
    subscriptions: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut a = Args {
        rounds: 7,
        orders: 100_000,
        levels: 1_000_000,
        subscriptions: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut num =
            || -> Result<u64> { Ok(args.next().context("a number")?.replace('_', "").parse()?) };
        match arg.as_str() {
            "--rounds" => a.rounds = num()? as usize,
            "--orders" => a.orders = num()?,
            "--levels" => a.levels = num()?,
            "--skip-subscriptions" => a.subscriptions = false,
            other => bail!(
                "unknown argument {other}; usage: reconcile [--rounds R] [--orders N] \
                 [--levels N] [--skip-subscriptions]"
            ),
        }
    }
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let db_url = format!("{}/{DB}", base.rsplit_once('/').context("DATABASE_URL")?.0);
    let pool = scratch_database(&base, DB, &db_url, 8).await?;
    if a.subscriptions {
        subscriptions_phase(&pool, a.rounds.max(1)).await?;
    }
    if a.orders > 0 {
        orders_phase(&pool, a.orders).await?;
    }
    if a.levels > 0 {
        inventory_phase(&pool, &db_url, a.levels).await?;
    }
    Ok(())
}

fn admin_client(sim: &Simulator) -> Result<AdminClient> {
    Ok(AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))?)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Shopify cost points the simulator charged for the requests after the first `from`.
fn points_since(sim: &Simulator, from: usize) -> u64 {
    sim.cost_log(DEFAULT_SHOP)[from..]
        .iter()
        .map(|c| u64::from(c.actual))
        .sum()
}

/// What one measured call cost.
#[derive(Clone, Copy)]
struct Cost {
    /// Wall seconds.
    wall: f64,
    /// Shopify cost points the simulator charged.
    points: u64,
    /// CPU seconds of this process: the simulator serving the export, and the client.
    cpu: f64,
    /// CPU seconds of the whole machine: adds PostgreSQL (and whatever else ran meanwhile).
    machine: f64,
}

impl Cost {
    /// `wall | ÷ floor | CPU | points` cells of a table row.
    fn cells(&self, floor: &Cost, counted: Option<i64>) -> String {
        format!(
            "{:.2} s | {:.2}× | {:.2} / {:.2} s | {}{}",
            self.wall,
            self.wall / floor.wall,
            self.cpu,
            self.machine,
            self.points,
            counted.map_or(String::new(), |c| format!("; {c}"))
        )
    }
}

/// Runs `f`, measuring what it cost.
async fn measured<T>(
    sim: &Simulator,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, Cost)> {
    let (log, cpu, machine) = (
        sim.cost_log(DEFAULT_SHOP).len(),
        process_cpu()?,
        machine_cpu()?,
    );
    let start = Instant::now();
    let out = f.await?;
    let wall = start.elapsed().as_secs_f64();
    let cost = Cost {
        wall,
        points: points_since(sim, log),
        cpu: process_cpu()? - cpu,
        machine: machine_cpu()? - machine,
    };
    Ok((out, cost))
}

/// User + system CPU seconds of this process (`/proc/self/stat`, 100 ticks a second).
fn process_cpu() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    // After the command name: utime is field 14, stime 15 (1-based, man 5 proc).
    Ok((fields[11].parse::<f64>()? + fields[12].parse::<f64>()?) / 100.0)
}

/// Busy CPU seconds of the machine, all cores (`/proc/stat`: all but idle and iowait).
fn machine_cpu() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .context("/proc/stat")?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal
    Ok((ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]) / 100.0)
}

/// Peak resident set of this process, in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// A bulk export alone, the floor of a run: the query, its polls, the download and every
/// line read (not parsed). The lines.
async fn export_alone(client: &AdminClient, query: &str, group: bool) -> Result<u64> {
    let op = client.bulk_run_query(query, group).await?;
    let url = loop {
        let now = client
            .bulk_operation(&op.id)
            .await?
            .context("bulk operation missing")?;
        match now.status {
            BulkStatus::Completed => break now.url.context("no result url")?,
            s if s.is_final() => bail!("the export ended {s:?}"),
            _ => tokio::time::sleep(POLL).await,
        }
    };
    let mut reader = client.download_jsonl(&url, &[]).await?;
    let mut lines = 0u64;
    while reader.next_line().await?.is_some() {
        lines += 1;
    }
    Ok(lines)
}

async fn subscriptions_phase(pool: &PgPool, rounds: usize) -> Result<()> {
    let sim = Simulator::start(SimulatorConfig::default()).await?;
    let client = admin_client(&sim)?;
    let shop = shop_domain(DEFAULT_SHOP);
    let required = required_topics().count();
    for topic in required_topics() {
        client.create_webhook_subscription(topic, EDGE).await?;
    }

    let (mut list_s, mut heal_s, mut clean_s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut list_cost, mut heal_cost, mut clean_cost) = (0, 0, 0);
    for _ in 0..rounds {
        let start = Instant::now();
        let (_, cost) = client.webhook_subscriptions().await?;
        list_s.push(start.elapsed().as_secs_f64());
        list_cost = cost;
        for topic in DROPPED {
            sim.delete_webhook_subscription(DEFAULT_SHOP, topic);
        }
        let start = Instant::now();
        let (_, healed) =
            subscriptions::reconcile(pool, &client, &shop, EDGE, Mode::Heal, Trigger::Operator)
                .await?;
        heal_s.push(start.elapsed().as_secs_f64());
        if healed.healed != DROPPED.len() as i64 {
            bail!("healed {} of {}", healed.healed, DROPPED.len());
        }
        heal_cost = healed.cost_used;
        let start = Instant::now();
        let (_, clean) =
            subscriptions::reconcile(pool, &client, &shop, EDGE, Mode::Heal, Trigger::Schedule)
                .await?;
        clean_s.push(start.elapsed().as_secs_f64());
        if clean.missing + clean.stale != 0 {
            bail!(
                "a second run found {} differences",
                clean.missing + clean.stale
            );
        }
        clean_cost = clean.cost_used;
    }
    let ms = |v: Vec<f64>| median(v) * 1000.0;
    let (list, heal, clean) = (ms(list_s), ms(heal_s), ms(clean_s));
    println!(
        "reconcile subscriptions: {required} required topics, {} deleted each round, median of {rounds}\n",
        DROPPED.len()
    );
    println!("| run | wall | ÷ listing alone | Shopify cost points |");
    println!("|---|---:|---:|---:|");
    println!("| listing alone (`webhookSubscriptions`, the floor) | {list:.1} ms | 1.00× | {list_cost} |");
    println!(
        "| heal run: finds and recreates {} | {heal:.1} ms | {:.2}× | {heal_cost} (listing + {} creates) |",
        DROPPED.len(),
        heal / list,
        DROPPED.len()
    );
    println!(
        "| clean run: finds nothing | {clean:.1} ms | {:.2}× | {clean_cost} |\n",
        clean / list
    );
    Ok(())
}

/// The order of `seed` updated at `at`.
fn order_at(seed: u64, at: OffsetDateTime) -> Value {
    let mut spec = OrderSpec::new(seed, 3);
    spec.updated_at = rfc3339(at);
    order(&spec)
}

/// The fields of a REST order the simulator's orders export reads (`simulator/src/orders.rs`):
/// its store keeps only these, so 100,000 orders fit in memory (a whole 3-line payload costs
/// ~80 kB as a `serde_json::Value`) and the exported JSONL is the same.
fn shopify_view(o: &Value) -> Value {
    let pick = |v: &Value, keys: &[&str]| -> Value {
        Value::Object(
            keys.iter()
                .filter_map(|k| Some(((*k).to_owned(), v.get(*k)?.clone())))
                .collect(),
        )
    };
    let mut out = pick(
        o,
        &[
            "id",
            "admin_graphql_api_id",
            "name",
            "email",
            "created_at",
            "processed_at",
            "updated_at",
            "cancelled_at",
            "cancel_reason",
            "closed_at",
            "financial_status",
            "fulfillment_status",
            "currency",
            "total_price",
            "subtotal_price",
            "total_tax",
            "total_discounts",
            "taxes_included",
            "tags",
            "po_number",
            "source_name",
            "test",
        ],
    );
    for (key, fields) in [
        ("customer", &["id"][..]),
        ("company", &["id", "location_id"][..]),
        (
            "shipping_address",
            &["country_code", "province_code", "zip", "city"][..],
        ),
    ] {
        if o[key].is_object() {
            out[key] = pick(&o[key], fields);
        }
    }
    let each = |key: &str, fields: &[&str]| -> Value {
        o[key]
            .as_array()
            .map(|a| a.iter().map(|x| pick(x, fields)).collect())
            .unwrap_or(Value::Null)
    };
    out["shipping_lines"] = each("shipping_lines", &["price"]);
    out["line_items"] = each(
        "line_items",
        &[
            "id",
            "sku",
            "quantity",
            "current_quantity",
            "variant_id",
            "product_id",
            "price",
            "total_discount",
        ],
    );
    out
}

/// Stores orders `seeds` at Shopify (silently) and applies each to PostgreSQL through the
/// orders handler, as the workers would from a stripped `orders/create` webhook: `SETUP_TASKS`
/// tasks, `SETUP_BATCH` orders per transaction, commits not waiting for the WAL flush.
async fn seed_orders(
    pool: &PgPool,
    sim: &Arc<Simulator>,
    seeds: std::ops::RangeInclusive<u64>,
    at: impl Fn(u64) -> OffsetDateTime + Copy + Send + 'static,
) -> Result<()> {
    let shop = shop_domain(DEFAULT_SHOP);
    let mut tasks = Vec::new();
    for task in 0..SETUP_TASKS {
        let (pool, sim, shop) = (pool.clone(), sim.clone(), shop.clone());
        let mine: Vec<u64> = seeds.clone().filter(|s| s % SETUP_TASKS == task).collect();
        tasks.push(tokio::spawn(async move {
            for chunk in mine.chunks(SETUP_BATCH) {
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *tx)
                    .await?;
                for &seed in chunk {
                    let o = order_at(seed, at(seed));
                    let body = o.to_string();
                    let stripped = wholesail_webhook::strip("orders/create", body.as_bytes())?;
                    let event = InboxEvent {
                        id: seed as i64,
                        webhook_id: format!("bench-{seed}"),
                        event_id: None,
                        shop: shop.clone(),
                        topic: "orders/create".into(),
                        payload: stripped.json,
                    };
                    handlers::apply(&mut tx, &event).await?;
                    sim.put_order(DEFAULT_SHOP, shopify_view(&o), None).await;
                }
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn count(pool: &PgPool, sql: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// One orders run, heal mode: its id, counts and cost.
async fn orders_run(
    pool: &PgPool,
    sim: &Simulator,
    client: &AdminClient,
) -> Result<((i64, Counts), Cost)> {
    let timing = Timing {
        settle: SETTLE,
        poll_interval: POLL,
        bulk_timeout: Duration::from_secs(600),
        result_hosts: Vec::new(),
    };
    let shop = shop_domain(DEFAULT_SHOP);
    let run = orders::reconcile(
        pool,
        client,
        &shop,
        Window::default(),
        &timing,
        Mode::Heal,
        Trigger::Operator,
    );
    measured(sim, async { Ok(run.await?) }).await
}

/// The orders floor: the same bulk query as a run started now (window end now − settle).
async fn orders_floor(sim: &Simulator, client: &AdminClient) -> Result<(u64, Cost)> {
    let end = OffsetDateTime::now_utc() - SETTLE;
    let query = format!(
        "{{ orders(query: \"updated_at:<'{}'\") {{ edges {{ node {{ {NODE} }} }} }} }}",
        rfc3339(end)
    );
    measured(sim, export_alone(client, &query, true)).await
}

async fn orders_phase(pool: &PgPool, n: u64) -> Result<()> {
    let mut config = SimulatorConfig::default();
    config.bulk.duration = Duration::from_millis(100);
    let sim = Arc::new(Simulator::start(config).await?);
    let client = admin_client(&sim)?;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let base = now - time::Duration::hours(2);
    let later = now - time::Duration::hours(1);

    // The trimmed orders export exactly as the whole ones would.
    let (mut whole, mut trimmed) = (OrderStore::default(), OrderStore::default());
    for seed in 1..=3 {
        let o = order_at(seed, base);
        trimmed.put(shopify_view(&o));
        whole.put(o);
    }
    let all = UpdatedRange::default();
    ensure!(
        whole.jsonl(&all).0 == trimmed.jsonl(&all).0,
        "the trimmed orders export differently"
    );

    // Setup (not measured): n orders at Shopify and in PostgreSQL, seconds apart.
    let t = Instant::now();
    seed_orders(pool, &sim, 1..=n, move |seed| {
        base - time::Duration::seconds((seed % 3600) as i64)
    })
    .await?;
    let stored = count(pool, "SELECT count(*) FROM orders").await?;
    ensure!(stored == n as i64, "setup stored {stored} orders of {n}");
    eprintln!(
        "orders setup: {n} orders stored and applied in {:.1} s (peak RSS {:.0} MB)",
        t.elapsed().as_secs_f64(),
        peak_rss_mb()
    );

    // The drift, silent: one order in DRIFT_EVERY paid, as many created.
    let drift = (n / DRIFT_EVERY).max(1);
    let stride = n / drift;
    for k in 0..drift {
        let mut o = order_at(1 + k * stride, later);
        o["financial_status"] = json!("paid");
        sim.put_order(DEFAULT_SHOP, shopify_view(&o), None).await;
    }
    for seed in n + 1..=n + drift {
        sim.put_order(DEFAULT_SHOP, shopify_view(&order_at(seed, later)), None)
            .await;
    }

    // Heal run beside the floor measured just before it.
    let (lines, floor) = orders_floor(&sim, &client).await?;
    let ((heal_run, heal), heal_cost) = orders_run(pool, &sim, &client).await?;
    let queued = count(
        pool,
        "SELECT count(*) FROM inbox WHERE source = 'reconcile'",
    )
    .await?;
    let kinds: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, count(*) FROM reconcile_findings WHERE run_id = $1 GROUP BY kind ORDER BY kind",
    )
    .bind(heal_run)
    .fetch_all(pool)
    .await?;

    // The workers apply what the run queued; the order rows they wrote are counted.
    let mark: OffsetDateTime = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?;
    let stop = CancellationToken::new();
    let workers = Workers::new(
        pool.clone(),
        WorkerConfig {
            per_shop: 50,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            poll_interval_ms: 50,
            shutdown_grace_ms: 1_000,
            ..WorkerConfig::default()
        },
        "reconcile-bench".into(),
    );
    let t = Instant::now();
    let running = tokio::spawn(workers.run(stop.clone()));
    loop {
        let open = count(
            pool,
            "SELECT count(*) FROM inbox WHERE status IN ('pending', 'processing')",
        )
        .await?;
        if open == 0 {
            break;
        }
        ensure!(
            t.elapsed() < Duration::from_secs(300),
            "the inbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let apply_s = t.elapsed().as_secs_f64();
    stop.cancel();
    running.await?;
    let done = count(
        pool,
        "SELECT count(*) FROM inbox WHERE source = 'reconcile' AND status = 'done'",
    )
    .await?;
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE applied_at >= $1")
        .bind(mark)
        .fetch_one(pool)
        .await?;
    let paid = count(
        pool,
        "SELECT count(*) FROM orders WHERE financial_status = 'paid'",
    )
    .await?;
    let total = count(pool, "SELECT count(*) FROM orders").await?;

    // A clean run beside its own floor.
    let (_, floor2) = orders_floor(&sim, &client).await?;
    let ((_, clean), clean_cost) = orders_run(pool, &sim, &client).await?;

    let kinds_text: Vec<String> = kinds.iter().map(|(k, c)| format!("{k} {c}")).collect();
    println!(
        "reconcile orders: {n} orders of 3 lines ({lines} JSONL lines exported), {drift} paid and \
         {drift} created at Shopify without webhooks (0.1% each); one round, each run beside the \
         floor measured just before it\n"
    );
    println!("| run | wall | ÷ floor | CPU: this process / machine | Shopify cost points (simulator; run's count) | findings |");
    println!("|---|---:|---:|---:|---:|---|");
    println!(
        "| floor: the bulk export alone (query, polls, download, every line read) | {} | – |",
        floor.cells(&floor, None)
    );
    println!(
        "| heal run: compares {} orders, queues the drift | {} | {} |",
        heal.compared,
        heal_cost.cells(&floor, Some(heal.cost_used)),
        kinds_text.join(", ")
    );
    println!("| floor again | {} | – |", floor2.cells(&floor2, None));
    println!(
        "| clean run: finds nothing | {} | {} missing, {} stale |\n",
        clean_cost.cells(&floor2, Some(clean.cost_used)),
        clean.missing,
        clean.stale
    );
    println!("| rows written | measured | drifted (the goal) |");
    println!("|---|---:|---:|");
    println!(
        "| reconcile events queued into the inbox | {queued} | {} |",
        2 * drift
    );
    println!(
        "| … applied by the workers (done) in {apply_s:.2} s | {done} | {} |",
        2 * drift
    );
    println!(
        "| order rows written (`applied_at` moved) | {written} | {} |",
        2 * drift
    );
    println!(
        "\norders now: {total} rows, {paid} paid; peak RSS of this process so far {:.0} MB\n",
        peak_rss_mb()
    );
    ensure!(
        (heal.missing, heal.stale, heal.healed, heal.failed)
            == (drift as i64, drift as i64, 2 * drift as i64, 0),
        "the heal run found {heal:?}, not {drift} missing and {drift} stale"
    );
    ensure!(
        queued == 2 * drift as i64 && done == queued && written == queued,
        "rows written: {queued} queued, {done} applied, {written} order rows, not {}",
        2 * drift
    );
    ensure!(
        total == (n + drift) as i64 && paid == drift as i64,
        "orders after healing: {total} rows, {paid} paid"
    );
    ensure!(
        clean.missing + clean.stale == 0,
        "a second run found {clean:?}"
    );
    Ok(())
}

/// One catalog run, heal mode: wall seconds, counts, points charged, findings by kind, what
/// the merge wrote and the catalog run's stage and merge seconds.
struct CatalogRun {
    cost: Cost,
    counts: Counts,
    kinds: Vec<(String, i64)>,
    merged: MergeSummary,
    stage_s: f64,
    merge_s: f64,
}

async fn catalog_run(
    pool: &PgPool,
    sim: &Simulator,
    runner: &Runner,
    client: &Arc<AdminClient>,
) -> Result<CatalogRun> {
    let shop = shop_domain(DEFAULT_SHOP);
    let run = catalog_reconcile::reconcile(
        pool,
        runner,
        client.clone(),
        &shop,
        SETTLE,
        Mode::Heal,
        Trigger::Operator,
    );
    let ((run, counts), cost) = measured(sim, async { Ok(run.await?) }).await?;
    let kinds = sqlx::query_as(
        "SELECT kind, count(*) FROM reconcile_findings WHERE run_id = $1 GROUP BY kind ORDER BY kind",
    )
    .bind(run)
    .fetch_all(pool)
    .await?;
    let (merged, stage_ms, merge_ms): (Option<Value>, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT c.merged, c.stage_ms, c.merge_ms FROM catalog_runs c
         JOIN reconcile_runs r ON r.catalog_run = c.id WHERE r.id = $1",
    )
    .bind(run)
    .fetch_one(pool)
    .await?;
    Ok(CatalogRun {
        cost,
        counts,
        kinds,
        merged: serde_json::from_value(merged.unwrap_or_default()).unwrap_or_default(),
        stage_s: stage_ms.unwrap_or(0) as f64 / 1000.0,
        merge_s: merge_ms.unwrap_or(0) as f64 / 1000.0,
    })
}

/// The catalog floor: the resync's bulk query, exported alone and read, nothing staged.
async fn catalog_floor(sim: &Simulator, client: &AdminClient) -> Result<(u64, Cost)> {
    let query = wholesail_origin::catalog::runner::BULK_QUERY;
    measured(sim, export_alone(client, query, false)).await
}

fn merged_text(m: &MergeSummary) -> String {
    let t = |name: &str, c: &wholesail_origin::catalog::merge::TableChanges| {
        format!("{name} +{} ~{} −{}", c.inserted, c.updated, c.deleted)
    };
    [
        t("products", &m.products),
        t("variants", &m.variants),
        t("inventory_levels", &m.inventory_levels),
        t("metafields", &m.metafields),
    ]
    .join(", ")
}

async fn inventory_phase(pool: &PgPool, db_url: &str, levels: u64) -> Result<()> {
    const SEED: u64 = 2026;
    let per_1000 = CatalogSpec::new(SEED, 1000)
        .counts(Selection::ALL)
        .inventory_levels;
    let spec = CatalogSpec::new(SEED, (levels * 1000 / per_1000).max(1));
    let counts = spec.counts(Selection::ALL);
    let mut config = SimulatorConfig::default();
    config.shops[0].catalog = spec.clone();
    config.bulk.duration = Duration::from_millis(100);
    let sim = Simulator::start(config).await?;
    let client = Arc::new(admin_client(&sim)?);
    let shop = shop_domain(DEFAULT_SHOP);
    let runner = Runner::from_url(
        pool.clone(),
        db_url,
        Settings {
            poll_interval: POLL,
            ..Settings::default()
        },
    )?;

    // Setup (not measured): a first plain resync loads the catalog.
    let t = Instant::now();
    let first = runner.resync(&client, &shop, &|_| {}).await?;
    eprintln!(
        "inventory setup: first resync of {} products, {} variants, {} levels in {:.1} s ({})",
        counts.products,
        counts.variants,
        counts.inventory_levels,
        t.elapsed().as_secs_f64(),
        merged_text(&first.merged)
    );

    // The drift, silent: one level in DRIFT_EVERY, 47 more units, an hour ago.
    let at = rfc3339(OffsetDateTime::now_utc().replace_nanosecond(0)? - time::Duration::hours(1));
    let mut drift = 0i64;
    let all = spec
        .rows(Selection::ALL, ChildOrder::Grouped)
        .filter_map(|r| match r {
            Row::InventoryLevel(l) => Some(l),
            _ => None,
        });
    for (k, l) in all.enumerate() {
        if k as u64 % DRIFT_EVERY == DRIFT_EVERY / 2 {
            sim.set_inventory_silently(
                DEFAULT_SHOP,
                l.inventory_item_id,
                l.location_id,
                l.available + 47,
                at.clone(),
            );
            drift += 1;
        }
    }

    let (lines, floor) = catalog_floor(&sim, &client).await?;
    let heal = catalog_run(pool, &sim, &runner, &client).await?;
    let (_, floor2) = catalog_floor(&sim, &client).await?;
    let clean = catalog_run(pool, &sim, &runner, &client).await?;

    let kinds = |r: &CatalogRun| {
        if r.kinds.is_empty() {
            "none".to_string()
        } else {
            r.kinds
                .iter()
                .map(|(k, c)| format!("{k} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    println!(
        "reconcile inventory: {} products, {} variants, {} inventory levels, {} metafields \
         ({lines} JSONL lines), {drift} levels changed at Shopify without webhooks (0.1%); \
         one round, each run beside the floor measured just before it\n",
        counts.products, counts.variants, counts.inventory_levels, counts.metafields
    );
    println!("| run | wall | ÷ floor | CPU: this process / machine | Shopify cost points (simulator; run's count) | findings | catalog run's stage / merge (capture included) |");
    println!("|---|---:|---:|---:|---:|---|---|");
    println!(
        "| floor: the bulk export alone (query, polls, download, every line read) | {} | – | – |",
        floor.cells(&floor, None)
    );
    let row = |name: &str, r: &CatalogRun, floor: &Cost| {
        println!(
            "| {name} | {} | {} | {:.2} s / {:.2} s |",
            r.cost.cells(floor, Some(r.counts.cost_used)),
            kinds(r),
            r.stage_s,
            r.merge_s,
        )
    };
    row(
        "heal run: full resync, its merge records and heals",
        &heal,
        &floor,
    );
    println!("| floor again | {} | – | – |", floor2.cells(&floor2, None));
    row("clean run: finds nothing", &clean, &floor2);
    println!(
        "\n| rows written by the merge (+inserted ~updated −deleted) | heal run | clean run |"
    );
    println!("|---|---|---|");
    println!(
        "| per table | {} | {} |",
        merged_text(&heal.merged),
        merged_text(&clean.merged)
    );
    println!(
        "| total | {} (drifted: {drift}) | {} |",
        {
            let t = heal.merged.total();
            t.inserted + t.updated + t.deleted
        },
        {
            let t = clean.merged.total();
            t.inserted + t.updated + t.deleted
        }
    );
    println!(
        "\npeak RSS of this process so far {:.0} MB (simulator included)\n",
        peak_rss_mb()
    );
    let found = |r: &CatalogRun, kind: &str| {
        r.kinds
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, c)| *c)
    };
    ensure!(
        found(&heal, "inventory_drift") == drift
            && heal.counts.missing + heal.counts.stale == drift,
        "the heal run found {:?}, not {drift} inventory_drift",
        heal.kinds
    );
    let total = heal.merged.total();
    ensure!(
        heal.merged.inventory_levels.updated == drift as u64
            && total.inserted + total.updated + total.deleted == drift as u64,
        "the heal run's merge wrote {}, not {drift} levels",
        merged_text(&heal.merged)
    );
    ensure!(
        clean.counts.missing + clean.counts.stale == 0,
        "a second run found {:?}",
        clean.kinds
    );
    ensure!(
        sim.throttled(DEFAULT_SHOP).is_empty(),
        "the client overdrew the simulator's cost bucket"
    );
    Ok(())
}
