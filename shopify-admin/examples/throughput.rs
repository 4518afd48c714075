//! Measures, in one run: the simulator's JSONL generation rate (in process, and through HTTP
//! into the client's line reader), and the client's achieved cost points/s against the
//! simulator's bucket next to the lower bound the bucket implies.
//!
//! `cargo run --release -p wholesail-shopify-admin --example throughput -- [products]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use shopify_simulator::{
    BucketConfig, CatalogSpec, ChildOrder, Selection, Simulator, SimulatorConfig, DEFAULT_SHOP,
    DEFAULT_TOKEN,
};
use wholesail_shopify_admin::metafields::{CompareDigest, MetafieldsSetInput};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn client(sim: &Simulator) -> AdminClient {
    AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))
    .unwrap()
}

#[tokio::main]
async fn main() {
    let products: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let spec = CatalogSpec::new(1, products);
    let order = ChildOrder::Scattered { window: 1000 };

    // 1. Generation in process, 3 runs.
    let mut gen = Vec::new();
    let mut bytes = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let mut s = spec.jsonl(Selection::ALL, order);
        let mut buf = Vec::with_capacity(1 << 19);
        bytes = 0u64;
        while s.fill(&mut buf, 256 * 1024) {
            bytes += buf.len() as u64;
            buf.clear();
        }
        bytes += buf.len() as u64;
        gen.push(bytes as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    let counts = spec.counts(Selection::ALL);

    // 2. The same file through a bulk operation, HTTP and the client's line reader.
    let mut config = SimulatorConfig::default();
    config.shops[0].catalog = spec.clone();
    config.bulk.duration = Duration::from_millis(10);
    config.bulk.child_order = order;
    let sim = Simulator::start(config).await.unwrap();
    let c = client(&sim);
    let op = c
        .bulk_run_query("{ products { edges { node { id variants { edges { node { id inventoryItem { inventoryLevels { edges { node { id } } } } metafields { edges { node { id } } } } } } metafields { edges { node { id } } } } } } }", false)
        .await
        .unwrap();
    let done = c
        .wait_for_bulk_operation(&op.id, Duration::from_millis(50), Duration::from_secs(600))
        .await
        .unwrap();
    let mut http = Vec::new();
    let mut lines = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let mut r = c
            .download_jsonl(done.url.as_deref().unwrap(), &[])
            .await
            .unwrap();
        lines = 0u64;
        while r.next_line().await.unwrap().is_some() {
            lines += 1;
        }
        http.push(r.bytes_read() as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    assert_eq!(lines, counts.total());

    println!(
        "## JSONL generation ({products} products, {} variants, {} lines, {:.1} MB)",
        counts.variants,
        lines,
        bytes as f64 / 1e6
    );
    println!();
    println!("| path | MB/s (median of 3) |");
    println!("|---|---|");
    println!("| generate in process | {:.0} |", median(gen.clone()));
    println!(
        "| bulk URL → HTTP → client line reader | {:.0} |",
        median(http.clone())
    );
    println!(
        "| ratio HTTP / in process | {:.2} |",
        median(http) / median(gen)
    );
    println!();

    // 3. Client pacing: concurrent writers at full speed; lower bound = (points − bucket) / rate.
    println!("## Client pacing (8 concurrent writers, metafieldsSet = 10 points)");
    println!();
    println!("| plan | restore pts/s | bucket | points | wall s | lower bound s | achieved pts/s after the burst | bound / wall | throttled |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (plan, rate, size, points) in [
        ("Standard", 100.0, 2000.0, 4000u32),
        ("Plus", 1000.0, 1000.0, 12_000),
    ] {
        let config = SimulatorConfig {
            bucket: BucketConfig {
                maximum_available: size,
                restore_rate: rate,
            },
            ..SimulatorConfig::default()
        };
        let sim = Simulator::start(config).await.unwrap();
        let c = Arc::new(client(&sim));
        let per_worker = points / 10 / 8;
        let t = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..8u32 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_worker {
                    c.metafields_set(&[MetafieldsSetInput {
                        owner_id: format!("gid://shopify/ProductVariant/{}", w * 100_000 + i),
                        namespace: "$app:rules".into(),
                        key: "limits".into(),
                        value: "{\"max\":12}".into(),
                        kind: "json".into(),
                        compare_digest: CompareDigest::Unchecked,
                    }])
                    .await
                    .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let wall = t.elapsed().as_secs_f64();
        let spent: u32 = sim.cost_log(DEFAULT_SHOP).iter().map(|e| e.actual).sum();
        let bound = (f64::from(spent) - size) / rate;
        let after_burst = (f64::from(spent) - size) / wall;
        println!(
            "| {plan} | {rate:.0} | {size:.0} | {spent} | {wall:.2} | {bound:.2} | {after_burst:.0} | {:.2} | {} |",
            bound / wall,
            sim.throttled(DEFAULT_SHOP).len()
        );
    }
}
