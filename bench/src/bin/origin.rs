//! `cargo xtask bench origin`: the origin service end to end, each figure beside a reference
//! measured in the same run.
//!
//! 1. **Intake**: events/s accepted through `POST /internal/webhooks` (signed, batches of 100
//!    and single envelopes, 4 requests in flight) against a raw sqlx client inserting the same
//!    rows with the same `ON CONFLICT (shop, webhook_id) DO NOTHING` in same-sized transactions
//!    (4 connections). Workers off, so only intake is measured. Median of 3 interleaved runs.
//! 2. **Processing**: 500-line orders committed to the inbox in one transaction, then timed
//!    until the workers have applied them all (events/s); then the p50/p99 lag from intake to
//!    applied (`processed_at − inserted_at`) when the same orders arrive through HTTP at 50% of
//!    that rate.
//! 3. **Storm**: `--storm N` deliveries (default 100,000): 90% unique (two versions of each
//!    order: create and update), 10% redeliveries of the same webhook id, 5% out of order
//!    (updates before their create), sent in batches of 100 while origin is SIGKILLed and
//!    restarted half-way (senders retry like the edge). Reports the time to drain and the
//!    deadlocks PostgreSQL detected, and checks zero lost / zero duplicated / final state
//!    against the generator's ground truth. `--storm-only` runs this part alone.
//!
//! The origin under test is this binary re-executed with `--serve` (the library's
//! `app::serve`, the same code as `origin serve`), so it can be killed as a process. Needs
//! `DATABASE_URL`; works in a scratch database `wholesail_bench_origin`, recreated per part.

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
use wholesail_webhook::{BatchResponse, ItemStatus, SigningKey, SIGNATURE_HEADER};

const DB: &str = "wholesail_bench_origin";
const KEY_ID: &str = "bench";
const KEY_SECRET: &str = "bench-secret-0123456789abcdefghijklmnop";
const IN_FLIGHT: usize = 4;
const SHOPS: usize = 10;
const V1: &str = "2026-11-23T10:00:00-05:00";
const V2: &str = "2026-11-23T11:00:00-05:00";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve();
    }
    let mut storm = 100_000usize;
    let mut storm_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--storm-only" => storm_only = true,
            "--storm" => {
                storm = it
                    .next()
                    .context("--storm N")?
                    .replace('_', "")
                    .parse()
                    .context("--storm N")?
            }
            other => bail!("unknown argument {other:?}; usage: origin [--storm N] [--storm-only]"),
        }
    }
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let bench = Bench::new(&base).await?;
        if !storm_only {
            bench.intake().await?;
            let rate = bench.processing().await?;
            bench.lag(rate).await?;
        }
        bench.storm(storm).await
    })
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

struct Bench {
    base: String,
    url: String,
    port: u16,
    http: reqwest::Client,
}

/// One envelope, serialised, with what the ground truth needs.
#[derive(Clone)]
struct Delivery {
    webhook_id: String,
    shop: String,
    json: Arc<str>,
}

impl Delivery {
    fn envelope(&self, topic: &str) -> String {
        format!(
            r#"{{"meta":{{"webhook_id":"{id}","event_id":"e-{id}","topic":"{topic}","shop":"{shop}","api_version":"2025-07","triggered_at":null,"name":null}},"received_at_ms":{ms},"original_bytes":{n},"payload":{{"json":{{"stripping":"allowlist","body":{body}}}}}}}"#,
            id = self.webhook_id,
            shop = self.shop,
            ms = OffsetDateTime::now_utc().unix_timestamp() * 1000,
            n = self.json.len(),
            body = self.json,
        )
    }
}

fn stripped_order(seed: u64, lines: usize, updated_at: &str) -> Result<String> {
    let mut spec = OrderSpec::new(seed, lines);
    spec.updated_at = updated_at.to_owned();
    let body = serde_json::to_vec(&order(&spec))?;
    Ok(wholesail_webhook::strip("orders/create", &body)?.json)
}

fn shop(i: usize) -> String {
    format!("bench-{:02}.myshopify.com", i % SHOPS)
}

/// A running origin child process.
struct Origin(Child);

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Bench {
    async fn new(base: &str) -> Result<Bench> {
        let port = StdListener::bind("127.0.0.1:0")?.local_addr()?.port();
        Ok(Bench {
            base: base.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(IN_FLIGHT * 2)
                .build()?,
        })
    }

    fn db_url(&self) -> String {
        let (server, _) = self.base.rsplit_once('/').expect("URL ends with /db");
        format!("{server}/{DB}")
    }

    /// Recreates the scratch database with origin's migrations.
    async fn fresh_db(&self) -> Result<PgPool> {
        scratch_database(&self.base, DB, &self.db_url(), IN_FLIGHT as u32 + 2).await
    }

    /// Starts origin (this binary, `--serve`) and waits for `/livez`.
    async fn start(&self, workers: usize, lease_ms: u64) -> Result<Origin> {
        let child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .env("WHOLESAIL_BIND", format!("127.0.0.1:{}", self.port))
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
            .spawn()?;
        let origin = Origin(child);
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/livez", self.url)).send().await {
                if r.status().is_success() {
                    return Ok(origin);
                }
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("origin did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
            .post(format!("{}/internal/webhooks", self.url))
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
                    let sizes: Vec<i64> = chunk.iter().map(|d| d.json.len() as i64).collect();
                    let now = OffsetDateTime::now_utc();
                    let mut tx = pool.begin().await?;
                    let n = sqlx::query(
                        "INSERT INTO inbox (webhook_id, event_id, shop, topic, api_version,
                                            received_at, stripping, original_bytes, payload)
                         SELECT w, e, s, 'orders/create', '2025-07', $5, 'allowlist', b, p::jsonb
                         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $6::int8[])
                              AS u(w, e, s, p, b)
                         ON CONFLICT (shop, webhook_id) DO NOTHING",
                    )
                    .bind(&ids)
                    .bind(&events)
                    .bind(&shops)
                    .bind(&bodies)
                    .bind(now)
                    .bind(&sizes)
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

    /// Part 1.
    async fn intake(&self) -> Result<()> {
        let me = Arc::new(Bench {
            base: self.base.clone(),
            url: self.url.clone(),
            port: self.port,
            http: self.http.clone(),
        });
        let pool = self.fresh_db().await?;
        let _origin = self.start(0, 60_000).await?;
        let bodies: Vec<Arc<str>> = (0..50)
            .map(|s| stripped_order(s, 3, V1).map(Arc::from))
            .collect::<Result<_>>()?;
        let bytes = bodies.iter().map(|b| b.len()).sum::<usize>() / bodies.len();
        println!("## origin intake (workers off, {IN_FLIGHT} in flight, stripped 3-line orders of ~{bytes} B)\n");
        println!("| mode | events | origin HTTP ev/s | raw sqlx ev/s | ratio |");
        println!("|---|---:|---:|---:|---:|");
        for (label, batch, n) in [
            ("batches of 100", 100usize, 20_000usize),
            ("single events", 1, 3_000),
        ] {
            let (mut origin_rates, mut raw_rates) = (Vec::new(), Vec::new());
            for round in 0..3 {
                let deliveries: Vec<Delivery> = (0..n)
                    .map(|i| Delivery {
                        webhook_id: format!("in-{batch}-{round}-{i}"),
                        shop: shop(i),
                        json: bodies[i % bodies.len()].clone(),
                    })
                    .collect();
                let raw_chunks: Vec<Vec<Delivery>> =
                    deliveries.chunks(batch).map(<[_]>::to_vec).collect();
                let http_chunks: Vec<Vec<String>> = deliveries
                    .chunks(batch)
                    .map(|c| c.iter().map(|d| d.envelope("orders/create")).collect())
                    .collect();

                sqlx::query("TRUNCATE inbox").execute(&pool).await?;
                let t = Instant::now();
                let accepted = me.send_all(http_chunks).await?;
                origin_rates.push(n as f64 / t.elapsed().as_secs_f64());
                if accepted != n {
                    bail!("origin accepted {accepted} of {n}");
                }

                sqlx::query("TRUNCATE inbox").execute(&pool).await?;
                let t = Instant::now();
                let inserted = Self::raw_insert(&pool, raw_chunks).await?;
                raw_rates.push(n as f64 / t.elapsed().as_secs_f64());
                if inserted != n {
                    bail!("raw client inserted {inserted} of {n}");
                }
            }
            let (o, r) = (median(origin_rates), median(raw_rates));
            println!("| {label} | {n} | {o:.0} | {r:.0} | {:.2} |", o / r);
        }
        println!();
        Ok(())
    }

    /// Part 2a: returns the sustained rate for 500-line orders.
    async fn processing(&self) -> Result<f64> {
        const N: usize = 500;
        let pool = self.fresh_db().await?;
        let _origin = self.start(2, 60_000).await?;
        let orders: Vec<String> = (0..N)
            .map(|i| stripped_order(10_000 + i as u64, 500, V1))
            .collect::<Result<_>>()?;
        let kb = orders.iter().map(String::len).sum::<usize>() / N / 1024;
        let ids: Vec<String> = (0..N).map(|i| format!("proc-{i}")).collect();
        let shops: Vec<String> = (0..N).map(shop).collect();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                                original_bytes, payload)
             SELECT w, s, 'orders/create', '2025-07', now(), 'allowlist', length(p), p::jsonb
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(w, s, p)",
        )
        .bind(&ids)
        .bind(&shops)
        .bind(&orders)
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
        println!("## origin processing (2 worker loops, batch 50)\n");
        println!("| what | figure |");
        println!("|---|---:|");
        println!(
            "| 500-line orders (~{kb} KB stripped) applied, inbox → tables | {N} in {secs:.2} s |"
        );
        println!(
            "| sustained rate | {rate:.1} events/s ({:.0} order lines/s) |",
            rate * 500.0
        );
        Ok(rate)
    }

    /// Part 2b: intake → applied lag at half the sustained rate.
    async fn lag(&self, rate: f64) -> Result<()> {
        let me = Arc::new(Bench {
            base: self.base.clone(),
            url: self.url.clone(),
            port: self.port,
            http: self.http.clone(),
        });
        let pool = self.fresh_db().await?;
        let _origin = self.start(2, 60_000).await?;
        let target = rate / 2.0;
        let n = ((target * 10.0) as usize).clamp(20, 2_000);
        let orders: Vec<Delivery> = (0..n)
            .map(|i| {
                Ok(Delivery {
                    webhook_id: format!("lag-{i}"),
                    shop: shop(i),
                    json: Arc::from(stripped_order(20_000 + i as u64, 500, V1)?),
                })
            })
            .collect::<Result<_>>()?;
        let gap = Duration::from_secs_f64(1.0 / target);
        let start = Instant::now();
        let mut sends = tokio::task::JoinSet::new();
        for (i, d) in orders.into_iter().enumerate() {
            let due = start + gap.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            let me = me.clone();
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
            "| offered load: 50% of sustained | {:.1} events/s ({n} single-envelope requests over {sent_secs:.1} s) |",
            n as f64 / sent_secs
        );
        println!(
            "| intake → applied lag p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |",
            p50 * 1e3,
            p99 * 1e3,
            max * 1e3
        );
        println!();
        Ok(())
    }

    /// Part 3.
    async fn storm(&self, total: usize) -> Result<()> {
        let me = Arc::new(Bench {
            base: self.base.clone(),
            url: self.url.clone(),
            port: self.port,
            http: self.http.clone(),
        });
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
            let mk = |kind: &str, json: String| Delivery {
                webhook_id: format!("storm-{o}-{kind}"),
                shop: shop.clone(),
                json: Arc::from(json),
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
            let (q, me, sent) = (queue.clone(), me.clone(), sent.clone());
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
        drop(origin.lock().await.take()); // SIGKILL
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
            "## origin storm ({total} deliveries, origin SIGKILLed and restarted mid-intake)\n"
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
        println!("| deadlocks (pg_stat_database, intake and workers) | {deadlocks} |");
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
        Ok(())
    }
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
