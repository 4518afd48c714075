//! `cargo xtask bench <name>`: runs one benchmark and prints its figures beside the reference
//! measured in the same run.

use anyhow::{bail, Result};

use crate::shell::{self, cmd};
use crate::{edge, function, postgres, setup};

/// The benchmarks, with what each measures.
const BENCHES: &[(&str, &str)] = &[
    (
        "strip",
        "allowlist stripping: size reduction and MB/s on a 500-line order",
    ),
    (
        "edge",
        "edge worker in workerd: ack latency and throughput vs a JavaScript worker",
    ),
    (
        "edge-parse",
        "one pass over an order body in wasm (V8): the edge's stripper, serde_json's and simd-json's parses vs JSON.parse",
    ),
    (
        "rules",
        "Shopify Function: wasm size, native µs per cart, wasm instructions per line vs the limit",
    ),
    (
        "origin",
        "origin intake, processing and a storm vs raw PostgreSQL",
    ),
    (
        "shopify",
        "simulator JSONL MB/s and the Admin client's points/s vs the restore rate",
    ),
    (
        "handlers",
        "topic handlers: a 500-line order applied vs a plain multi-row INSERT",
    ),
    (
        "draft-orders",
        "quote → linked draft orders (500/1,200/5,000 lines) vs the cost bucket's lower bound; first response",
    ),
    (
        "rules-push",
        "rules push of 10,000 buyers × 100,000 variants: metafieldsSet calls vs minimum, wall vs the bucket's bound",
    ),
    (
        "inbox-retention",
        "inbox purge of 500k expired done rows: batched DELETE vs a day-partitioned inbox's DROP",
    ),
    (
        "matching",
        "duplicate matcher: precision/recall/review rate on the seeded test set vs email-only; companies/s at 1k and 100k Accounts",
    ),
    (
        "salesforce",
        "Salesforce sync of 100,000 orders: API calls vs the minimum, orders/hour vs the daily budget; lag at 50% load; quote to cash vs the draft-order job",
    ),
    (
        "reconcile",
        "reconciliation of webhook subscriptions vs the listing alone, 100,000 orders and 1M inventory levels with 0.1% drift vs the bulk export alone; rows written",
    ),
    (
        "console",
        "operations console with 1M inbox rows and 10k problems: pages, trace lookup and scrape p50/p99 vs GET /livez and the goals",
    ),
    (
        "catalog",
        "catalog resync of 1M variants from the simulator vs psql \\copy; peak RSS at 100k and 1M",
    ),
];

/// Runs the benchmark named by `args[0]`, or lists them.
pub fn run(args: &[&str]) -> Result<()> {
    let Some((name, rest)) = args.split_first() else {
        eprintln!("benchmarks:");
        for (n, what) in BENCHES {
            eprintln!("  {n:<12} {what}");
        }
        return Ok(());
    };
    setup::run()?;
    match *name {
        "strip" => bench_bin("strip", rest),
        "matching" => bench_bin("matching", rest),
        "rules" => function::build_and_check().and_then(|()| bench_bin("rules", rest)),
        "edge" => edge::bench(),
        "edge-parse" => edge::bench_parse(),
        "shopify" => shell::run(&mut cmd(
            "cargo",
            &[
                "run",
                "--release",
                "-p",
                "wholesail-shopify-admin",
                "--example",
                "throughput",
                "--",
                "125000",
            ],
        )),
        "origin" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("origin-bench", rest)
        }
        "rules-push" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("rules_push", rest)
        }
        "catalog" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("catalog", rest)
        }
        "handlers" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("handlers", rest)
        }
        "inbox-retention" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("inbox_retention", rest)
        }
        "draft-orders" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("draft_orders", rest)
        }
        "salesforce" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("salesforce", rest)
        }
        "reconcile" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("reconcile", rest)
        }
        "console" => {
            let url = postgres::ensure()?;
            std::env::set_var("DATABASE_URL", url);
            bench_bin("console", rest)
        }
        other => bail!("unknown benchmark {other:?}; `cargo xtask bench` lists them"),
    }
}

/// Runs `bench/src/bin/<name>.rs` in release mode.
fn bench_bin(name: &str, args: &[&str]) -> Result<()> {
    let mut all = vec![
        "run",
        "--release",
        "-p",
        "wholesail-bench",
        "--bin",
        name,
        "--",
    ];
    all.extend_from_slice(args);
    shell::run(&mut cmd("cargo", &all))
}
