//! `cargo xtask bench catalog [--variants N] [--rounds R]`: a full catalog resync of N variant
//! rows (default 1,000,000, with their products, inventory levels and metafields: ~1 GB of
//! JSONL) from the Shopify simulator, beside references measured in the same run:
//!
//! - **(a) the floor**: `psql \copy` of the same rows, already flattened to CSV files, into
//!   tables of the same shape as the run's staging tables (UNLOGGED, `LIKE catalog_stage_*`).
//!   The resync's *stage* phase (download + parse + binary COPY) is compared to it; the merge
//!   into the live tables (empty before each round: insert-only) is reported beside it.
//! - **(b) memory**: peak RSS (`VmHWM`) of the importing process at N/10 and N variants.
//! - **(c) the importer's own work**: parsing the same JSONL and encoding its binary COPY rows
//!   in process, without HTTP or PostgreSQL (what the stage would cost on an idle machine with
//!   free I/O).
//!
//! The importer is this binary re-executed with `--import` (the library's
//! `catalog::Runner::resync`, the code behind `origin catalog resync`), so its peak RSS is its
//! own; the simulator (generating the JSONL while serving it, ~1.6 s CPU per GB) runs in this
//! parent process on the same 2 cores. Needs `DATABASE_URL`; works in a scratch database
//! `wholesail_bench_catalog`. Medians of `--rounds` (default 3).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use secrecy::SecretString;
use shopify_simulator::catalog::{Owner, Row};
use shopify_simulator::{
    CatalogSpec, ChildOrder, Selection, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use wholesail_bench::{median, scratch_database};
use wholesail_origin::catalog::{copy, jsonl, Runner, Settings};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

const DB: &str = "wholesail_bench_catalog";

/// What one import child reports.
#[derive(Debug, Clone)]
struct Report {
    total_s: f64,
    stage_s: f64,
    merge_s: f64,
    lines: u64,
    bytes: u64,
    vmhwm_kb: u64,
    /// CPU time (user + system) of the importing process.
    cpu_s: f64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--import") {
        return import(&args[1], &args[2]);
    }
    let (mut variants, mut rounds) = (1_000_000u64, 3usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num =
            || -> Result<u64> { Ok(it.next().context("a number")?.replace('_', "").parse()?) };
        match a.as_str() {
            "--variants" => variants = num()?,
            "--rounds" => rounds = num()? as usize,
            other => {
                bail!("unknown argument {other:?}; usage: catalog [--variants N] [--rounds R]")
            }
        }
    }
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let db_url = format!("{}/{DB}", base.rsplit_once('/').context("DATABASE_URL")?.0);
    tokio::runtime::Runtime::new()?.block_on(run(&base, &db_url, variants, rounds.max(1)))
}

/// `--import <simulator url> <database url>`: one resync of the simulator's shop.
fn import(sim_url: &str, db_url: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(db_url)
            .await?;
        let runner = Runner::from_url(
            pool,
            db_url,
            Settings {
                poll_interval: Duration::from_millis(100),
                ..Settings::default()
            },
        )?;
        let client = AdminClient::new(AdminConfig::new(
            sim_url,
            "2026-01",
            SecretString::from(DEFAULT_TOKEN),
        ))?;
        let shop = wholesail_bench::shop_domain(DEFAULT_SHOP);
        let out = runner.resync(&client, &shop, &|_| {}).await?;
        anyhow::Ok(Report {
            total_s: out.import_time.as_secs_f64(),
            stage_s: out.stage_time.as_secs_f64(),
            merge_s: out.merge_time.as_secs_f64(),
            lines: out.run.lines_read as u64,
            bytes: out.run.bytes_read as u64,
            vmhwm_kb: 0,
            cpu_s: 0.0,
        })
    })?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let vmhwm_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let r = report;
    println!(
        "{}",
        serde_json::json!([
            r.total_s,
            r.stage_s,
            r.merge_s,
            r.lines,
            r.bytes,
            vmhwm_kb,
            cpu_seconds("/proc/self/stat")?
        ])
    );
    Ok(())
}

/// User + system CPU seconds of the process or thread whose `stat` file is `path`
/// (`/proc/self/stat`, `/proc/thread-self/stat`; 100 ticks per second).
fn cpu_seconds(path: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(path)?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/self/stat")?
        .1
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based, man 5 proc).
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// A catalog of about `variants` variants (8 per product on average).
fn spec(variants: u64) -> CatalogSpec {
    CatalogSpec::new(2026, (variants / 8).max(1))
}

/// Runs the importer child once on empty live tables.
async fn import_once(pool: &PgPool, sim: &Simulator, db_url: &str) -> Result<Report> {
    sqlx::query("TRUNCATE products, variants, inventory_levels, catalog_metafields, catalog_runs")
        .execute(pool)
        .await?;
    sqlx::query("CHECKPOINT").execute(pool).await?;
    let out = Command::new(std::env::current_exe()?)
        .args(["--import", sim.base_url(), db_url])
        .output()?;
    if !out.status.success() {
        bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: (f64, f64, f64, u64, u64, u64, f64) = serde_json::from_slice(&out.stdout)?;
    Ok(Report {
        total_s: v.0,
        stage_s: v.1,
        merge_s: v.2,
        lines: v.3,
        bytes: v.4,
        vmhwm_kb: v.5,
        cpu_s: v.6,
    })
}

async fn run(base: &str, db_url: &str, variants: u64, rounds: usize) -> Result<()> {
    let pool = scratch_database(base, DB, db_url, 2).await?;
    let big = spec(variants);
    let small = spec(variants / 10);
    let counts = big.counts(Selection::ALL);
    eprintln!(
        "catalog: {} products, {} variants, {} inventory levels, {} metafields",
        counts.products, counts.variants, counts.inventory_levels, counts.metafields
    );
    let mut config = SimulatorConfig::default();
    config.shops[0].catalog = small.clone();
    config.bulk.duration = Duration::from_millis(100);
    config.bulk.child_order = ChildOrder::Scattered { window: 1000 };
    let sim = Simulator::start(config).await?;

    // (b) memory at N/10.
    let small_report = import_once(&pool, &sim, db_url).await?;
    eprintln!("N/10 import: {small_report:?}");

    // (c) the importer's own work on the same file: parse + encode, in process, no I/O.
    let (parse_s, parse_bytes) = parse_and_encode(&big)?;
    eprintln!("parse + encode in process: {parse_s:.2} s CPU for {parse_bytes} bytes");

    // The resync at N and (a) the floor, psql \copy of the same rows as CSV into
    // same-shaped tables, interleaved round by round (the machine is shared and noisy).
    sim.set_catalog(DEFAULT_SHOP, big.clone());
    let dir = std::env::temp_dir().join("wholesail-catalog-bench");
    std::fs::create_dir_all(&dir)?;
    let csv_bytes = write_csv(&big, &dir)?;
    let (mut reports, mut copies) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let rep = import_once(&pool, &sim, db_url).await?;
        eprintln!("round {}: {rep:?}", r + 1);
        reports.push(rep);
        sqlx::query(
            "DROP TABLE IF EXISTS bench_copy_products, bench_copy_variants,
                 bench_copy_inventory_levels, bench_copy_metafields",
        )
        .execute(&pool)
        .await?;
        for k in KINDS {
            sqlx::query(&format!(
                "CREATE UNLOGGED TABLE bench_copy_{k} (LIKE catalog_stage_{k})"
            ))
            .execute(&pool)
            .await?;
        }
        sqlx::query("CHECKPOINT").execute(&pool).await?;
        let t = psql_copy(db_url, &dir)?;
        eprintln!("\\copy round {}: {:.2} s", r + 1, t.as_secs_f64());
        copies.push(t.as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);

    let stage = median(reports.iter().map(|r| r.stage_s).collect());
    let merge = median(reports.iter().map(|r| r.merge_s).collect());
    let total = median(reports.iter().map(|r| r.total_s).collect());
    // Each round's stage over the \copy of the same round: both met the same background load.
    let paired: Vec<f64> = reports
        .iter()
        .zip(&copies)
        .map(|(r, c)| r.stage_s / c)
        .collect();
    let paired_text: Vec<String> = paired.iter().map(|p| format!("{p:.2}×")).collect();
    let paired_median = median(paired);
    let copy = median(copies);
    let rows = counts.total() as f64;
    let bytes = reports[0].bytes as f64;
    let cpu = median(reports.iter().map(|r| r.cpu_s).collect());
    let rss_big = reports.iter().map(|r| r.vmhwm_kb).max().unwrap_or(0);
    println!();
    println!(
        "Catalog resync: {} variants ({} rows, {:.0} MB JSONL; CSV {:.0} MB), median of {rounds}, 2 cores",
        counts.variants,
        counts.total(),
        bytes / 1e6,
        csv_bytes as f64 / 1e6
    );
    println!();
    println!("| path | wall s | rows/s | MB/s (JSONL) | vs \\copy |");
    println!("|---|---|---|---|---|");
    println!(
        "| (a) `psql \\copy` CSV → staging (floor) | {copy:.2} | {:.0} | – | 1.00 |",
        rows / copy
    );
    println!(
        "| resync stage: download + parse + binary COPY → staging | {stage:.2} | {:.0} | {:.0} | {:.2}× |",
        rows / stage,
        bytes / 1e6 / stage,
        stage / copy
    );
    println!(
        "| resync merge (one transaction, empty live tables) | {merge:.2} | {:.0} | – | – |",
        rows / merge
    );
    println!(
        "| resync total (stage + merge) | {total:.2} | {:.0} | {:.0} | {:.2}× |",
        rows / total,
        bytes / 1e6 / total,
        total / copy
    );
    println!(
        "| (c) parse + binary-COPY encode only, in process (no I/O; CPU s) | {parse_s:.2} | {:.0} | {:.0} | {:.2}× |",
        rows / parse_s,
        parse_bytes as f64 / 1e6 / parse_s,
        parse_s / copy
    );
    println!();
    println!(
        "Stage / \\copy round by round: {} (median {paired_median:.2}×).",
        paired_text.join(", ")
    );
    println!();
    println!(
        "CPU of the importing process (parse, encode, HTTP; median): {cpu:.2} s of {total:.2} s wall; \
         the rest is PostgreSQL and the simulator generating the JSONL on the same 2 cores."
    );
    println!();
    println!("| (b) variants | JSONL MB | peak RSS of the importing process |");
    println!("|---|---|---|");
    println!(
        "| {} | {:.0} | {:.1} MB |",
        small.counts(Selection::ALL).variants,
        small_report.bytes as f64 / 1e6,
        small_report.vmhwm_kb as f64 / 1024.0
    );
    println!(
        "| {} | {:.0} | {:.1} MB |",
        counts.variants,
        bytes / 1e6,
        rss_big as f64 / 1024.0
    );
    println!();
    println!(
        "Goals: stage within 1.5× of \\copy: {}; peak RSS < 100 MB at both sizes: {}",
        if stage <= 1.5 * copy {
            "met"
        } else {
            "NOT met"
        },
        if small_report.vmhwm_kb.max(rss_big) < 100 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    if !sim.throttled(DEFAULT_SHOP).is_empty() {
        bail!("the client overdrew the simulator's cost bucket");
    }
    Ok(())
}

/// Parses every line of `spec`'s export and encodes it as binary COPY rows, the text
/// generated beforehand (1 GB in memory at 1M variants); returns the CPU seconds of the
/// parsing thread (less disturbed by other work on the machine than wall time) and the bytes.
fn parse_and_encode(spec: &CatalogSpec) -> Result<(f64, u64)> {
    let mut stream = spec.jsonl(Selection::ALL, ChildOrder::Scattered { window: 1000 });
    let mut chunks = Vec::new();
    loop {
        let mut text = Vec::with_capacity((4 << 20) + 4096);
        let more = stream.fill(&mut text, 4 << 20);
        chunks.push(text);
        if !more {
            break;
        }
    }
    let lines: Vec<&[u8]> = chunks
        .iter()
        .flat_map(|c| c.split(|b| *b == b'\n'))
        .filter(|l| !l.is_empty())
        .collect();
    let mut rows = BytesMut::with_capacity(8 << 20);
    let start = cpu_seconds("/proc/thread-self/stat")?;
    for (n, l) in lines.iter().enumerate() {
        copy::encode(&jsonl::parse(n as u64 + 1, l)?, &mut rows);
        if rows.len() > 4 << 20 {
            rows.clear();
        }
    }
    let took = cpu_seconds("/proc/thread-self/stat")? - start;
    Ok((took, chunks.iter().map(|c| c.len() as u64).sum()))
}

const KINDS: [&str; 4] = ["products", "variants", "inventory_levels", "metafields"];

/// Writes the catalog's rows as one CSV file per staging table; returns the bytes written.
fn write_csv(spec: &CatalogSpec, dir: &Path) -> Result<u64> {
    let open = |k: &str| -> Result<BufWriter<std::fs::File>> {
        Ok(BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(dir.join(format!("{k}.csv")))?,
        ))
    };
    let (mut p, mut v, mut l, mut m) = (
        open(KINDS[0])?,
        open(KINDS[1])?,
        open(KINDS[2])?,
        open(KINDS[3])?,
    );
    for row in spec.rows(Selection::ALL, ChildOrder::Grouped) {
        match row {
            Row::Product(r) => writeln!(
                p,
                "{},gid://shopify/Product/{},\"{}\",\"{}\",{},\"{}\",\"{}\",\"{}\",{}",
                r.id,
                r.id,
                r.title,
                r.handle,
                r.status.to_ascii_lowercase(),
                r.vendor,
                r.product_type,
                r.tags.join(", "),
                r.updated_at
            )?,
            Row::Variant(r) => writeln!(
                v,
                "{},{},\"{}\",\"{}\",\"{}\",{}.{:02},{},{},{},{}",
                r.id,
                r.product_id,
                r.sku,
                r.barcode,
                r.title,
                r.price_cents / 100,
                r.price_cents % 100,
                r.compare_at_price_cents
                    .map(|c| format!("{}.{:02}", c / 100, c % 100))
                    .unwrap_or_default(),
                r.position,
                r.inventory_item_id,
                r.updated_at
            )?,
            Row::InventoryLevel(r) => writeln!(
                l,
                "{},{},{},{},{}",
                r.variant_id, r.inventory_item_id, r.location_id, r.available, r.updated_at
            )?,
            Row::Metafield(r) => {
                let (kind, owner) = match r.owner {
                    Owner::Product(id) => ("Product", id),
                    Owner::Variant(id) => ("ProductVariant", id),
                };
                writeln!(
                    m,
                    "{},{kind},{owner},{},{},{},\"{}\"",
                    r.id, r.namespace, r.key, r.kind, r.value
                )?
            }
        }
    }
    let mut total = 0;
    for (mut w, k) in [(p, KINDS[0]), (v, KINDS[1]), (l, KINDS[2]), (m, KINDS[3])] {
        w.flush()?;
        total += std::fs::metadata(dir.join(format!("{k}.csv")))?.len();
    }
    Ok(total)
}

/// `psql \copy` of the four CSV files, one after the other; returns the wall time.
fn psql_copy(db_url: &str, dir: &Path) -> Result<Duration> {
    let cols = [
        "id, gid, title, handle, status, vendor, product_type, tags, updated_at",
        "id, product_id, sku, barcode, title, price, compare_at_price, position, inventory_item_id, updated_at",
        "variant_id, inventory_item_id, location_id, available, updated_at",
        "id, owner_type, owner_id, namespace, key, type, value",
    ];
    let mut cmd = Command::new("psql");
    cmd.args([db_url, "-q", "-v", "ON_ERROR_STOP=1"]);
    for (k, c) in KINDS.iter().zip(cols) {
        let file: PathBuf = dir.join(format!("{k}.csv"));
        cmd.arg("-c").arg(format!(
            "\\copy bench_copy_{k} ({c}) FROM '{}' WITH (FORMAT csv)",
            file.display()
        ));
    }
    let t = Instant::now();
    let out = cmd.output().context("psql")?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "psql \\copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}
