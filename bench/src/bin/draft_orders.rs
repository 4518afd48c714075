//! `cargo xtask bench draft-orders [--rounds R]`: quote to cash. For quotes of 500, 1,200 and
//! 5,000 lines, the time from `POST /v1/draft-orders` to all drafts created in the Shopify
//! simulator (Standard plan: bucket 2,000 points, 100 points/s), beside the lower bound the
//! cost bucket implies in the same run — `max(0, points spent − points available at the
//! start) / restore rate` — and the time to the first response (the job id).
//!
//! Two bucket states per size: **full** (an idle shop: the burst capacity covers the whole
//! quote, so the bound is 0 and the time is the work itself) and **drained** (the shop's
//! bucket was just emptied through the same client by other traffic, so every point must be
//! restored first: the bound is the points over the restore rate).
//!
//! Everything is the real thing in one process: origin's HTTP route and job loop on a real
//! PostgreSQL (scratch database `wholesail_bench_draft_orders`, needs `DATABASE_URL`), the
//! rules' pricing and validators, the Admin client with its pacer, and the simulator's
//! `draftOrderCreate` with Shopify's line limit and discount arithmetic. Medians of
//! `--rounds` (default 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::{
    BucketConfig, CatalogSpec, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_bench::{median, scratch_database};
use wholesail_origin::auth::Scope;
use wholesail_origin::draft_orders::api::{router, DraftOrdersApi};
use wholesail_origin::draft_orders::jobs::{self, JobState};
use wholesail_origin::draft_orders::{JobLoop, Settings};
use wholesail_origin::shops::{ShopConfig, Shops};
use wholesail_shopify_admin::metafields::{CompareDigest, MetafieldsSetInput};

const DB: &str = "wholesail_bench_draft_orders";
const SIZES: [u64; 3] = [500, 1200, 5000];
const LOCATION: &str = "gid://shopify/CompanyLocation/8800001";
/// The integrator token the quotes are submitted with.
const TOKEN: &str = "wso_bench-integrator-token-00000000000000";
const SEED: u64 = 23;

/// One measured run.
struct Run {
    first_response_ms: f64,
    done_s: f64,
    bound_s: f64,
    points: u32,
    requests: usize,
    parts: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut rounds = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().context("--rounds N")?.parse()?,
            other => bail!("unknown argument {other}; usage: draft_orders [--rounds R]"),
        }
    }
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let db_url = format!("{}/{DB}", base.rsplit_once('/').context("DATABASE_URL")?.0);
    let pool = scratch_database(&base, DB, &db_url, 8).await?;
    let catalog = CatalogSpec::new(SEED, *SIZES.iter().max().unwrap());
    seed(&pool, &catalog).await?;
    wholesail_origin::auth::tokens::insert(&pool, "bench", &[Scope::Integrator], TOKEN, None)
        .await?;

    println!("draft-orders: quote → linked draft orders, Shopify simulator at the Standard plan (bucket 2,000 points, 100 points/s)");
    println!("medians of {rounds} rounds; bound = max(0, points − points available at start) / 100 points/s\n");
    println!(
        "{:>6} {:>7} {:>5} {:>8} {:>8} {:>11} {:>10} {:>10} {:>7}",
        "lines",
        "bucket",
        "parts",
        "requests",
        "points",
        "1st resp ms",
        "done s",
        "bound s",
        "ratio"
    );
    let mut n = 0u64;
    for size in SIZES {
        for drained in [false, true] {
            let mut runs = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                n += 1;
                runs.push(run(&pool, &catalog, size, drained, &format!("Q-{n}")).await?);
            }
            let first = median(runs.iter().map(|r| r.first_response_ms).collect());
            let done = median(runs.iter().map(|r| r.done_s).collect());
            let bound = median(runs.iter().map(|r| r.bound_s).collect());
            let ratio = if bound > 0.0 {
                format!("{:.2}", done / bound)
            } else {
                "-".into()
            };
            println!(
                "{size:>6} {:>7} {:>5} {:>8} {:>8} {first:>11.1} {done:>10.3} {bound:>10.3} {ratio:>7}",
                if drained { "drained" } else { "full" },
                runs[0].parts,
                runs[0].requests,
                runs[0].points,
            );
        }
    }
    Ok(())
}

/// Origin's tables as a catalog sync and the rules would leave them: variant 0 of each
/// product with its price, stock in one of three warehouses, the buyer, and negotiated prices
/// (87 % of list) on every third product.
async fn seed(pool: &PgPool, catalog: &CatalogSpec) -> Result<()> {
    let variants: Vec<_> = (0..catalog.products)
        .map(|i| catalog.variant(i, 0).context("variant 0"))
        .collect::<Result<_>>()?;
    let ids: Vec<i64> = variants.iter().map(|v| v.id as i64).collect();
    let products: Vec<i64> = variants.iter().map(|v| v.product_id as i64).collect();
    let cents: Vec<i64> = variants.iter().map(|v| v.price_cents as i64).collect();
    let items: Vec<i64> = variants
        .iter()
        .map(|v| v.inventory_item_id as i64)
        .collect();
    let skus: Vec<String> = variants.iter().map(|v| v.sku.clone()).collect();
    let titles: Vec<String> = variants.iter().map(|v| v.title.clone()).collect();
    let warehouses: Vec<i64> = (0..variants.len() as i64).map(|i| 601 + i % 3).collect();
    sqlx::query(
        "INSERT INTO variants (shop, id, product_id, sku, title, price, inventory_item_id)
         SELECT $1, id, product_id, sku, title, cents / 100.0, item
         FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
              AS t(id, product_id, sku, title, cents, item)",
    )
    .bind(DEFAULT_SHOP)
    .bind(&ids)
    .bind(&products)
    .bind(&skus)
    .bind(&titles)
    .bind(&cents)
    .bind(&items)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available, source_updated_at, source_digest)
         SELECT $1, item, location, 1000, now(), 0 FROM unnest($2::bigint[], $3::bigint[]) AS t(item, location)",
    )
    .bind(DEFAULT_SHOP)
    .bind(&items)
    .bind(&warehouses)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO company_locations (shop, admin_graphql_api_id, name, shipping_country_code)
         VALUES ($1, $2, 'Receiving dock', 'US')",
    )
    .bind(DEFAULT_SHOP)
    .bind(LOCATION)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO rule_price_breaks (shop, company_location, target_kind, target_id, min_quantity, unit_price)
         SELECT $1, $2, 'product', product, 1, (cents * 87 / 100) / 100.0
         FROM unnest($3::bigint[], $4::bigint[]) WITH ORDINALITY AS t(product, cents, n)
         WHERE n % 3 = 1",
    )
    .bind(DEFAULT_SHOP)
    .bind(LOCATION)
    .bind(&products)
    .bind(&cents)
    .execute(pool)
    .await?;
    Ok(())
}

/// One quote of `size` lines against a fresh simulator.
async fn run(
    pool: &PgPool,
    catalog: &CatalogSpec,
    size: u64,
    drained: bool,
    quote_id: &str,
) -> Result<Run> {
    let mut config = SimulatorConfig::default();
    config.shops[0].catalog = catalog.clone();
    config.bucket = BucketConfig::STANDARD;
    let sim = Simulator::start(config).await?;
    let shops = Arc::new(Shops::new(vec![ShopConfig {
        domain: wholesail_bench::shop_domain(DEFAULT_SHOP),
        url: Some(sim.base_url().into()),
        access_token: SecretString::from(DEFAULT_TOKEN),
        api_version: Some("2026-01".into()),
    }])?);
    if drained {
        drain(&sim, &shops).await?;
    }
    let settings = Settings {
        poll_interval_ms: 200,
        ..Settings::default()
    };
    let app = router::<()>(DraftOrdersApi {
        pool: pool.clone(),
        shops: shops.clone(),
        callbacks: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let shutdown = CancellationToken::new();
    let loops = tokio::spawn(
        JobLoop::new(pool.clone(), shops.clone(), settings, "bench".into()).run(shutdown.clone()),
    );

    let body = json!({
        "shop": DEFAULT_SHOP,
        "quote_id": quote_id,
        "company_location_id": LOCATION,
        "lines": (0..size).map(|i| json!({
            "variant_id": catalog.variant(i, 0).map(|v| v.id),
            "quantity": 1 + i % 4,
        })).collect::<Vec<_>>(),
        "shipping": {"title": "LTL freight", "price": "250.00"},
    });
    let http = reqwest::Client::new();
    let costs_before = sim.cost_log(DEFAULT_SHOP).len();
    let available = sim.throttle_status(DEFAULT_SHOP).currently_available as f64;
    let sent = Instant::now();
    let resp = http
        .post(format!("http://{addr}/v1/draft-orders"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?;
    let first_response = sent.elapsed();
    if resp.status() != 202 {
        bail!("POST answered {}: {}", resp.status(), resp.text().await?);
    }
    let accepted: Value = resp.json().await?;
    let job = accepted["job"].as_str().context("job id")?.to_owned();
    let status = loop {
        let s = jobs::status(pool, &job).await?.context("job")?;
        if s.status != JobState::Processing {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(300) {
            bail!("job {job} still processing after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let done = sent.elapsed();
    if status.status != JobState::Completed {
        bail!(
            "job {job} ended {}: {:?} {:?}",
            status.status,
            status.error,
            status.errors
        );
    }
    let costs = sim.cost_log(DEFAULT_SHOP);
    let run_costs = &costs[costs_before..];
    let points: u32 = run_costs.iter().map(|c| c.actual).sum();
    if !sim.throttled(DEFAULT_SHOP).is_empty() {
        bail!("the client overdrew the bucket");
    }
    let drafts = sim.draft_orders(DEFAULT_SHOP);
    let total: u64 = drafts.iter().map(|d| d.total_cents()).sum();
    let expected = status
        .total
        .as_deref()
        .map(|t| t.replace('.', "").parse::<u64>())
        .transpose()?;
    if drafts.len() != status.drafts.len() || Some(total) != expected {
        bail!(
            "drafts do not add up: {} drafts, {total} vs {expected:?}",
            drafts.len()
        );
    }
    shutdown.cancel();
    loops.await?;
    server.abort();
    Ok(Run {
        first_response_ms: first_response.as_secs_f64() * 1000.0,
        done_s: done.as_secs_f64(),
        bound_s: (f64::from(points) - available).max(0.0) / BucketConfig::STANDARD.restore_rate,
        points,
        requests: run_costs.len(),
        parts: drafts.len(),
    })
}

/// Empties the shop's bucket through the shop's own client (so its pacer knows), as other
/// traffic of the shop would.
async fn drain(sim: &Simulator, shops: &Shops) -> Result<()> {
    let client = shops.client(&wholesail_bench::shop_domain(DEFAULT_SHOP))?;
    let write = [MetafieldsSetInput {
        owner_id: "gid://shopify/Shop/1".into(),
        namespace: "$app:bench".into(),
        key: "filler".into(),
        value: "1".into(),
        kind: "number_integer".into(),
        compare_digest: CompareDigest::Unchecked,
    }];
    while sim.throttle_status(DEFAULT_SHOP).currently_available >= 10 {
        client.metafields_set(&write).await?;
    }
    Ok(())
}
