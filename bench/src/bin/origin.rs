//! `cargo xtask bench origin`: the origin service end to end, each figure beside a reference
//! measured in the same run.
//!
//! 1. **Intake**: events/s accepted through `POST /internal/webhooks` (signed, batches of 100
//!    and single envelopes, 4 requests in flight) against a raw sqlx client inserting the same
//!    rows (the columns origin writes, body digest included) with `ON CONFLICT DO NOTHING` on
//!    the inbox's unique key in same-sized transactions (4 connections), twice: with sqlx's
//!    default pool (a ping per acquire) and with origin's pool settings
//!    (`app::pool_options`: a ping only after 1 s idle); the goal is judged against the
//!    faster of the two. Every delivery is its
//!    own order, so every body and digest differs as in Shopify's traffic (a body repeated
//!    across deliveries makes origin's body guard read every earlier row with that digest).
//!    The inbox holds a backlog of 100,000 done rows and has statistics, as in service; each
//!    run's rows are deleted after it. Workers off, so only intake is measured; origin must
//!    store every item pending (none quarantined). Median of 3 interleaved runs.
//!    `--intake-only` runs this part alone.
//! 2. **Processing**: 500-line orders committed to the inbox in one transaction, then timed
//!    until the workers have applied them all (events/s). **Lag**: the p50/p99 lag from
//!    intake to applied (`processed_at − inserted_at`) when the same orders arrive through
//!    HTTP at 50% of that rate.
//! 3. **Storm**: `--storm N` deliveries (default 100,000): 90% unique (two versions of each
//!    order: create and update), 10% redeliveries of the same webhook id, 5% out of order
//!    (updates before their create), sent in batches of 100 while origin is SIGKILLed and
//!    restarted half-way (senders retry like the edge). Reports the time to drain and the
//!    deadlocks PostgreSQL detected, and checks zero lost / zero duplicated / final state
//!    against the generator's ground truth. `--storm-only` runs this part alone.
//!
//! The origin under test is this binary re-executed with `--serve` (the library's
//! `app::serve`, the same code as `origin serve`), so it can be killed as a process.
//! `--processes N` (default 1) runs N such processes on the one database, each on its own
//! port, each with its own 2 worker loops (all claim from the one inbox: claims skip rows
//! another has locked); the requests go round robin over them, still 4 in flight in all. The
//! storm kills and restarts all N. `--processes 1,2,4` measures intake and processing for each
//! N in turn and ends with a scaling table (N, rates and their ratios to N = 1, the raw
//! reference of each run); lag and storm then run once, with the last N. Needs
//! `DATABASE_URL`; works in a scratch database `wholesail_bench_origin`, recreated per part.

use std::io;
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shopify_simulator::payloads::{order, OrderSpec};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use wholesail_bench::{median, scratch_database};
use wholesail_webhook::{
    body_sha256, hex, BatchResponse, ItemStatus, SigningKey, SIGNATURE_HEADER,
};

#[path = "origin/drain.rs"]
mod drain;

const DB: &str = "wholesail_bench_origin";
const KEY_ID: &str = "bench";
const KEY_SECRET: &str = "bench-secret-0123456789abcdefghijklmnop";
const IN_FLIGHT: usize = 4;
/// Done rows in the inbox while intake is measured (see [`seed_backlog`]).
const BACKLOG: i64 = 100_000;
const SHOPS: usize = 10;
const V1: &str = "2026-11-23T10:00:00-05:00";
const V2: &str = "2026-11-23T11:00:00-05:00";

const USAGE: &str = "usage: origin [--processes N[,N…]] [--intake-only | --storm-only] [--storm N]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve();
    }
    let args = Args::parse(&args)?;
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let last = *args.processes.last().context(USAGE)?;
        if args.storm_only {
            return Bench::new(&base, last)?.storm(args.storm).await;
        }
        let mut runs = Vec::with_capacity(args.processes.len());
        for &processes in &args.processes {
            let bench = Bench::new(&base, processes)?;
            let intake = bench.intake().await?;
            let processing = if args.intake_only {
                None
            } else {
                Some(bench.processing().await?)
            };
            runs.push(Run {
                processes,
                intake,
                processing,
            });
        }
        if runs.len() > 1 {
            print_scaling(&runs);
        }
        let Some(rate) = runs.last().and_then(|r| r.processing) else {
            return Ok(());
        };
        let bench = Bench::new(&base, last)?;
        bench.lag(rate).await?;
        bench.storm(args.storm).await
    })
}

/// The command line.
struct Args {
    storm: usize,
    storm_only: bool,
    intake_only: bool,
    /// The numbers of origin processes to measure, in order.
    processes: Vec<usize>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args> {
        let mut parsed = Args {
            storm: 100_000,
            storm_only: false,
            intake_only: false,
            processes: vec![1],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--storm-only" => parsed.storm_only = true,
                "--intake-only" => parsed.intake_only = true,
                "--storm" => {
                    parsed.storm = it
                        .next()
                        .context("--storm N")?
                        .replace('_', "")
                        .parse()
                        .context("--storm N")?
                }
                "--processes" => {
                    parsed.processes = it
                        .next()
                        .context("--processes N[,N…]")?
                        .split(',')
                        .map(|n| match n.trim().parse() {
                            Ok(0) | Err(_) => bail!("--processes: {n:?} is not a count ≥ 1"),
                            Ok(n) => Ok(n),
                        })
                        .collect::<Result<_>>()?
                }
                other => bail!("unknown argument {other:?}; {USAGE}"),
            }
        }
        if parsed.storm_only && parsed.intake_only {
            bail!("--storm-only and --intake-only exclude each other; {USAGE}");
        }
        Ok(parsed)
    }
}

/// Events/s of one intake mode: through origin, and through the raw client in the same run.
#[derive(Clone, Copy)]
struct Rates {
    origin: f64,
    raw: f64,
}

/// What one number of origin processes measured.
struct Run {
    processes: usize,
    /// Batches of 100.
    intake: Rates,
    /// Sustained events/s of the workers (`None` with `--intake-only`).
    processing: Option<f64>,
}

/// The scaling table: each run beside the first (N = 1 when the list starts with 1).
fn print_scaling(runs: &[Run]) {
    let Some(first) = runs.first() else {
        return;
    };
    let n1 = first.processes;
    println!("## origin scaling with processes (2 cores; intake: batches of 100, {IN_FLIGHT} in flight in all)\n");
    println!("| N | intake ev/s | ratio to N={n1} | raw sqlx ev/s (same run) | intake ÷ raw | processing ev/s | ratio to N={n1} |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let (processing, ratio) = match (r.processing, first.processing) {
            (Some(p), Some(p1)) => (format!("{p:.1}"), format!("{:.2}", p / p1)),
            _ => ("—".to_owned(), "—".to_owned()),
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} | {processing} | {ratio} |",
            r.processes,
            r.intake.origin,
            r.intake.origin / first.intake.origin,
            r.intake.raw,
            r.intake.origin / r.intake.raw,
        );
    }
    println!();
}

/// `--serve`: run origin from the environment (`WHOLESAIL_*`) until SIGTERM/SIGINT.
fn serve() -> Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,sqlx::query=error"))
        .init();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let config = wholesail_origin::config::Config::load(None)?;
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        wholesail_origin::app::serve(config, listener, true, shutdown).await?;
        Ok(())
    })
}

/// The origin processes of one measurement: where they listen, and the client that spreads
/// requests over them.
struct Bench {
    base: String,
    /// One port per origin process.
    ports: Vec<u16>,
    /// Round robin over `ports`, one step per request.
    next: AtomicUsize,
    http: reqwest::Client,
}

/// One envelope, serialised, with what the ground truth needs.
#[derive(Clone)]
struct Delivery {
    webhook_id: String,
    shop: String,
    json: Arc<str>,
    /// SHA-256 of `json`, as the edge sends it (`Envelope::body_sha256`).
    digest: [u8; 32],
    /// The body's size as Shopify sent it, before stripping (the envelope's `original_bytes`).
    original_bytes: usize,
}

impl Delivery {
    fn new(webhook_id: String, shop: String, json: String) -> Delivery {
        Delivery {
            digest: body_sha256(json.as_bytes()),
            original_bytes: json.len(),
            webhook_id,
            shop,
            json: Arc::from(json),
        }
    }

    /// This delivery as Shopify sent `original_bytes` before the edge stripped it.
    fn sent_as(mut self, original_bytes: usize) -> Delivery {
        self.original_bytes = original_bytes;
        self
    }

    fn envelope(&self, topic: &str) -> String {
        format!(
            r#"{{"meta":{{"webhook_id":"{id}","event_id":"e-{id}","topic":"{topic}","shop":"{shop}","api_version":"2025-07","triggered_at":null,"name":null}},"received_at_ms":{ms},"original_bytes":{n},"body_sha256":"{digest}","payload":{{"json":{{"stripping":"allowlist","body":{body}}}}}}}"#,
            id = self.webhook_id,
            shop = self.shop,
            ms = OffsetDateTime::now_utc().unix_timestamp() * 1000,
            n = self.original_bytes,
            digest = hex(&self.digest),
            body = self.json,
        )
    }
}

fn stripped_order(seed: u64, lines: usize, updated_at: &str) -> Result<String> {
    Ok(order_as_sent(seed, lines, updated_at)?.0)
}

/// A simulated order stripped as the edge strips it, and the size Shopify sent it at.
fn order_as_sent(seed: u64, lines: usize, updated_at: &str) -> Result<(String, usize)> {
    let mut spec = OrderSpec::new(seed, lines);
    spec.updated_at = updated_at.to_owned();
    let body = serde_json::to_vec(&order(&spec))?;
    Ok((
        wholesail_webhook::strip("orders/create", &body)?.json,
        body.len(),
    ))
}

fn shop(i: usize) -> String {
    format!("bench-{:02}.myshopify.com", i % SHOPS)
}

/// The running origin child processes, SIGKILLed when dropped.
struct Origins(Vec<Child>);

impl Drop for Origins {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Bench {
    /// A bench for `processes` origin processes, each given a free port.
    fn new(base: &str, processes: usize) -> Result<Arc<Bench>> {
        // Held together so that the ports differ, then released for the children to bind.
        let listeners = (0..processes)
            .map(|_| StdListener::bind("127.0.0.1:0"))
            .collect::<io::Result<Vec<_>>>()?;
        let ports = listeners
            .iter()
            .map(|l| Ok(l.local_addr()?.port()))
            .collect::<io::Result<_>>()?;
        Ok(Arc::new(Bench {
            base: base.to_owned(),
            ports,
            next: AtomicUsize::new(0),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(IN_FLIGHT * 2)
                .build()?,
        }))
    }

    /// The URL of `path` on the next origin process in turn.
    fn url(&self, path: &str) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.ports.len();
        format!("http://127.0.0.1:{}{path}", self.ports[i])
    }

    fn db_url(&self) -> String {
        let (server, _) = self.base.rsplit_once('/').expect("URL ends with /db");
        format!("{server}/{DB}")
    }

    /// Recreates the scratch database with origin's migrations.
    async fn fresh_db(&self) -> Result<PgPool> {
        scratch_database(&self.base, DB, &self.db_url(), IN_FLIGHT as u32 + 2).await
    }

    /// Starts one origin (this binary, `--serve`, `workers` worker loops) per port and waits
    /// for each one's `/livez`.
    async fn start(&self, workers: usize, lease_ms: u64) -> Result<Origins> {
        let mut origins = Origins(Vec::with_capacity(self.ports.len()));
        for port in &self.ports {
            origins.0.push(
                Command::new(std::env::current_exe()?)
                    .arg("--serve")
                    .env("WHOLESAIL_BIND", format!("127.0.0.1:{port}"))
                    .env("WHOLESAIL_DATABASE_URL", self.db_url())
                    .env(
                        "WHOLESAIL_INTERNAL__KEYS",
                        format!(r#"[{{id="{KEY_ID}",secret="{KEY_SECRET}"}}]"#),
                    )
                    .env("WHOLESAIL_WORKER__CONCURRENCY", workers.to_string())
                    .env("WHOLESAIL_WORKER__LEASE_MS", lease_ms.to_string())
                    .env("WHOLESAIL_POOL_SIZE", "12")
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()?,
            );
        }
        let start = Instant::now();
        for port in &self.ports {
            let livez = format!("http://127.0.0.1:{port}/livez");
            while !self
                .http
                .get(&livez)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                if start.elapsed() > Duration::from_secs(20) {
                    bail!("origin on port {port} did not start");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(origins)
    }

    /// Posts one signed body; returns the per-item statuses.
    async fn post(&self, body: String) -> Result<Vec<ItemStatus>> {
        let sig = SigningKey::new(KEY_ID, KEY_SECRET)?.sign_request(
            "/internal/webhooks",
            body.as_bytes(),
            OffsetDateTime::now_utc().unix_timestamp(),
        );
        let resp = self
            .http
            .post(self.url("/internal/webhooks"))
            .header(SIGNATURE_HEADER, sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("origin answered {}", resp.status());
        }
        let r: BatchResponse = resp.json().await?;
        Ok(r.results.into_iter().map(|r| r.status).collect())
    }

    /// Sends `chunks` (each one request body of envelopes) with `IN_FLIGHT` requests at once.
    async fn send_all(self: &Arc<Self>, chunks: Vec<Vec<String>>) -> Result<usize> {
        let queue = Arc::new(Mutex::new(chunks.into_iter()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            let (q, me) = (queue.clone(), self.clone());
            tasks.spawn(async move {
                let mut accepted = 0;
                loop {
                    let Some(chunk) = q.lock().await.next() else {
                        return Ok::<usize, anyhow::Error>(accepted);
                    };
                    let body = if chunk.len() == 1 {
                        chunk.into_iter().next().unwrap_or_default()
                    } else {
                        format!(r#"{{"envelopes":[{}]}}"#, chunk.join(","))
                    };
                    let r = me.post(body).await?;
                    accepted += r.iter().filter(|s| **s == ItemStatus::Accepted).count();
                }
            });
        }
        let mut accepted = 0;
        while let Some(r) = tasks.join_next().await {
            accepted += r??;
        }
        Ok(accepted)
    }

    /// The reference: the same rows through sqlx, `IN_FLIGHT` connections, one transaction per
    /// chunk, the same deduplicating multi-row insert.
    async fn raw_insert(pool: &PgPool, chunks: Vec<Vec<Delivery>>) -> Result<usize> {
        let queue = Arc::new(Mutex::new(chunks.into_iter()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            let (q, pool) = (queue.clone(), pool.clone());
            tasks.spawn(async move {
                let mut inserted = 0;
                loop {
                    let Some(chunk) = q.lock().await.next() else {
                        return Ok::<usize, anyhow::Error>(inserted);
                    };
                    let ids: Vec<&str> = chunk.iter().map(|d| d.webhook_id.as_str()).collect();
                    let events: Vec<String> = ids.iter().map(|i| format!("e-{i}")).collect();
                    let shops: Vec<&str> = chunk.iter().map(|d| d.shop.as_str()).collect();
                    let bodies: Vec<&str> = chunk.iter().map(|d| &*d.json).collect();
                    let sizes: Vec<i64> = chunk.iter().map(|d| d.original_bytes as i64).collect();
                    let digests: Vec<&[u8]> = chunk.iter().map(|d| &d.digest[..]).collect();
                    let now = OffsetDateTime::now_utc();
                    let mut tx = pool.begin().await?;
                    // The columns origin's intake writes; no target on ON CONFLICT, so it
                    // follows the inbox's unique webhook key whichever columns it spans.
                    let n = sqlx::query(
                        "INSERT INTO inbox (webhook_id, event_id, shop, topic, api_version,
                                            received_at, stripping, original_bytes, payload,
                                            status, source, body_sha256)
                         SELECT w, e, s, 'orders/create', '2025-07', $5, 'allowlist', b, p::jsonb,
                                'pending', 'edge', h
                         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $6::int8[],
                                     $7::bytea[])
                              AS u(w, e, s, p, b, h)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&ids)
                    .bind(&events)
                    .bind(&shops)
                    .bind(&bodies)
                    .bind(now)
                    .bind(&sizes)
                    .bind(&digests)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tx.commit().await?;
                    inserted += n as usize;
                }
            });
        }
        let mut n = 0;
        while let Some(r) = tasks.join_next().await {
            n += r??;
        }
        Ok(n)
    }

    /// Part 1: prints the intake table; returns the rates for batches of 100.
    async fn intake(self: &Arc<Self>) -> Result<Rates> {
        let pool = self.fresh_db().await?;
        seed_backlog(&pool).await?;
        let _origins = self.start(0, 60_000).await?;
        // Sizes vary a little with the seed; the mean of a sample is what the header says.
        let bytes = (0..50)
            .map(|s| stripped_order(s, 3, V1).map(|b| b.len()))
            .sum::<Result<usize>>()?
            / 50;
        println!("## origin intake ({} origin process(es), workers off, {IN_FLIGHT} in flight, stripped 3-line orders of ~{bytes} B, one order per delivery)\n", self.ports.len());
        // The raw client twice: with sqlx's default pool (a ping per acquire, the reference
        // since #17 was filed) and with origin's pool settings (a ping only after 1 s idle).
        let lean = wholesail_origin::app::pool_options(IN_FLIGHT as u32)
            .connect(&self.db_url())
            .await?;
        println!("| mode | events | origin HTTP ev/s | raw sqlx ev/s (default pool) | ratio | raw sqlx ev/s (origin's pool settings) | ratio |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let mut batches = None;
        let mut seed = 1_000_000u64;
        for (label, batch, n) in [
            ("batches of 100", 100usize, 20_000usize),
            ("single events", 1, 3_000),
        ] {
            let (mut origin_rates, mut raw_rates, mut lean_rates) =
                (Vec::new(), Vec::new(), Vec::new());
            for round in 0..3 {
                // One order per delivery: every body and digest differs, as in real traffic.
                let deliveries: Vec<Delivery> = (0..n)
                    .map(|i| {
                        seed += 1;
                        Ok(Delivery::new(
                            format!("in-{batch}-{round}-{i}"),
                            shop(i),
                            stripped_order(seed, 3, V1)?,
                        ))
                    })
                    .collect::<Result<_>>()?;
                let raw_chunks: Vec<Vec<Delivery>> =
                    deliveries.chunks(batch).map(<[_]>::to_vec).collect();
                let http_chunks: Vec<Vec<String>> = deliveries
                    .chunks(batch)
                    .map(|c| c.iter().map(|d| d.envelope("orders/create")).collect())
                    .collect();

                let t = Instant::now();
                let accepted = self.send_all(http_chunks).await?;
                origin_rates.push(n as f64 / t.elapsed().as_secs_f64());
                if accepted != n {
                    bail!("origin accepted {accepted} of {n}");
                }
                // Quarantined items are answered `accepted` too: count what was stored.
                let pending: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM inbox WHERE status = 'pending'")
                        .fetch_one(&pool)
                        .await?;
                if pending != n as i64 {
                    bail!("origin stored {pending} of {n} pending (the rest quarantined?)");
                }
                clear_run(&pool).await?;
                for (client, rates) in [(&pool, &mut raw_rates), (&lean, &mut lean_rates)] {
                    let t = Instant::now();
                    let inserted = Self::raw_insert(client, raw_chunks.clone()).await?;
                    rates.push(n as f64 / t.elapsed().as_secs_f64());
                    if inserted != n {
                        bail!("raw client inserted {inserted} of {n}");
                    }
                    clear_run(&pool).await?;
                }
            }
            let (o, r) = (median(origin_rates), median(raw_rates));
            let l = median(lean_rates);
            // #17's goals: batches ≥ 0.5× raw, single events ≥ 0.7×; judged against the
            // faster raw client.
            let goal = if batch == 1 { 0.7 } else { 0.5 };
            let met = if o / r.max(l) >= goal {
                "met"
            } else {
                "not met"
            };
            println!(
                "| {label} | {n} | {o:.0} | {r:.0} | {:.2} | {l:.0} | {:.2} (goal ≥ {goal} of the faster: {met}) |",
                o / r,
                o / l
            );
            if batch == 100 {
                batches = Some(Rates { origin: o, raw: r });
            }
        }
        println!();
        batches.context("no intake mode ran")
    }

    /// Part 2: prints the processing table; returns the sustained rate for 500-line orders.
    async fn processing(&self) -> Result<f64> {
        const N: usize = 500;
        let pool = self.fresh_db().await?;
        let _origins = self.start(2, 60_000).await?;
        let (orders, sent): (Vec<String>, Vec<i64>) = (0..N)
            .map(|i| order_as_sent(10_000 + i as u64, 500, V1).map(|(o, n)| (o, n as i64)))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let kb = orders.iter().map(String::len).sum::<usize>() / N / 1024;
        let ids: Vec<String> = (0..N).map(|i| format!("proc-{i}")).collect();
        let shops: Vec<String> = (0..N).map(shop).collect();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                                original_bytes, payload)
             SELECT w, s, 'orders/create', '2025-07', now(), 'allowlist', n, p::jsonb
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(w, s, p, n)",
        )
        .bind(&ids)
        .bind(&shops)
        .bind(&orders)
        .bind(&sent)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify('wholesail_inbox', '')")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let t = Instant::now();
        wait_drained(&pool, Duration::from_secs(300)).await?;
        let secs = t.elapsed().as_secs_f64();
        let rate = N as f64 / secs;
        let lines: i64 = sqlx::query_scalar("SELECT count(*) FROM order_lines")
            .fetch_one(&pool)
            .await?;
        if lines != (N * 500) as i64 {
            bail!("expected {} order lines, found {lines}", N * 500);
        }
        println!(
            "## origin processing ({} origin process(es) × 2 worker loops, batch 50)\n",
            self.ports.len()
        );
        println!("| what | figure |");
        println!("|---|---:|");
        println!(
            "| 500-line orders (~{kb} KB stripped) applied, inbox → tables | {N} in {secs:.2} s |"
        );
        println!(
            "| sustained rate | {rate:.1} events/s ({:.0} order lines/s) |",
            rate * 500.0
        );
        println!();
        Ok(rate)
    }

    /// Part 2, lag: intake → applied lag at half the sustained rate.
    async fn lag(self: &Arc<Self>, rate: f64) -> Result<()> {
        let pool = self.fresh_db().await?;
        let _origins = self.start(2, 60_000).await?;
        let target = rate / 2.0;
        let n = ((target * 10.0) as usize).clamp(20, 2_000);
        let orders: Vec<Delivery> = (0..n)
            .map(|i| {
                let (json, sent) = order_as_sent(20_000 + i as u64, 500, V1)?;
                Ok(Delivery::new(format!("lag-{i}"), shop(i), json).sent_as(sent))
            })
            .collect::<Result<_>>()?;
        let gap = Duration::from_secs_f64(1.0 / target);
        let start = Instant::now();
        let mut sends = tokio::task::JoinSet::new();
        for (i, d) in orders.into_iter().enumerate() {
            let due = start + gap.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            let me = self.clone();
            sends.spawn(async move { me.post(d.envelope("orders/create")).await });
        }
        while let Some(r) = sends.join_next().await {
            r??;
        }
        let sent_secs = start.elapsed().as_secs_f64();
        wait_drained(&pool, Duration::from_secs(300)).await?;
        let (p50, p99, max): (f64, f64, f64) = sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
             FROM (SELECT extract(epoch FROM processed_at - inserted_at)::float8 AS l
                   FROM inbox WHERE status = 'done') x",
        )
        .fetch_one(&pool)
        .await?;
        println!(
            "## origin lag ({} origin process(es) × 2 worker loops)\n",
            self.ports.len()
        );
        println!("| what | figure |");
        println!("|---|---:|");
        println!(
            "| offered load: 50% of sustained | {:.1} events/s ({n} single-envelope requests over {sent_secs:.1} s) |",
            n as f64 / sent_secs
        );
        println!(
            "| intake → applied lag p50 / p99 / max | {:.0} / {:.0} / {:.0} ms (goal p99 ≤ 100 ms: {}) |",
            p50 * 1e3,
            p99 * 1e3,
            max * 1e3,
            if p99 <= 0.1 { "met" } else { "not met" }
        );
        println!();
        Ok(())
    }

    /// Part 3.
    async fn storm(self: &Arc<Self>, total: usize) -> Result<()> {
        let pool = self.fresh_db().await?;
        let orders = total * 9 / 20; // 90% unique deliveries, two per order
        let unique = orders * 2;
        let dups = total - unique;
        let mut rng = StdRng::seed_from_u64(7);
        let t_gen = Instant::now();
        // Ground truth: order o has a create (V1) and an update (V2); its final state is V2.
        let mut seq: Vec<(Delivery, &str)> = Vec::with_capacity(total);
        for o in 0..orders {
            let v1 = stripped_order(100_000 + o as u64, 2, V1)?;
            let v2 = v1.replace(V1, V2);
            let shop = shop(o);
            let mk = |kind: &str, json: String| {
                Delivery::new(format!("storm-{o}-{kind}"), shop.clone(), json)
            };
            seq.push((mk("c", v1), "orders/create"));
            seq.push((mk("u", v2), "orders/updated"));
        }
        // 5% of deliveries out of order: the update sent before its create.
        let swapped = unique / 40;
        for o in rand::seq::index::sample(&mut rng, orders, swapped) {
            seq.swap(2 * o, 2 * o + 1);
        }
        // Interleave orders the way a busy store does: pairs stay near each other.
        for i in (0..seq.len()).step_by(2) {
            let j = rng.gen_range(i..(i + 200).min(seq.len())) & !1;
            if j != i {
                seq.swap(i, j);
                seq.swap(i + 1, j + 1);
            }
        }
        // 10% redeliveries of the same webhook id, each somewhere after its original.
        let len = seq.len() as f64;
        let mut keyed: Vec<(f64, usize)> = (0..seq.len()).map(|i| (i as f64, i)).collect();
        for _ in 0..dups {
            let k = rng.gen_range(0..unique);
            keyed.push((rng.gen_range(k as f64 + 0.5..len), k));
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let seq: Vec<(Delivery, &str)> = keyed.into_iter().map(|(_, k)| seq[k].clone()).collect();
        let gen_secs = t_gen.elapsed().as_secs_f64();
        let chunks: Vec<Vec<String>> = seq
            .chunks(100)
            .map(|c| c.iter().map(|(d, topic)| d.envelope(topic)).collect())
            .collect();
        let n_chunks = chunks.len();
        drop(seq);

        let deadlocks_before = deadlocks(&pool).await?;
        let origin = Arc::new(Mutex::new(Some(self.start(2, 3_000).await?)));
        let sent = Arc::new(AtomicUsize::new(0));
        let queue = Arc::new(Mutex::new(chunks.into_iter()));
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            let (q, me, sent) = (queue.clone(), self.clone(), sent.clone());
            tasks.spawn(async move {
                let mut retries = 0usize;
                loop {
                    let Some(chunk) = q.lock().await.next() else {
                        return retries;
                    };
                    let body = format!(r#"{{"envelopes":[{}]}}"#, chunk.join(","));
                    // Like the edge: retry the whole batch until origin answers.
                    while me.post(body.clone()).await.is_err() {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Kill origin half-way through intake, and start it again.
        while sent.load(Ordering::Relaxed) < n_chunks / 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (done_at_kill, processing_at_kill): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'done'),
                    count(*) FILTER (WHERE status = 'processing') FROM inbox",
        )
        .fetch_one(&pool)
        .await?;
        drop(origin.lock().await.take()); // SIGKILL, every process
        let killed_at = t.elapsed().as_secs_f64();
        *origin.lock().await = Some(self.start(2, 3_000).await?);
        let mut retries = 0;
        while let Some(r) = tasks.join_next().await {
            retries += r?;
        }
        let intake_secs = t.elapsed().as_secs_f64();
        wait_drained(&pool, Duration::from_secs(600)).await?;
        let drain_secs = t.elapsed().as_secs_f64();
        // Detected by PostgreSQL and resolved by aborting a transaction (the workers retry).
        let deadlocks = deadlocks(&pool).await? - deadlocks_before;

        let (rows, done, dead, max_count, sum_count): (i64, i64, i64, i32, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = 'done'),
                    count(*) FILTER (WHERE status IN ('dead', 'quarantined')),
                    coalesce(max(processed_count), 0), coalesce(sum(processed_count), 0)::int8
             FROM inbox",
        )
        .fetch_one(&pool)
        .await?;
        let (order_rows, latest, lines): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE source_updated_at = $1::timestamptz),
                    (SELECT count(*) FROM order_lines)
             FROM orders",
        )
        .bind(OffsetDateTime::parse(
            V2,
            &time::format_description::well_known::Rfc3339,
        )?)
        .fetch_one(&pool)
        .await?;
        let ok = rows == unique as i64
            && done == unique as i64
            && dead == 0
            && max_count == 1
            && sum_count == unique as i64
            && order_rows == orders as i64
            && latest == orders as i64
            && lines == 2 * orders as i64;
        println!(
            "## origin storm ({total} deliveries, {} origin process(es) SIGKILLed and restarted mid-intake)\n",
            self.ports.len()
        );
        println!("| what | figure |");
        println!("|---|---:|");
        println!("| deliveries sent (unique + redeliveries) | {total} ({unique} + {dups}), {swapped} orders updated-before-created |");
        println!("| generation (not timed below) | {gen_secs:.1} s |");
        println!("| killed at | {killed_at:.1} s ({done_at_kill} done, {processing_at_kill} in flight), {retries} batch retries by senders |");
        println!("| intake complete | {intake_secs:.1} s |");
        println!(
            "| time to drain (first send → inbox empty) | {drain_secs:.1} s ({:.0} deliveries/s) |",
            total as f64 / drain_secs
        );
        println!("| inbox rows / done / dead / max processed_count | {rows} / {done} / {dead} / {max_count} (expect {unique} / {unique} / 0 / 1) |");
        println!(
            "| deadlocks (pg_stat_database, intake and workers) | {deadlocks} (goal 0: {}) |",
            if deadlocks == 0 { "met" } else { "not met" }
        );
        println!("| orders / at latest version / order lines | {order_rows} / {latest} / {lines} (expect {orders} / {orders} / {}) |", 2 * orders);
        println!(
            "| verdict | {} |",
            if ok {
                "zero lost, zero duplicated, final state correct"
            } else {
                "MISMATCH"
            }
        );
        println!();
        drop(origin.lock().await.take());
        if !ok {
            bail!("storm verification failed");
        }
        self.drain_vs_raw(&pool, unique, orders).await
    }

    /// Part 3, backlog: the storm's deliveries put back to pending and drained by origin's 2
    /// worker loops, then by the raw reference ([`drain::raw`], 2 connections), from the same
    /// state; prints both rates, their ratio and the goals of #17.
    async fn drain_vs_raw(
        self: &Arc<Self>,
        pool: &PgPool,
        rows: usize,
        orders: usize,
    ) -> Result<()> {
        drain::reset(pool).await?;
        let before = deadlocks(pool).await?;
        let origin = self.start(2, 3_000).await?;
        let t = Instant::now();
        wait_drained(pool, Duration::from_secs(600)).await?;
        let workers_secs = t.elapsed().as_secs_f64();
        drop(origin);
        let workers_deadlocks = deadlocks(pool).await? - before;
        let latest: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orders WHERE source_updated_at = $1::timestamptz",
        )
        .bind(OffsetDateTime::parse(
            V2,
            &time::format_description::well_known::Rfc3339,
        )?)
        .fetch_one(pool)
        .await?;
        if latest != orders as i64 {
            bail!("workers' drain left {latest} of {orders} orders at the latest version");
        }

        drain::reset(pool).await?;
        let before = deadlocks(pool).await?;
        let (drained, raw_secs) = drain::raw(pool, 2).await?;
        let raw_deadlocks = deadlocks(pool).await? - before;
        if drained != rows as u64 {
            bail!("raw drain marked {drained} of {rows} rows done");
        }
        let (w, r) = (rows as f64 / workers_secs, rows as f64 / raw_secs);
        let met = |yes: bool| if yes { "met" } else { "not met" };
        println!("## origin backlog drain (the storm's {rows} rows back to pending, {orders} orders; 2 loops each, batch {})\n", drain::BATCH);
        println!("| drained by | time | rows/s | deadlocks |");
        println!("|---|---:|---:|---:|");
        println!("| origin workers (guards, savepoints, outcomes, subject) | {workers_secs:.1} s | {w:.0} | {workers_deadlocks} |");
        println!("| raw client (claim SKIP LOCKED, upsert orders, replace lines, mark done; no guards) | {raw_secs:.1} s | {r:.0} | {raw_deadlocks} |");
        println!(
            "| workers ÷ raw | {:.2} (goal ≥ 0.5: {}) | | |",
            w / r,
            met(w / r >= 0.5)
        );
        println!();
        Ok(())
    }
}

/// Fills the inbox with [`BACKLOG`] done rows, each with its own body digest, and analyzes it:
/// in service the inbox holds the retention window's rows and has statistics. A table just
/// created or truncated has none, and the planner then takes the body guard's digest lookup
/// (`body_sha256 = ANY(…)`) for unselective and reads the whole inbox once per batch.
async fn seed_backlog(pool: &PgPool) -> Result<()> {
    sqlx::query(
        "INSERT INTO inbox (webhook_id, event_id, shop, topic, api_version, received_at,
                            stripping, original_bytes, payload, status, processed_at,
                            processed_count, source, body_sha256)
         SELECT 'backlog-' || i, 'e-backlog-' || i,
                format('bench-%s.myshopify.com', lpad((i % $2)::text, 2, '0')),
                'orders/create', '2025-07', now(), 'allowlist', 100, jsonb_build_object('id', i),
                'done', now(), 1, 'edge', sha256(convert_to('backlog-' || i, 'UTF8'))
         FROM generate_series(1, $1) AS i",
    )
    .bind(BACKLOG)
    .bind(SHOPS as i64)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE inbox").execute(pool).await?;
    Ok(())
}

/// Deletes one intake run's rows and vacuums, so every run meets the same backlog.
async fn clear_run(pool: &PgPool) -> Result<()> {
    sqlx::query("DELETE FROM inbox WHERE webhook_id LIKE 'in-%'")
        .execute(pool)
        .await?;
    sqlx::query("VACUUM inbox").execute(pool).await?;
    Ok(())
}

/// Deadlocks PostgreSQL has detected in the bench database so far (statistics flushed first,
/// so the other sessions' counts are current).
async fn deadlocks(pool: &PgPool) -> Result<i64> {
    // Busy backends flush their statistics at most once a second; the workers poll.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

/// Waits until no row is pending or processing.
async fn wait_drained(pool: &PgPool, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox WHERE status IN ('pending', 'processing')",
        )
        .fetch_one(pool)
        .await?;
        if open == 0 {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("{open} events still open after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
