//! `cargo xtask bench catalog [--variants N] [--rounds R]`: a full catalog resync of N variant
//! rows (default 1,000,000, with their products, inventory levels and metafields: ~1 GB of
//! JSONL) from the Shopify simulator, beside references measured in the same run:
//!
//! - **(a) the floors**: `psql \copy` of the same rows, already flattened to CSV files, (1)
//!   into tables of the same shape as the run's staging tables (UNLOGGED, `LIKE
//!   catalog_stage_*`): the resync's *stage* phase (download + parse + binary COPY) is
//!   compared to it; (2) into the live, indexed tables of the empty shop (with `shop` and
//!   `written_by`): the whole initial resync (stage + merge) is compared to it.
//! - **(d) resyncs after the first**, each on the catalog the previous one left: the unchanged
//!   export (must write nothing), then the export with ~1% of products, variants, inventory
//!   levels and metafields changed (the simulator's `changed_percent` drift; must write exactly
//!   those rows), each with its WAL (`pg_current_wal_lsn` before and after, a `CHECKPOINT`
//!   before each resync) beside the initial load's.
//!   The WAL's full-page images and records (`pg_stat_wal`, cluster-wide) are reported beside
//!   its bytes: after the `CHECKPOINT`, the first change to each page logs the whole page.
//!   The merge compresses its WAL as origin's `catalog.wal_compression` says (default `lz4`;
//!   the bench connects as a superuser, so it may); `--wal-compression <lz4|zstd|pglz|off>`
//!   sets another method, `off` leaves the server's setting (printed in the header).
//! - **(b) memory**: peak RSS (`VmHWM`) of the importing process at N/10 and N variants.
//! - **(c) the importer's own work**: parsing the same JSONL and encoding its binary COPY rows
//!   in process, without HTTP or PostgreSQL (what the stage would cost on an idle machine with
//!   free I/O).
//!
//! The importer is this binary re-executed with `--import` (the library's
//! `catalog::Runner::resync`, the code behind `origin catalog resync`), so its peak RSS is its
//! own. The simulator runs in this parent process on the same 2 cores; as Shopify does, it
//! writes each export to a file while the bulk operation runs (~1.6 s CPU per GB, before the
//! import starts) and serves that file, so the import shares the cores with PostgreSQL only,
//! as the `\copy` floors do. `--generate-while-serving` has it generate the JSONL again while
//! the import downloads it (the earlier setup: the generator's CPU competes with the import).
//! Needs `DATABASE_URL`; works in a scratch database `wholesail_bench_catalog`. Medians of
//! `--rounds` (default 3).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::BytesMut;
use secrecy::SecretString;
use shopify_simulator::catalog::{Owner, Row, RowCounts};
use shopify_simulator::{
    CatalogDrift, CatalogSpec, ChildOrder, Selection, Simulator, SimulatorConfig, DEFAULT_SHOP,
    DEFAULT_TOKEN,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use wholesail_bench::{median, scratch_database};
use wholesail_origin::catalog::digest::Digests;
use wholesail_origin::catalog::{copy, jsonl, Runner, Settings};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

const DB: &str = "wholesail_bench_catalog";

/// What one import child reports.
#[derive(Debug, Clone)]
struct Report {
    run: i64,
    total_s: f64,
    stage_s: f64,
    merge_s: f64,
    /// After a direct load's commit: its digests stored, the live tables analysed (not in
    /// `total_s`).
    after_commit_s: f64,
    /// CPU of this process (the simulator writing, then serving the export) during the resync.
    simulator_cpu_s: f64,
    lines: u64,
    bytes: u64,
    vmhwm_kb: u64,
    /// CPU time (user + system) of the importing process.
    cpu_s: f64,
    /// Loaded straight into the live tables (no staging): the stage is the load, the merge
    /// its checks.
    direct: bool,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--import") {
        return import(&args[1], &args[2], args.get(3).map(String::as_str));
    }
    let (mut variants, mut rounds) = (1_000_000u64, 3usize);
    let mut wal_compression = None;
    let mut generate_while_serving = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num =
            || -> Result<u64> { Ok(it.next().context("a number")?.replace('_', "").parse()?) };
        match a.as_str() {
            "--variants" => variants = num()?,
            "--rounds" => rounds = num()? as usize,
            "--wal-compression" => {
                wal_compression = Some(it.next().context("a wal_compression method")?.clone())
            }
            "--generate-while-serving" => generate_while_serving = true,
            other => {
                bail!("unknown argument {other:?}; usage: catalog [--variants N] [--rounds R] [--wal-compression M] [--generate-while-serving]")
            }
        }
    }
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let db_url = format!("{}/{DB}", base.rsplit_once('/').context("DATABASE_URL")?.0);
    let bench = Bench {
        db_url,
        wal_compression,
        generate_while_serving,
    };
    tokio::runtime::Runtime::new()?.block_on(run(&base, &bench, variants, rounds.max(1)))
}

/// Where the importer children connect, and how.
struct Bench {
    db_url: String,
    /// `--wal-compression` (`None`: origin's default; `off`: the server's setting).
    wal_compression: Option<String>,
    /// The simulator generates each export while serving it instead of writing it first.
    generate_while_serving: bool,
}

/// `--import <simulator url> <database url> [wal_compression]`: one resync of the simulator's
/// shop.
fn import(sim_url: &str, db_url: &str, wal_compression: Option<&str>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(db_url)
            .await?;
        let defaults = Settings::default();
        let runner = Runner::from_url(
            pool,
            db_url,
            Settings {
                poll_interval: Duration::from_millis(100),
                wal_compression: match wal_compression {
                    None => defaults.wal_compression.clone(),
                    Some("off") => None,
                    Some(m) => Some(m.to_owned()),
                },
                ..defaults
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
            run: out.run.id,
            total_s: out.import_time.as_secs_f64(),
            stage_s: out.stage_time.as_secs_f64(),
            merge_s: out.merge_time.as_secs_f64(),
            after_commit_s: out.after_commit_time.as_secs_f64(),
            simulator_cpu_s: 0.0,
            lines: out.run.lines_read as u64,
            bytes: out.run.bytes_read as u64,
            vmhwm_kb: 0,
            cpu_s: 0.0,
            direct: out.run.direct == Some(true),
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
            r.run,
            r.total_s,
            r.stage_s,
            r.merge_s,
            r.lines,
            r.bytes,
            vmhwm_kb,
            cpu_seconds("/proc/self/stat")?,
            r.direct,
            r.after_commit_s
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

/// Empties the live catalog tables and the runs.
async fn truncate_live(pool: &PgPool) -> Result<()> {
    sqlx::query("TRUNCATE products, variants, inventory_levels, catalog_metafields, catalog_runs")
        .execute(pool)
        .await?;
    Ok(())
}

/// WAL bytes written since `from` (a `pg_current_wal_lsn()` as text).
async fn wal_since(pool: &PgPool, from: &str) -> Result<u64> {
    let bytes: f64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8")
            .bind(from)
            .fetch_one(pool)
            .await?;
    Ok(bytes as u64)
}

async fn wal_lsn(pool: &PgPool) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await?)
}

/// The cluster's WAL counters (`pg_stat_wal`): (records, full-page images).
async fn wal_counters(pool: &PgPool) -> Result<(i64, i64)> {
    Ok(
        sqlx::query_as("SELECT wal_records, wal_fpi FROM pg_stat_wal")
            .fetch_one(pool)
            .await?,
    )
}

/// One resync of the simulator's current catalog over whatever the live tables hold, after a
/// `CHECKPOINT`; returns the child's report, the WAL bytes, records and full-page images,
/// and the rows the run wrote (its own count, and the live rows carrying its `written_by`).
async fn resync(pool: &PgPool, sim: &Simulator, bench: &Bench) -> Result<Resync> {
    sqlx::query("CHECKPOINT").execute(pool).await?;
    let lsn = wal_lsn(pool).await?;
    let (records, fpi) = wal_counters(pool).await?;
    let report = import_once(sim, bench).await?;
    let wal = wal_since(pool, &lsn).await?;
    let (records_after, fpi_after) = wal_counters(pool).await?;
    let (inserted, updated, deleted): (i64, i64, i64) =
        sqlx::query_as("SELECT inserted, updated, deleted FROM catalog_runs WHERE id = $1")
            .bind(report.run)
            .fetch_one(pool)
            .await?;
    let tagged: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM products WHERE written_by = $1)
              + (SELECT count(*) FROM variants WHERE written_by = $1)
              + (SELECT count(*) FROM inventory_levels WHERE written_by = $1)
              + (SELECT count(*) FROM catalog_metafields WHERE written_by = $1)",
    )
    .bind(format!("catalog_run:{}", report.run))
    .fetch_one(pool)
    .await?;
    Ok(Resync {
        report,
        wal,
        wal_records: (records_after - records) as u64,
        wal_fpi: (fpi_after - fpi) as u64,
        written: (inserted + updated + deleted) as u64,
        tagged: tagged as u64,
    })
}

/// One resync and what it cost.
#[derive(Debug, Clone)]
struct Resync {
    report: Report,
    /// WAL bytes between the start and the end of the resync.
    wal: u64,
    /// WAL records and full-page images written meanwhile (cluster-wide).
    wal_records: u64,
    wal_fpi: u64,
    /// Rows the run reports inserted + updated + deleted.
    written: u64,
    /// Live rows whose `written_by` names the run.
    tagged: u64,
}

/// Runs the importer child once.
async fn import_once(sim: &Simulator, bench: &Bench) -> Result<Report> {
    let cpu_before = cpu_seconds("/proc/self/stat")?;
    let out = Command::new(std::env::current_exe()?)
        .args(["--import", sim.base_url(), &bench.db_url])
        .args(&bench.wal_compression)
        .output()?;
    if !out.status.success() {
        bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: (i64, f64, f64, f64, u64, u64, u64, f64, bool, f64) =
        serde_json::from_slice(&out.stdout)?;
    Ok(Report {
        run: v.0,
        total_s: v.1,
        stage_s: v.2,
        merge_s: v.3,
        lines: v.4,
        bytes: v.5,
        vmhwm_kb: v.6,
        cpu_s: v.7,
        direct: v.8,
        after_commit_s: v.9,
        simulator_cpu_s: cpu_seconds("/proc/self/stat")? - cpu_before,
    })
}

/// Everything one round measures, in this order.
#[derive(Debug, Clone)]
struct Round {
    /// `psql \copy` into staging-shaped tables, s.
    copy_stage: f64,
    /// `psql \copy` into the empty shop's live tables, s.
    copy_live: f64,
    /// The first resync into the empty shop.
    initial: Resync,
    /// The resync of the same export.
    unchanged: Resync,
    /// The resync of the export with ~1% changed.
    changed: Resync,
}

async fn run(base: &str, bench: &Bench, variants: u64, rounds: usize) -> Result<()> {
    let db_url = bench.db_url.as_str();
    let pool = scratch_database(base, DB, db_url, 2).await?;
    let big = spec(variants);
    let small = spec(variants / 10);
    let mut drifted = big.clone();
    drifted.drift = std::sync::Arc::new(CatalogDrift {
        changed_percent: 1,
        ..CatalogDrift::default()
    });
    let counts = big.counts(Selection::ALL);
    let expected_changed = changed_rows(&big, &drifted);
    eprintln!(
        "catalog: {} products, {} variants, {} inventory levels, {} metafields; {expected_changed} rows differ in the 1% export",
        counts.products, counts.variants, counts.inventory_levels, counts.metafields
    );
    let dir = std::env::temp_dir().join("wholesail-catalog-bench");
    std::fs::create_dir_all(&dir)?;
    let mut config = SimulatorConfig::default();
    config.shops[0].catalog = small.clone();
    config.bulk.duration = Duration::from_millis(100);
    config.bulk.child_order = ChildOrder::Scattered { window: 1000 };
    if !bench.generate_while_serving {
        config.bulk.result_dir = Some(dir.join("results"));
    }
    let sim = Simulator::start(config).await?;

    // (b) memory at N/10.
    truncate_live(&pool).await?;
    let small_report = resync(&pool, &sim, bench).await?.report;
    eprintln!("N/10 import: {small_report:?}");

    // (c) the importer's own work on the same file: parse + encode, in process, no I/O.
    let (parse_s, digest_s, parse_bytes) = parse_and_encode(&big)?;
    eprintln!(
        "parse + encode in process: {parse_s:.2} s CPU for {parse_bytes} bytes; \
         + digests: {digest_s:.2} s ({:.2}×)",
        digest_s / parse_s
    );

    // The resyncs at N and (a) the floors, psql \copy of the same rows as CSV, interleaved
    // round by round (the machine is shared and noisy).
    let csv_bytes = write_csv(&big, &dir)?;
    let mut done = Vec::new();
    for r in 0..rounds {
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
        let copy_stage = psql_copy(db_url, &dir, STAGE_TABLES)?.as_secs_f64();
        truncate_live(&pool).await?;
        sqlx::query("CHECKPOINT").execute(&pool).await?;
        let copy_live = psql_copy(db_url, &dir, LIVE_TABLES)?.as_secs_f64();
        eprintln!(
            "\\copy round {}: staging {copy_stage:.2} s, live {copy_live:.2} s",
            r + 1
        );

        truncate_live(&pool).await?;
        sim.set_catalog(DEFAULT_SHOP, big.clone());
        let initial = resync(&pool, &sim, bench).await?;
        eprintln!("round {} initial: {initial:?}", r + 1);
        let unchanged = resync(&pool, &sim, bench).await?;
        eprintln!("round {} unchanged: {unchanged:?}", r + 1);
        sim.set_catalog(DEFAULT_SHOP, drifted.clone());
        let changed = resync(&pool, &sim, bench).await?;
        eprintln!("round {} 1% changed: {changed:?}", r + 1);
        done.push(Round {
            copy_stage,
            copy_live,
            initial,
            unchanged,
            changed,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "wal_compression of the merge (origin's catalog.wal_compression): {}",
        match bench.wal_compression.as_deref() {
            None => format!(
                "origin's default ({})",
                Settings::default().wal_compression.unwrap_or_default()
            ),
            Some("off") => "the server's setting".to_owned(),
            Some(m) => m.to_owned(),
        }
    );
    println!(
        "the simulator's export: {}",
        if bench.generate_while_serving {
            "generated while the import downloads it"
        } else {
            "written while the bulk operation ran, served from the file"
        }
    );
    report(
        &done,
        &counts,
        expected_changed,
        csv_bytes,
        &InProcess {
            parse_s,
            digest_s,
            bytes: parse_bytes,
        },
        rounds,
    )?;

    println!();
    println!("| (b) variants | JSONL MB | peak RSS of the importing process |");
    println!("|---|---|---|");
    println!(
        "| {} | {:.0} | {:.1} MB |",
        small.counts(Selection::ALL).variants,
        small_report.bytes as f64 / 1e6,
        small_report.vmhwm_kb as f64 / 1024.0
    );
    let rss_big = done
        .iter()
        .map(|r| r.initial.report.vmhwm_kb)
        .max()
        .unwrap_or(0);
    println!(
        "| {} | {:.0} | {:.1} MB |",
        counts.variants,
        done[0].initial.report.bytes as f64 / 1e6,
        rss_big as f64 / 1024.0
    );
    println!();
    println!(
        "Peak RSS < 100 MB at both sizes: {}",
        met(small_report.vmhwm_kb.max(rss_big) < 100 * 1024)
    );
    if !sim.throttled(DEFAULT_SHOP).is_empty() {
        bail!("the client overdrew the simulator's cost bucket");
    }
    Ok(())
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The importer's CPU on the whole export, in process (`parse_and_encode`).
struct InProcess {
    /// Parse + encode, CPU seconds.
    parse_s: f64,
    /// The same with the digests.
    digest_s: f64,
    /// The export's bytes.
    bytes: u64,
}

/// Prints the rounds' medians as tables, with the goals.
fn report(
    done: &[Round],
    counts: &RowCounts,
    expected_changed: u64,
    csv_bytes: u64,
    in_process: &InProcess,
    rounds: usize,
) -> Result<()> {
    let &InProcess {
        parse_s,
        digest_s,
        bytes: parse_bytes,
    } = in_process;
    let med = |f: &dyn Fn(&Round) -> f64| median(done.iter().map(f).collect());
    let copy = med(&|r| r.copy_stage);
    let live = med(&|r| r.copy_live);
    let stage = med(&|r| r.initial.report.stage_s);
    let merge = med(&|r| r.initial.report.merge_s);
    let total = med(&|r| r.initial.report.total_s);
    let rows = counts.total() as f64;
    let bytes = done[0].initial.report.bytes as f64;
    println!();
    println!(
        "Catalog resync: {} variants ({} rows, {:.0} MB JSONL; CSV {:.0} MB), median of {rounds}, 2 cores",
        counts.variants,
        counts.total(),
        bytes / 1e6,
        csv_bytes as f64 / 1e6
    );
    println!();
    println!("| path | wall s | rows/s | MB/s (JSONL) | vs staging \\copy | vs live \\copy |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| (a1) `psql \\copy` CSV → staging tables (stage floor) | {copy:.2} | {:.0} | – | 1.00 | – |",
        rows / copy
    );
    println!(
        "| (a2) `psql \\copy` CSV → live, indexed tables of the empty shop (live floor) | {live:.2} | {:.0} | – | – | 1.00 |",
        rows / live
    );
    // The first resync of the empty shop loads the live tables directly, unless it met a
    // webhook's row (the bench sends none) and went through staging.
    let (stage_name, merge_name) = if done.iter().all(|r| r.initial.report.direct) {
        (
            "resync direct load: download + parse + binary COPY → live tables",
            "resync checks and commit (same transaction), empty shop",
        )
    } else {
        (
            "resync stage: download + parse + binary COPY → staging",
            "resync merge (one transaction, empty shop)",
        )
    };
    println!(
        "| {stage_name} | {stage:.2} | {:.0} | {:.0} | {:.2}× | – |",
        rows / stage,
        bytes / 1e6 / stage,
        stage / copy
    );
    println!(
        "| {merge_name} | {merge:.2} | {:.0} | – | – | – |",
        rows / merge
    );
    println!(
        "| resync total (stage + merge), empty shop | {total:.2} | {:.0} | {:.0} | {:.2}× | {:.2}× |",
        rows / total,
        bytes / 1e6 / total,
        total / copy,
        total / live
    );
    let after_commit = med(&|r| r.initial.report.after_commit_s);
    if after_commit > 0.0 {
        println!(
            "| after the commit (the run completed, the catalog live): digests stored, live tables analysed | {after_commit:.2} | – | – | – | – |"
        );
        let returned = total + after_commit;
        println!(
            "| until `resync` returns (total + after the commit) | {returned:.2} | – | – | {:.2}× | {:.2}× |",
            returned / copy,
            returned / live
        );
    }
    println!(
        "| (c) parse + binary-COPY encode only, in process (no I/O; CPU s) | {parse_s:.2} | {:.0} | {:.0} | {:.2}× | – |",
        rows / parse_s,
        parse_bytes as f64 / 1e6 / parse_s,
        parse_s / copy
    );
    println!(
        "| (c) the same + digests (XXH3 per line, summed per variant and product; CPU s) | {digest_s:.2} | {:.0} | {:.0} | {:.2}× | – |",
        rows / digest_s,
        parse_bytes as f64 / 1e6 / digest_s,
        digest_s / copy
    );
    let paired = |f: &dyn Fn(&Round) -> f64| -> String {
        done.iter()
            .map(|r| format!("{:.2}×", f(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    println!(
        "Round by round: stage / staging \\copy {}; initial total / live \\copy {}.",
        paired(&|r| r.initial.report.stage_s / r.copy_stage),
        paired(&|r| r.initial.report.total_s / r.copy_live)
    );
    let cpu = med(&|r| r.initial.report.cpu_s);
    println!(
        "CPU of the importing process (parse, encode, HTTP; median): {cpu:.2} s of {total:.2} s wall."
    );
    let served = med(&|r| r.initial.report.simulator_cpu_s);
    println!(
        "CPU of the simulator on the same 2 cores during the resync (median; writing the export before the import, ~1.6 s a GB, then serving it; psql's floor reads a local file): {served:.2} s."
    );

    let wal0 = med(&|r| r.initial.wal as f64);
    println!();
    println!("| resync | stage s | merge s | total s | total ÷ own stage | rows written (run / tagged) | WAL MB | WAL ÷ initial | WAL records | full-page images |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let line = |name: &str, f: &dyn Fn(&Round) -> &Resync| {
        let st = med(&|r| f(r).report.stage_s);
        let mg = med(&|r| f(r).report.merge_s);
        let tt = med(&|r| f(r).report.total_s);
        let ratio = med(&|r| f(r).report.total_s / f(r).report.stage_s);
        let wal = med(&|r| f(r).wal as f64);
        let records = med(&|r| f(r).wal_records as f64);
        let fpi = med(&|r| f(r).wal_fpi as f64);
        let written = f(&done[0]).written;
        let tagged = f(&done[0]).tagged;
        println!(
            "| {name} | {st:.2} | {mg:.2} | {tt:.2} | {ratio:.2}× | {written} / {tagged} | {:.1} | {:.3} | {records:.0} | {fpi:.0} |",
            wal / 1e6,
            wal / wal0
        );
    };
    line("initial (empty shop)", &|r| &r.initial);
    line("unchanged export", &|r| &r.unchanged);
    line(
        &format!("1% changed ({expected_changed} rows differ)"),
        &|r| &r.changed,
    );

    let initial_ratio = total / live;
    let unchanged_ratio = med(&|r| r.unchanged.report.total_s / r.unchanged.report.stage_s);
    let changed_ratio = med(&|r| r.changed.report.total_s / r.changed.report.stage_s);
    let changed_wal = med(&|r| r.changed.wal as f64) / wal0;
    let unchanged_zero = done
        .iter()
        .all(|r| r.unchanged.written == 0 && r.unchanged.tagged == 0);
    let changed_exact = done
        .iter()
        .all(|r| r.changed.written == expected_changed && r.changed.tagged == expected_changed);
    println!();
    println!("| goal (1M variants) | measured | |");
    println!("|---|---|---|");
    // A direct initial load has no staging step: the unchanged resync's stage is judged.
    let (staged, which) = if done.iter().all(|r| r.initial.report.direct) {
        (
            med(&|r| r.unchanged.report.stage_s),
            " (the unchanged resync's)",
        )
    } else {
        (stage, "")
    };
    println!(
        "| stage{which} ≤ 1.5× staging \\copy | {:.2}× | {} |",
        staged / copy,
        met(staged <= 1.5 * copy)
    );
    println!(
        "| initial resync total ≤ 1.1× live \\copy | {initial_ratio:.2}× | {} |",
        met(initial_ratio <= 1.1)
    );
    println!(
        "| unchanged resync ≤ 1.3× its stage | {unchanged_ratio:.2}× | {} |",
        met(unchanged_ratio <= 1.3)
    );
    println!(
        "| unchanged resync writes 0 rows | {} | {} |",
        done.iter()
            .map(|r| r.unchanged.written.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        met(unchanged_zero)
    );
    println!(
        "| 1% resync ≤ 2× its stage | {changed_ratio:.2}× | {} |",
        met(changed_ratio <= 2.0)
    );
    println!(
        "| 1% resync writes exactly the {expected_changed} changed rows | {} | {} |",
        done.iter()
            .map(|r| r.changed.written.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        met(changed_exact)
    );
    println!(
        "| 1% resync WAL ≤ 5% of the initial load's | {:.1}% | {} |",
        changed_wal * 100.0,
        met(changed_wal <= 0.05)
    );
    Ok(())
}

/// Rows of `after` that differ from `before` (same shape: only values change).
fn changed_rows(before: &CatalogSpec, after: &CatalogSpec) -> u64 {
    before
        .rows(Selection::ALL, ChildOrder::Grouped)
        .zip(after.rows(Selection::ALL, ChildOrder::Grouped))
        .filter(|(a, b)| a != b)
        .count() as u64
}

/// Parses every line of `spec`'s export and encodes it as binary COPY rows, the text
/// generated beforehand (1 GB in memory at 1M variants); returns the CPU seconds of the
/// parsing thread (less disturbed by other work on the machine than wall time) and the bytes.
/// CPU seconds of parsing and encoding every line of `spec`'s export, then of the same with
/// the digests the importer also sums (a second pass), and the export's bytes.
fn parse_and_encode(spec: &CatalogSpec) -> Result<(f64, f64, u64)> {
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
    let mut took = [0.0; 2];
    for (pass, took) in took.iter_mut().enumerate() {
        let mut digests = (pass == 1).then(Digests::default);
        let start = cpu_seconds("/proc/thread-self/stat")?;
        for (n, l) in lines.iter().enumerate() {
            let record = jsonl::parse(n as u64 + 1, l)?;
            if let Some(d) = &mut digests {
                d.add(&record, l);
            }
            copy::encode(&record, &mut rows);
            if rows.len() > 4 << 20 {
                rows.clear();
            }
        }
        let summed = digests.and_then(Digests::finish);
        *took = cpu_seconds("/proc/thread-self/stat")? - start;
        ensure!(
            pass == 0 || summed.is_some(),
            "the export's lines were not all attributed"
        );
    }
    Ok((
        took[0],
        took[1],
        chunks.iter().map(|c| c.len() as u64).sum(),
    ))
}

const KINDS: [&str; 4] = ["products", "variants", "inventory_levels", "metafields"];

/// The `\copy` targets of one floor: `(CSV file stem, table, columns)` per kind.
type Targets = [(&'static str, &'static str, &'static str); 4];

/// Staging-shaped tables (`bench_copy_<kind>`, `LIKE catalog_stage_<kind>`).
const STAGE_TABLES: Targets = [
    (
        "products",
        "bench_copy_products",
        "id, gid, title, handle, status, vendor, product_type, tags, updated_at",
    ),
    (
        "variants",
        "bench_copy_variants",
        "id, product_id, sku, barcode, title, price, compare_at_price, position, inventory_item_id, updated_at",
    ),
    (
        "inventory_levels",
        "bench_copy_inventory_levels",
        "variant_id, inventory_item_id, location_id, available, updated_at",
    ),
    (
        "metafields",
        "bench_copy_metafields",
        "id, owner_type, owner_id, namespace, key, type, value",
    ),
];

/// The live tables, with every column the merge writes.
const LIVE_TABLES: Targets = [
    (
        "live_products",
        "products",
        "shop, id, admin_graphql_api_id, title, handle, status, vendor, product_type, tags, source_updated_at, written_by",
    ),
    (
        "live_variants",
        "variants",
        "shop, id, product_id, sku, barcode, title, price, compare_at_price, position, inventory_item_id, source_updated_at, written_by",
    ),
    (
        "live_inventory_levels",
        "inventory_levels",
        "shop, inventory_item_id, location_id, available, source_updated_at, source_digest, written_by",
    ),
    (
        "live_metafields",
        "catalog_metafields",
        "shop, owner_type, owner_id, namespace, key, metafield_id, type, value, written_by",
    ),
];

/// Writes the catalog's rows as CSV files, one per staging table and one per live table (the
/// same values, with `shop` and `written_by`); returns the bytes of the staging files.
fn write_csv(spec: &CatalogSpec, dir: &Path) -> Result<u64> {
    let open = |k: &str| -> Result<BufWriter<std::fs::File>> {
        Ok(BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(dir.join(format!("{k}.csv")))?,
        ))
    };
    let mut stage = [
        open(KINDS[0])?,
        open(KINDS[1])?,
        open(KINDS[2])?,
        open(KINDS[3])?,
    ];
    let mut live = [
        open(LIVE_TABLES[0].0)?,
        open(LIVE_TABLES[1].0)?,
        open(LIVE_TABLES[2].0)?,
        open(LIVE_TABLES[3].0)?,
    ];
    let (shop, by) = (DEFAULT_SHOP, "catalog_run:0");
    let mut line = String::new();
    for row in spec.rows(Selection::ALL, ChildOrder::Grouped) {
        use std::fmt::Write as _;
        line.clear();
        match row {
            Row::Product(r) => {
                write!(
                    line,
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
                )?;
                writeln!(stage[0], "{line}")?;
                writeln!(live[0], "{shop},{line},{by}")?;
            }
            Row::Variant(r) => {
                write!(
                    line,
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
                )?;
                writeln!(stage[1], "{line}")?;
                writeln!(live[1], "{shop},{line},{by}")?;
            }
            Row::InventoryLevel(r) => {
                writeln!(
                    stage[2],
                    "{},{},{},{},{}",
                    r.variant_id, r.inventory_item_id, r.location_id, r.available, r.updated_at
                )?;
                writeln!(
                    live[2],
                    "{shop},{},{},{},{},0,{by}",
                    r.inventory_item_id, r.location_id, r.available, r.updated_at
                )?;
            }
            Row::Metafield(r) => {
                let (kind, owner) = match r.owner {
                    Owner::Product(id) => ("Product", id),
                    Owner::Variant(id) => ("ProductVariant", id),
                };
                writeln!(
                    stage[3],
                    "{},{kind},{owner},{},{},{},\"{}\"",
                    r.id, r.namespace, r.key, r.kind, r.value
                )?;
                writeln!(
                    live[3],
                    "{shop},{kind},{owner},{},{},{},{},\"{}\",{by}",
                    r.namespace, r.key, r.id, r.kind, r.value
                )?;
            }
        }
    }
    for w in stage.iter_mut().chain(live.iter_mut()) {
        w.flush()?;
    }
    let mut total = 0;
    for k in KINDS {
        total += std::fs::metadata(dir.join(format!("{k}.csv")))?.len();
    }
    Ok(total)
}

/// `psql \copy` of the four CSV files into `targets`, one after the other; returns the wall
/// time.
fn psql_copy(db_url: &str, dir: &Path, targets: Targets) -> Result<Duration> {
    let mut cmd = Command::new("psql");
    cmd.args([db_url, "-q", "-v", "ON_ERROR_STOP=1"]);
    for (file, table, cols) in targets {
        let file: PathBuf = dir.join(format!("{file}.csv"));
        cmd.arg("-c").arg(format!(
            "\\copy {table} ({cols}) FROM '{}' WITH (FORMAT csv)",
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
