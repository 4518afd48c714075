//! `cargo xtask bench rules-push`: origin's rules push at scale, against the simulator's cost
//! bucket.
//!
//! A scratch database `wholesail_bench_rules` holds `--locations` company locations (default
//! 10,000, in three countries) and `--variants` variants (default 100,000, two warehouses each
//! with stock, routing US → warehouse 1, DE/FR → warehouse 2), each buyer with 40 variant-level
//! line limits, a product-level limit, 10 monthly quotas partly consumed by orders, an order
//! minimum, and 50 SKUs restricted to warehouse 1 for every buyer (~100 variant rules per
//! buyer). Measured in one run:
//!
//! 1. computing and encoding every buyer's payload (no push): the database side alone;
//! 2. the initial push of every buyer;
//! 3. a push with nothing changed (must make 0 calls);
//! 4. a 1% rule change (one limit of 1% of the buyers, through the import path) pushed from
//!    the dirty marks.
//!
//! Each push's `metafieldsSet` calls are set beside the minimum (changed metafields ÷ 25) and
//! its wall time beside the lower bound the bucket sets: (minimum calls × 10 points − points
//! available at the start) ÷ restore rate. The simulator runs Shopify's Standard plan (bucket
//! 2,000, 100 points/s) unless `--restore-rate` says otherwise.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use secrecy::SecretString;
use shopify_simulator::{BucketConfig, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN};
use sqlx::PgPool;
use wholesail_bench::{median, scratch_database};
use wholesail_origin::rules::compute::{Scope, ShopRules};
use wholesail_origin::rules::file::{Rule, Target};
use wholesail_origin::rules::push::{push, PushReport};
use wholesail_origin::rules::quote::{self, QuoteLine};
use wholesail_origin::rules::{scheduler, store};
use wholesail_rules::payload;
use wholesail_shopify_admin::metafields::MAX_PER_CALL;
use wholesail_shopify_admin::{AdminClient, AdminConfig};

const DB: &str = "wholesail_bench_rules";
const SHOP: &str = DEFAULT_SHOP;
/// `metafieldsSet` is a mutation: 10 points.
const COST_PER_CALL: f64 = 10.0;
const FIRST_VARIANT: i64 = 40_000_000_000_000;

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name} needs a value"))?
            .parse()
            .with_context(|| format!("{name}: expected a whole number")),
        None => Ok(default),
    }
}

fn main() -> Result<()> {
    let locations = arg("--locations", 10_000)? as i64;
    let variants = arg("--variants", 100_000)? as i64;
    let restore_rate = arg("--restore-rate", 100)? as f64;
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let db_url = format!("{}/{DB}", base.rsplit_once('/').context("DATABASE_URL")?.0);
    tokio::runtime::Runtime::new()?.block_on(run(&base, &db_url, locations, variants, restore_rate))
}

async fn setup(pool: &PgPool, locations: i64, variants: i64) -> Result<()> {
    let statements = [
        "INSERT INTO company_locations (shop, admin_graphql_api_id, name, shipping_country_code)
         SELECT $1, 'gid://shopify/CompanyLocation/' || (9000000 + g), 'Location ' || g,
                (ARRAY['US', 'DE', 'FR'])[1 + g % 3]
         FROM generate_series(1, $2) g",
        "INSERT INTO products (shop, id, title)
         SELECT $1, g, 'Product ' || g FROM generate_series(1, $3 / 10) g",
        "INSERT INTO variants (shop, id, product_id, sku, title, price, inventory_item_id)
         SELECT $1, $4 + g, 1 + (g - 1) / 10, 'SKU-' || g, 'Variant ' || g, 10 + g % 90,
                45000000000000 + g
         FROM generate_series(1, $3) g",
        "INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,
                                       source_updated_at, source_digest)
         SELECT $1, 45000000000000 + g, w, (g * w) % 500, now(), 0
         FROM generate_series(1, $3) g, (VALUES (1), (2)) AS ws(w)",
        "INSERT INTO rule_warehouse_regions (shop, warehouse_id, country_code)
         VALUES ($1, 1, 'US'), ($1, 2, 'DE'), ($1, 2, 'FR')",
        "INSERT INTO rule_line_limits (shop, company_location, target_kind, target_id,
                                       increment, min_quantity, max_quantity)
         SELECT $1, 'gid://shopify/CompanyLocation/' || (9000000 + b), 'variant',
                $4 + 1 + (b * 7919 + k * 104729) % $3, 1 + k % 12, k % 3, 100 + k * 10
         FROM generate_series(1, $2) b, generate_series(1, 40) k",
        "INSERT INTO rule_line_limits (shop, company_location, target_kind, target_id, increment)
         SELECT $1, 'gid://shopify/CompanyLocation/' || (9000000 + b), 'product',
                1 + (b * 31) % ($3 / 10), 6
         FROM generate_series(1, $2) b",
        "INSERT INTO rule_quotas (shop, company_location, target_kind, target_id, quantity, period)
         SELECT $1, 'gid://shopify/CompanyLocation/' || (9000000 + b), 'variant',
                $4 + 1 + (b * 7919 + k * 104729) % $3, 100 * k, 'month'
         FROM generate_series(1, $2) b, generate_series(1, 10) k",
        "INSERT INTO rule_order_minimums (shop, company_location, amount, currency)
         SELECT $1, 'gid://shopify/CompanyLocation/' || (9000000 + b), 250, 'USD'
         FROM generate_series(1, $2) b",
        "INSERT INTO rule_sku_warehouses (shop, target_kind, target_id, warehouse_id)
         SELECT $1, 'variant', $4 + g * 1999, 1 FROM generate_series(1, 50) g",
        // Two orders per buyer this month, each consuming two of its quotas.
        "INSERT INTO orders (shop, id, company_location_id, created_at, currency, line_count,
                             source_updated_at, source_digest)
         SELECT $1, o, 9000000 + 1 + (o - 1) / 2, now(), 'USD', 2, now(), 0
         FROM generate_series(1, 2 * $2) o",
        "INSERT INTO order_lines (shop, order_id, id, position, variant_id, quantity, price)
         SELECT $1, o, o * 10 + k, k,
                $4 + 1 + ((1 + (o - 1) / 2) * 7919 + (k + o % 2 * 2) * 104729) % $3, 7, 10
         FROM generate_series(1, 2 * $2) o, generate_series(1, 2) k",
        "DELETE FROM rules_dirty",
        "DELETE FROM rules_dirty_variants",
    ];
    for s in statements {
        sqlx::query(s)
            .bind(SHOP)
            .bind(locations)
            .bind(variants)
            .bind(FIRST_VARIANT)
            .execute(pool)
            .await
            .with_context(|| s.lines().next().unwrap_or_default().to_owned())?;
    }
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

/// One measured push.
struct Measured {
    what: &'static str,
    report: PushReport,
    wall_s: f64,
    available_before: u64,
}

async fn measured(
    what: &'static str,
    sim: &Simulator,
    f: impl std::future::Future<Output = Result<PushReport, wholesail_origin::rules::push::PushError>>,
) -> Result<Measured> {
    let available_before = sim.throttle_status(SHOP).currently_available;
    let t = Instant::now();
    let report = f.await?;
    Ok(Measured {
        what,
        report,
        wall_s: t.elapsed().as_secs_f64(),
        available_before,
    })
}

async fn run(
    base: &str,
    db_url: &str,
    locations: i64,
    variants: i64,
    restore_rate: f64,
) -> Result<()> {
    let pool = scratch_database(base, DB, db_url, 4).await?;
    let t = Instant::now();
    setup(&pool, locations, variants).await?;
    eprintln!(
        "setup: {locations} locations, {variants} variants in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let rule_rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM rule_line_limits) + (SELECT count(*) FROM rule_quotas)
              + (SELECT count(*) FROM rule_order_minimums) + (SELECT count(*) FROM rule_sku_warehouses)",
    )
    .fetch_one(&pool)
    .await?;

    // 1. The database side alone: compute and encode every buyer.
    let t = Instant::now();
    let rules =
        ShopRules::load(&pool, &wholesail_bench::shop_domain(SHOP), Scope::default()).await?;
    let load_s = t.elapsed().as_secs_f64();
    let (mut pages, mut bytes, mut entries, mut buyers) = (0usize, 0usize, 0usize, 0usize);
    for b in rules.buyers() {
        let r = rules.buyer_rules(b)?;
        let p = payload::encode(b, &r)?;
        buyers += 1;
        entries += r.variants().len();
        pages += p.len();
        bytes += p.iter().map(String::len).sum::<usize>();
    }
    let compute_s = t.elapsed().as_secs_f64();
    drop(rules);

    let bucket = BucketConfig {
        maximum_available: BucketConfig::STANDARD.maximum_available,
        restore_rate,
    };
    let sim = Simulator::start(SimulatorConfig {
        bucket,
        ..SimulatorConfig::default()
    })
    .await?;
    let client = AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))?;

    let initial = measured(
        "initial push, every buyer",
        &sim,
        push(&pool, &client, &wholesail_bench::shop_domain(SHOP), None),
    )
    .await?;
    let unchanged = measured(
        "full recompute, nothing changed",
        &sim,
        push(&pool, &client, &wholesail_bench::shop_domain(SHOP), None),
    )
    .await?;

    // 3. 1% of the buyers get one limit changed, through the import path (marks them dirty).
    let changed_buyers = (locations / 100).max(1);
    let edits: Vec<Rule> = (1..=changed_buyers)
        .map(|i| {
            let b = i * 97 % locations + 1;
            Rule::Limits {
                location: format!("gid://shopify/CompanyLocation/{}", 9_000_000 + b),
                target: Target::Variant(FIRST_VARIANT + 1 + (b * 7919 + 104_729) % variants),
                increment: 24,
                min_quantity: 0,
                max_quantity: Some(960),
            }
        })
        .collect();
    let mut edited: Vec<&str> = edits.iter().filter_map(Rule::location).collect();
    edited.sort_unstable();
    edited.dedup();
    let edited = edited.len();
    let t = Instant::now();
    store::upsert(&pool, &wholesail_bench::shop_domain(SHOP), edits).await?;
    let import_s = t.elapsed().as_secs_f64();
    let change = measured(
        "1% of buyers changed (dirty push)",
        &sim,
        scheduler::push_dirty(&pool, &client, &wholesail_bench::shop_domain(SHOP)),
    )
    .await?;

    // The same tables serve origin's quote: one buyer, a 50-line cart.
    let mut quote_ms = Vec::new();
    for i in 0..30i64 {
        let b = i * 331 % locations + 1;
        let lines: Vec<QuoteLine> = (0..50i64)
            .map(|k| QuoteLine {
                variant_id: (FIRST_VARIANT + 1 + (b * 7919 + k * 104_729) % variants) as u64,
                quantity: 12,
            })
            .collect();
        let location = format!("gid://shopify/CompanyLocation/{}", 9_000_000 + b);
        let t = Instant::now();
        quote::quote(
            &pool,
            &wholesail_bench::shop_domain(SHOP),
            &location,
            &lines,
        )
        .await?;
        quote_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let quote_ms = median(quote_ms);

    let throttled = sim.throttled(SHOP);
    ensure!(
        throttled.is_empty(),
        "the push overdrew the bucket: {throttled:?}"
    );
    ensure!(unchanged.report.calls == 0, "an unchanged push made calls");
    ensure!(
        change.report.changed_buyers == edited,
        "{} buyers changed, {edited} edited",
        change.report.changed_buyers
    );

    println!("## Rules push: {locations} company locations × {variants} variants\n");
    println!(
        "{rule_rows} rule rows; {buyers} buyers, {entries} variant rules in their payloads \
         ({:.0} per buyer), {pages} metafield pages, {:.1} MB ({:.0} B per buyer)\n",
        entries as f64 / buyers as f64,
        bytes as f64 / 1e6,
        bytes as f64 / buyers as f64
    );
    println!(
        "compute + encode every buyer (no push): {compute_s:.2} s (of which loading {load_s:.2} s); \
         1% edit through the import path: {import_s:.3} s; quote (price + validate) of a \
         50-line cart for one buyer: median {quote_ms:.1} ms over 30\n"
    );
    println!(
        "simulator bucket: {} points, restore {restore_rate} points/s, metafieldsSet {COST_PER_CALL} points/call\n",
        bucket.maximum_available
    );
    println!("| push | buyers computed | metafields sent | calls | minimum calls (changed ÷ 25) | wall s | lower bound s (bucket as found) | wall ÷ bound | bound from an empty bucket s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in [&initial, &unchanged, &change] {
        let min_calls = m.report.metafields.div_ceil(MAX_PER_CALL);
        let bound = ((min_calls as f64 * COST_PER_CALL - m.available_before as f64) / restore_rate)
            .max(0.0);
        let ratio = if bound > 0.0 {
            format!("{:.2}", m.wall_s / bound)
        } else {
            "—".to_owned()
        };
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {:.2} |",
            m.what,
            m.report.buyers,
            m.report.metafields,
            m.report.calls,
            min_calls,
            m.wall_s,
            bound,
            ratio,
            min_calls as f64 * COST_PER_CALL / restore_rate
        );
    }
    println!(
        "\nthrottled requests: {} (the client never overdrew the bucket)",
        throttled.len()
    );
    Ok(())
}
