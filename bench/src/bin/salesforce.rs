//! `cargo xtask bench salesforce [--orders N] [--lag-seconds S] [--quote-lines L]`: the
//! Salesforce sync against the simulator (Enterprise-like limits: 100,000 API requests a day,
//! 25 long-running requests), on a real PostgreSQL (scratch database
//! `wholesail_bench_salesforce`, needs `DATABASE_URL`).
//!
//! 1. **Live sync.** `--orders` B2B orders (default 100,000, 1–9 lines, 5 on average) of 1,000
//!    companies and 5,000 buyers over 2,000 products, seeded with SQL as the handlers leave
//!    them and enqueued in the outbox, then sent by origin's sync loop. Printed beside the
//!    references of the same run: the API calls against the minimum (records ÷ 200 per
//!    object), and the orders per hour the sync reached against the orders per hour the daily
//!    budget minus the 20% reserve allows at the calls per order measured.
//! 2. **Lag at 50% load.** Orders enqueued at half the rate phase 1 sustained, for
//!    `--lag-seconds` (default 60): outbox enqueue → Salesforce saved, p50 and p99.
//! 3. **Quote to cash.** A `--quote-lines` line Quote (default 1,200) approved in the
//!    simulator: approval → checkout links on the Quote (Change Data Capture, SOQL, the
//!    draft-order job against the Shopify simulator, the write-back), beside the same quote
//!    submitted straight to the draft-order job in the same run.
//! 4. **Backfill through Bulk API 2.0.** More orders until the shop holds `--backfill-records`
//!    Salesforce records (default 1,000,000; 0 skips), all enqueued by `outbox::backfill` and
//!    sent by the sync (default settings: past 20,000 due rows, Bulk jobs) in a child process
//!    (this binary with `--backfill-child`) into a fresh simulator, so that the RSS sampled
//!    each second is the sync's own. Printed beside the bound the simulator's Bulk processing
//!    rate sets (records ÷ records per second) and the calls Collections upserts would need
//!    (records ÷ 200).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use salesforce_simulator::{CallKind, Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::{CatalogSpec, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_bench::{median, scratch_database, shop_domain};
use wholesail_origin::draft_orders::jobs::{self, JobState};
use wholesail_origin::draft_orders::quote::{QuoteLine, QuoteRequest};
use wholesail_origin::draft_orders::{self, JobLoop};
use wholesail_origin::salesforce::inbound::{self, Inbound};
use wholesail_origin::salesforce::outbox;
use wholesail_origin::salesforce::quotes::WriteBack;
use wholesail_origin::salesforce::runner::{Settings, Sync};
use wholesail_origin::shops::{ShopConfig, Shops};

const DB: &str = "wholesail_bench_salesforce";
const COMPANIES: i64 = 1_000;
const CUSTOMERS: i64 = 5_000;
const PRODUCTS: i64 = 2_000;
/// Order ids start here (the lag phase continues after the live ones).
const FIRST_ORDER: i64 = 1_000_000;
const RESERVE: f64 = 0.2;
const LOCATION: &str = "gid://shopify/CompanyLocation/9900001";

#[tokio::main]
async fn main() -> Result<()> {
    let (mut orders, mut lag_seconds, mut quote_lines) = (100_000i64, 60u64, 1_200u64);
    let mut backfill_records = 1_000_000i64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().context("a value");
        match a.as_str() {
            "--orders" => orders = value()?.parse()?,
            "--lag-seconds" => lag_seconds = value()?.parse()?,
            "--quote-lines" => quote_lines = value()?.parse()?,
            "--backfill-records" => backfill_records = value()?.replace('_', "").parse()?,
            "--backfill-child" => return backfill_child(&value()?, &value()?).await,
            other => bail!(
                "unknown argument {other}; usage: salesforce [--orders N] [--lag-seconds S] [--quote-lines L] [--backfill-records R]"
            ),
        }
    }
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let db_url = format!("{}/{DB}", base.rsplit_once('/').context("DATABASE_URL")?.0);
    let pool = scratch_database(&base, DB, &db_url, 16).await?;

    let sim = Simulator::start(salesforce_simulator::Config::default()).await?;
    let daily = salesforce_simulator::Config::default().daily_api_requests;
    println!("salesforce: origin's sync against the Salesforce simulator ({daily} API requests a day, 25 long-running), {orders} orders\n");

    let rate = live_sync(&pool, &sim, orders, daily).await?;
    lag(&pool, &sim, orders, rate / 2.0, lag_seconds).await?;
    drop(sim);
    quote_to_cash(&pool, quote_lines).await?;
    if backfill_records > 0 {
        backfill(&pool, &db_url, backfill_records).await?;
    }
    Ok(())
}

fn client(sim: &Simulator) -> wholesail_salesforce::Client {
    let config = wholesail_salesforce::Config::new(
        sim.base_url(),
        DEFAULT_CLIENT_ID,
        SecretString::from(DEFAULT_CLIENT_SECRET),
    );
    wholesail_salesforce::Client::new(config).expect("a client")
}

fn sync(pool: &PgPool, sim: &Simulator) -> Sync {
    Sync::new(
        pool.clone(),
        HashMap::from([(shop_domain(DEFAULT_SHOP), client(sim))]),
        "bench-sync",
        Settings {
            poll_interval_ms: 50,
            reserve: RESERVE,
            ..Settings::default()
        },
    )
}

/// Companies, buyers, products and `orders` B2B orders as the handlers leave them.
async fn seed(pool: &PgPool, orders: i64) -> Result<i64> {
    let shop = DEFAULT_SHOP;
    let statements = [
        "INSERT INTO companies (shop, admin_graphql_api_id, name)
         SELECT $1, 'gid://shopify/Company/' || g, 'Company ' || g || ' Trading'
         FROM generate_series(1, $2) g",
        "INSERT INTO customers (shop, id, email, first_name, last_name)
         SELECT $1, g, 'buyer' || g || '@company' || (g % $2) || '.example', 'Buyer', 'No ' || g
         FROM generate_series(1, $3) g",
        "INSERT INTO products (shop, id, admin_graphql_api_id, title, status)
         SELECT $1, g, 'gid://shopify/Product/' || g, 'Product ' || g, 'active'
         FROM generate_series(1, $2) g",
        "INSERT INTO variants (shop, id, product_id, sku, title, price, position)
         SELECT $1, 100000 + g, g, 'SKU-' || g, 'Default', 10 + g % 90, 1
         FROM generate_series(1, $2) g",
    ];
    sqlx::query(statements[0])
        .bind(shop)
        .bind(COMPANIES)
        .execute(pool)
        .await?;
    sqlx::query(statements[1])
        .bind(shop)
        .bind(COMPANIES)
        .bind(CUSTOMERS)
        .execute(pool)
        .await?;
    for s in &statements[2..] {
        sqlx::query(s)
            .bind(shop)
            .bind(PRODUCTS)
            .execute(pool)
            .await?;
    }
    insert_orders(pool, FIRST_ORDER, orders).await
}

/// Orders `first..first + count` (customer `1 + g % CUSTOMERS`, that buyer's company) with
/// 1–9 lines; returns the lines.
async fn insert_orders(pool: &PgPool, first: i64, count: i64) -> Result<i64> {
    sqlx::query(
        "INSERT INTO orders (shop, id, name, customer_id, company_id, created_at, currency,
                             line_count)
         SELECT $1, g, '#' || g, 1 + g % $4, 1 + (1 + g % $4) % $5, now(), 'USD', 1 + g % 9
         FROM generate_series($2, $2 + $3 - 1) g",
    )
    .bind(DEFAULT_SHOP)
    .bind(first)
    .bind(count)
    .bind(CUSTOMERS)
    .bind(COMPANIES)
    .execute(pool)
    .await?;
    let lines = sqlx::query(
        "INSERT INTO order_lines (shop, order_id, id, position, variant_id, product_id, quantity,
                                  price)
         SELECT o.shop, o.id, o.id * 10 + l, l, 100001 + (o.id * 7 + l * 13) % $4,
                1 + (o.id * 7 + l * 13) % $4, l, 10 + (o.id * 7 + l * 13) % 90
         FROM orders o, generate_series(1, o.line_count) l
         WHERE o.shop = $1 AND o.id >= $2 AND o.id < $2 + $3",
    )
    .bind(DEFAULT_SHOP)
    .bind(first)
    .bind(count)
    .bind(PRODUCTS)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(lines as i64)
}

/// Phase 1; returns the orders per second the sync sustained.
async fn live_sync(pool: &PgPool, sim: &Simulator, orders: i64, daily: u64) -> Result<f64> {
    let seeding = Instant::now();
    let lines = seed(pool, orders).await?;
    // A shop's tables have statistics; freshly bulk-inserted ones not yet (autovacuum would
    // analyse them a minute later), and the backfill's joins plan badly without them.
    sqlx::query("ANALYZE").execute(pool).await?;
    outbox::connect(pool, &shop_domain(DEFAULT_SHOP)).await?;
    let enqueued = outbox::backfill(pool, &shop_domain(DEFAULT_SHOP), None)
        .await?
        .context("connected")?;
    // Live changes, not a backfill: the reserve does not hold them back.
    sqlx::query("UPDATE salesforce_outbox SET lane = 'live', first_changed_at = now()")
        .execute(pool)
        .await?;
    println!(
        "1. live sync: {} companies, {} buyers, {} products, {orders} orders with {lines} lines enqueued in {:.1} s",
        enqueued.companies,
        enqueued.customers,
        enqueued.products,
        seeding.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let stop = CancellationToken::new();
    let task = tokio::spawn(sync(pool, sim).run(stop.clone()));
    wait_drained(pool, Duration::from_secs(3600)).await?;
    let wall = started.elapsed().as_secs_f64();
    stop.cancel();
    task.await?;
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM salesforce_outbox WHERE status = 'dead'")
            .fetch_one(pool)
            .await?;

    let records = [
        ("Account", sim.count("Account")),
        ("Contact", sim.count("Contact")),
        ("Product2", sim.count("Product2")),
        ("PricebookEntry", sim.count("PricebookEntry")),
        ("Order", sim.count("Order")),
        ("OrderItem", sim.count("OrderItem")),
    ];
    let minimum: usize = records.iter().map(|(_, n)| n.div_ceil(200)).sum();
    let upserts = sim.call_count(CallKind::Collections);
    let queries = sim.call_count(CallKind::Query);
    let other = sim.call_count(CallKind::Rest) + sim.call_count(CallKind::Composite);
    let calls = upserts + queries + other;
    let (used, _) = sim.api_usage();
    println!(
        "   records in Salesforce: {}",
        records
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "   API calls {calls} (upserts {upserts}, SOQL {queries}, other {other}; budget used {used}) vs minimum {minimum} (records ÷ 200 per object): {:.3}×",
        calls as f64 / minimum as f64
    );
    let per_hour = orders as f64 / wall * 3600.0;
    let calls_per_order = calls as f64 / orders as f64;
    let budget_per_hour = daily as f64 * (1.0 - RESERVE) / 24.0 / calls_per_order;
    println!(
        "   wall {wall:.1} s: {per_hour:.0} orders/hour; the daily budget minus the {:.0}% reserve allows {budget_per_hour:.0} orders/hour at {calls_per_order:.4} calls/order → sustained {:.0} orders/hour; dead rows {dead}\n",
        RESERVE * 100.0,
        per_hour.min(budget_per_hour)
    );
    Ok(orders as f64 / wall)
}

async fn wait_drained(pool: &PgPool, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM salesforce_outbox WHERE status IN ('pending', 'processing')",
        )
        .fetch_one(pool)
        .await?;
        if open == 0 {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("{open} outbox rows still open after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Phase 2: orders enqueued at `rate` per second for `seconds`, lag to Salesforce.
async fn lag(pool: &PgPool, sim: &Simulator, first: i64, rate: f64, seconds: u64) -> Result<()> {
    let stop = CancellationToken::new();
    let task = tokio::spawn(sync(pool, sim).run(stop.clone()));
    let tick = Duration::from_millis(100);
    let per_tick = rate * tick.as_secs_f64();
    let started = Instant::now();
    let mut next = FIRST_ORDER + first;
    let mut owed = 0.0;
    let mut interval = tokio::time::interval(tick);
    while started.elapsed() < Duration::from_secs(seconds) {
        interval.tick().await;
        owed += per_tick;
        let count = owed.floor() as i64;
        if count == 0 {
            continue;
        }
        owed -= count as f64;
        insert_orders(pool, next, count).await?;
        // What a handler's enqueue does for each applied order.
        sqlx::query(
            "INSERT INTO salesforce_outbox (shop, object, record_key, first_changed_at)
             SELECT $1, 'order', g::text, now() FROM generate_series($2, $2 + $3 - 1) g",
        )
        .bind(DEFAULT_SHOP)
        .bind(next)
        .bind(count)
        .execute(pool)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(outbox::CHANNEL)
            .execute(pool)
            .await?;
        next += count;
    }
    wait_drained(pool, Duration::from_secs(600)).await?;
    stop.cancel();
    task.await?;
    let (p50, p99, n): (f64, f64, i64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - first_changed_at))::float8,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - first_changed_at))::float8,
                count(*)
         FROM salesforce_outbox WHERE object = 'order' AND status = 'done' AND record_key::bigint >= $1",
    )
    .bind(FIRST_ORDER + first)
    .fetch_one(pool)
    .await?;
    println!(
        "2. lag at 50% load: {n} orders at {rate:.0} orders/s for {seconds} s: outbox enqueue → saved in Salesforce p50 {:.0} ms, p99 {:.0} ms (goal p99 < 5 s, Shopify → origin inbox lag comes on top: see `bench origin`)\n",
        p50 * 1000.0,
        p99 * 1000.0
    );
    Ok(())
}

/// Phase 3: approval → checkout links on the Quote, beside the draft-order job alone.
async fn quote_to_cash(pool: &PgPool, lines: u64) -> Result<()> {
    let mut config = SimulatorConfig::default();
    config.shops[0].catalog = CatalogSpec::new(31, lines);
    let shopify = shopify_simulator::Simulator::start(config).await?;
    let catalog = shopify.catalog(DEFAULT_SHOP);
    let variants: Vec<_> = (0..lines)
        .map(|i| catalog.variant(i, 0).context("variant 0"))
        .collect::<Result<_>>()?;
    for v in &variants {
        sqlx::query(
            "INSERT INTO variants (shop, id, product_id, sku, title, price)
             VALUES ($1, $2, $3, $4, $5, $6 / 100.0) ON CONFLICT DO NOTHING",
        )
        .bind(DEFAULT_SHOP)
        .bind(v.id as i64)
        .bind(v.product_id as i64)
        .bind(&v.sku)
        .bind(&v.title)
        .bind(v.price_cents as i64)
        .execute(pool)
        .await?;
    }
    sqlx::query(
        "INSERT INTO company_locations (shop, admin_graphql_api_id, company_admin_graphql_api_id,
                                        name, shipping_country_code)
         VALUES ($1, $2, 'gid://shopify/Company/990001', 'Dock', 'US')",
    )
    .bind(DEFAULT_SHOP)
    .bind(LOCATION)
    .execute(pool)
    .await?;
    let shops = Arc::new(Shops::new(vec![ShopConfig {
        domain: shop_domain(DEFAULT_SHOP),
        url: Some(shopify.base_url().into()),
        access_token: SecretString::from(DEFAULT_TOKEN),
        api_version: Some("2026-01".into()),
    }])?);
    let stop = CancellationToken::new();
    let job_loop = tokio::spawn(
        JobLoop::new(
            pool.clone(),
            shops.clone(),
            draft_orders::Settings {
                poll_interval_ms: 100,
                ..draft_orders::Settings::default()
            },
            "bench-jobs".into(),
        )
        .run(stop.clone()),
    );

    // The org: the buyer's Account, a price book entry per variant, one Quote per round.
    let sim = Simulator::start(salesforce_simulator::Config::default()).await?;
    let (account, book, entries) = price_book(&sim, &variants)?;
    let quotes = (0..3)
        .map(|round| user_quote(&sim, &account, &book, &entries, round))
        .collect::<Result<Vec<_>>>()?;
    let newest = sim.change_events().last().context("an event")?.replay_id;
    sqlx::query(
        "INSERT INTO salesforce_replay (shop, replay_id, committed_at) VALUES ($1, $2, now())",
    )
    .bind(DEFAULT_SHOP)
    .bind(newest.to_be_bytes().to_vec())
    .execute(pool)
    .await?;
    let settings = inbound::Settings {
        write_back_poll_ms: 50,
        ..inbound::Settings::default()
    };
    let tasks = [
        tokio::spawn(
            Inbound::new(
                pool.clone(),
                shop_domain(DEFAULT_SHOP),
                client(&sim),
                sim.pubsub_url(),
                shops.clone(),
                settings,
            )
            .run(stop.clone()),
        ),
        tokio::spawn(
            WriteBack::new(
                pool.clone(),
                HashMap::from([(shop_domain(DEFAULT_SHOP), client(&sim))]),
                Duration::from_millis(50),
            )
            .run(stop.clone()),
        ),
    ];

    let mut direct = Vec::new();
    let mut approved = Vec::new();
    for (round, quote) in quotes.iter().enumerate() {
        // The reference: the same lines submitted straight to the draft-order job.
        let request = QuoteRequest {
            shop: shop_domain(DEFAULT_SHOP),
            quote_id: format!("direct-{round}"),
            company_location_id: LOCATION.into(),
            company_contact_id: None,
            lines: variants
                .iter()
                .enumerate()
                .map(|(i, v)| QuoteLine {
                    variant_id: v.id,
                    quantity: 1 + (i % 4) as u32,
                })
                .collect(),
            shipping: None,
            note: None,
            callback_url: None,
            send_invoice: false,
        };
        let t = Instant::now();
        let (job, _) = jobs::submit(pool, &request, None).await?;
        loop {
            let status = jobs::status(pool, &job).await?.context("the job")?;
            if status.status != JobState::Processing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        direct.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        sim.user_update("Quote", quote, json!({"Status": "Approved"}))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        loop {
            let record = sim.record("Quote", quote).context("the quote")?;
            if let Some(status) = record
                .get("Shopify_Draft_Status__c")
                .and_then(Value::as_str)
            {
                if !status.starts_with("completed") {
                    bail!("the quote was not billed: {status}");
                }
                break;
            }
            if t.elapsed() > Duration::from_secs(300) {
                bail!("no outcome on the quote after 300 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        approved.push(t.elapsed().as_secs_f64());
    }
    stop.cancel();
    job_loop.await?;
    for task in tasks {
        task.await?;
    }
    let (d, a) = (median(direct), median(approved));
    println!(
        "3. quote to cash, {lines} lines ({} drafts each): approval in Salesforce → checkout links on the Quote {a:.2} s (median of 3) vs the draft-order job alone {d:.2} s: {:.2}× (seed anchor: 8–12 minutes)",
        lines.div_ceil(499),
        a / d
    );
    Ok(())
}

/// The buyer's Account (company 990001), the standard price book and an entry per variant.
fn price_book(
    sim: &Simulator,
    variants: &[shopify_simulator::catalog::VariantRow],
) -> Result<(String, Value, Vec<String>)> {
    let err = |e| anyhow::anyhow!("{e:?}");
    let account = sim
        .user_create(
            "Account",
            json!({"Name": "Bench Buyer", "Shopify_Company_Id__c": "990001"}),
        )
        .map_err(err)?;
    let book = sim.records("Pricebook2")[0]["Id"].clone();
    let mut entries = Vec::with_capacity(variants.len());
    for v in variants {
        let id = v.id.to_string();
        let product = sim
            .user_create(
                "Product2",
                json!({"Name": v.title, "Shopify_Variant_Id__c": id}),
            )
            .map_err(err)?;
        entries.push(
            sim.user_create(
                "PricebookEntry",
                json!({"Pricebook2Id": book, "Product2Id": product, "UnitPrice": 10,
                       "IsActive": true, "Shopify_Variant_Id__c": id}),
            )
            .map_err(err)?,
        );
    }
    Ok((account, book, entries))
}

/// A draft Quote with one line per price book entry; its id.
fn user_quote(
    sim: &Simulator,
    account: &str,
    book: &Value,
    entries: &[String],
    round: usize,
) -> Result<String> {
    let err = |e| anyhow::anyhow!("{e:?}");
    let quote = sim
        .user_create(
            "Quote",
            json!({"Name": format!("Q-bench-{round}"), "AccountId": account,
                   "Pricebook2Id": book, "Status": "Draft"}),
        )
        .map_err(err)?;
    for (i, entry) in entries.iter().enumerate() {
        sim.user_create(
            "QuoteLineItem",
            json!({"QuoteId": quote, "PricebookEntryId": entry, "Quantity": 1 + i % 4,
                   "UnitPrice": 10}),
        )
        .map_err(err)?;
    }
    Ok(quote)
}

/// Phase 4: `records` Salesforce records backfilled through Bulk API 2.0 by a child process.
async fn backfill(pool: &PgPool, db_url: &str, records: i64) -> Result<()> {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .context(sql)
    };
    // What the shop would send: Accounts, Contacts, two records per variant, Orders, items.
    let have = count("SELECT count(*) FROM companies").await?
        + count("SELECT count(*) FROM customers").await?
        + 2 * count("SELECT count(*) FROM variants").await?
        + count("SELECT count(*) FROM orders WHERE company_id IS NOT NULL").await?
        + count("SELECT count(*) FROM order_lines").await?;
    let next = count("SELECT max(id) + 1 FROM orders").await?;
    // 1–9 lines, 5 on average: 6 records an order.
    let more = ((records - have) / 6).max(0);
    insert_orders(pool, next, more).await?;
    sqlx::query("TRUNCATE salesforce_outbox, salesforce_links")
        .execute(pool)
        .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    let enqueued = outbox::backfill(pool, &shop_domain(DEFAULT_SHOP), None)
        .await?
        .context("connected")?;
    let rows = enqueued.companies + enqueued.customers + enqueued.products + enqueued.orders;

    let config = salesforce_simulator::Config::default();
    let rate = config.bulk_records_per_second;
    let sim = Simulator::start(config).await?;
    println!(
        "4. backfill through Bulk API 2.0: {rows} outbox rows ({} companies, {} buyers, {} products, {} orders) of ~{records} records, sync in a child process",
        enqueued.companies, enqueued.customers, enqueued.products, enqueued.orders
    );
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new(exe)
        .args(["--backfill-child", sim.base_url(), db_url])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    if !child.status.success() {
        bail!("the backfill child failed: {}", child.status);
    }
    let report: Value = serde_json::from_slice(&child.stdout).context("the child's report")?;
    let sent: usize = [
        "Account",
        "Contact",
        "Product2",
        "PricebookEntry",
        "Order",
        "OrderItem",
    ]
    .iter()
    .map(|o| sim.count(o))
    .sum();
    let wall = report["wall_s"].as_f64().unwrap_or_default();
    let bound = sent as f64 / rate;
    let (bulk, collections, queries) = (
        sim.call_count(CallKind::Bulk),
        sim.call_count(CallKind::Collections),
        sim.call_count(CallKind::Query),
    );
    let other = sim.call_count(CallKind::Rest) + sim.call_count(CallKind::Composite);
    let calls = bulk + collections + queries + other;
    println!(
        "   {sent} records in Salesforce in {wall:.1} s ({:.0} records/s) vs the simulator's Bulk processing bound {bound:.1} s ({rate:.0} records/s): {:.2}×; dead rows {}",
        sent as f64 / wall,
        wall / bound,
        report["dead"]
    );
    println!(
        "   API calls {calls} (Bulk {bulk}, Collections {collections}, SOQL {queries}, other {other}) vs {} for Collections upserts alone (records ÷ 200): {:.4}×",
        sent.div_ceil(200),
        calls as f64 / sent.div_ceil(200) as f64
    );
    println!(
        "   sync RSS at 10% / 50% / 100% of the rows: {} MB; peak {:.1} MB\n",
        report["rss_mb"],
        report["peak_mb"].as_f64().unwrap_or_default()
    );
    Ok(())
}

/// `--backfill-child <simulator url> <database url>`: runs the sync until the outbox is
/// drained; prints its wall time, dead rows and RSS as JSON.
async fn backfill_child(sim_url: &str, db_url: &str) -> Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(db_url)
        .await?;
    let config = wholesail_salesforce::Config::new(
        sim_url,
        DEFAULT_CLIENT_ID,
        SecretString::from(DEFAULT_CLIENT_SECRET),
    );
    let sync = Sync::new(
        pool.clone(),
        HashMap::from([(
            shop_domain(DEFAULT_SHOP),
            wholesail_salesforce::Client::new(config)?,
        )]),
        "bench-backfill",
        Settings::default(),
    );
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM salesforce_outbox")
        .fetch_one(&pool)
        .await?;
    let started = Instant::now();
    let stop = CancellationToken::new();
    let task = tokio::spawn(sync.run(stop.clone()));
    let mut marks = [0.1, 0.5, 1.0].into_iter().peekable();
    let mut rss_mb = Vec::new();
    while let Some(&mark) = marks.peek() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM salesforce_outbox WHERE status IN ('done', 'dead')",
        )
        .fetch_one(&pool)
        .await?;
        if done as f64 >= mark * total as f64 {
            rss_mb.push((proc_status_kb("VmRSS:")? as f64 / 1024.0).round());
            marks.next();
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("{done} of {total} rows after an hour");
        }
    }
    let wall = started.elapsed().as_secs_f64();
    stop.cancel();
    task.await?;
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM salesforce_outbox WHERE status = 'dead'")
            .fetch_one(&pool)
            .await?;
    println!(
        "{}",
        json!({"wall_s": wall, "dead": dead, "rss_mb": rss_mb,
               "peak_mb": proc_status_kb("VmHWM:")? as f64 / 1024.0})
    );
    Ok(())
}

/// A `/proc/self/status` line's value in kB (`VmRSS:`, `VmHWM:`).
fn proc_status_kb(field: &str) -> Result<u64> {
    std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} in /proc/self/status"))
}
