//! `cargo xtask chaos`: a few thousand order webhooks through the edge (in workerd) into origin
//! while origin and its database fail, then the tables checked against what was sent.
//!
//! Shopify (the simulator's `shopify-deliver`) sends `orders/create` and `orders/updated`,
//! shuffled (updates may precede their creates), about one in ten twice with the same webhook
//! id. Meanwhile:
//!
//! 1. origin is SIGKILLed while it holds claimed rows, and started again at once;
//! 2. PostgreSQL (a private cluster of this test's own) is restarted with
//!    `pg_ctl restart -m fast` while origin is working;
//! 3. origin is SIGKILLed and held down for [`HOLD`] while more orders arrive: the edge
//!    acknowledges them, its queue retries origin until its retries are used up, moves them to
//!    its dead-letter queue, whose consumer hands them to origin's dead-letter intake once
//!    origin is back.
//!
//! Then: every order, line and final version exactly as sent; no row left behind. The only
//! operator step is the one an outage longer than the edge's retries needs (about 3 h with
//! the deployed settings; seconds here): replaying what arrived through the dead-letter queue,
//! `origin dead-letters replay --shop S`. The test runs it and says so.

mod cluster;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::edge;
use crate::postgres::query;
use crate::service::Service;
use crate::shell::{self, cmd, target_dir};
use cluster::Cluster;

const SHOP: &str = "wholesail-chaos.myshopify.com";
const SHOPIFY_SECRET: &str = "chaos-shopify-app-secret-0123456789ab";
const KEY_ID: &str = "chaos-edge-1";
const SIGNING_KEY: &str = "chaos-edge-signing-key-0123456789abcd";
/// How long origin stays down in the third fault.
const HOLD: Duration = Duration::from_secs(10);
/// The longest any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(120);

/// What one `shopify-deliver` run sends, and so what the tables must hold for it.
struct Batch {
    /// First order seed (order ids follow from it).
    seed: u64,
    orders: u64,
    lines: u64,
    /// The first `updates` orders also get an `orders/updated` with one line fewer.
    updates: u64,
}

impl Batch {
    fn webhooks(&self) -> u64 {
        self.orders + self.updates
    }

    fn lines(&self) -> u64 {
        self.updates * (self.lines - 1) + (self.orders - self.updates) * self.lines
    }

    fn args(&self) -> Vec<String> {
        [
            ("--orders", self.orders),
            ("--lines", self.lines),
            ("--updates", self.updates),
            ("--seed", self.seed),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .chain(["--duplicate-rate".into(), "0.1".into()])
        .collect()
    }
}

/// Delivered while origin and PostgreSQL fail.
const MAIN: Batch = Batch {
    seed: 1,
    orders: 2_000,
    lines: 4,
    updates: 500,
};
/// Delivered while origin is held down.
const DURING_OUTAGE: Batch = Batch {
    seed: 100_001,
    orders: 200,
    lines: 4,
    updates: 50,
};

/// Runs the chaos test.
pub fn run() -> Result<()> {
    let started = Instant::now();
    step("Building origin, shopify-deliver and the edge worker");
    shell::run(&mut cmd(
        "cargo",
        &[
            "build",
            "-q",
            "-p",
            "wholesail-origin",
            "--bin",
            "origin",
            "-p",
            "shopify-simulator",
            "--bin",
            "shopify-deliver",
        ],
    ))?;
    edge::build_worker()?;

    let built = Instant::now();
    step("A private PostgreSQL cluster, origin, the edge in workerd");
    let cluster = Cluster::start()?;
    let db = cluster.recreate_database("wholesail_chaos")?;
    let dir = target_dir().join("chaos");
    std::fs::create_dir_all(&dir)?;
    for log in ["origin.log", "edge.log", "deliver.log"] {
        std::fs::write(dir.join(log), "")?;
    }
    let origin_addr = format!("127.0.0.1:{}", free_port()?);
    let config = write_origin_config(&dir, &origin_addr, &db)?;
    let start_origin = || Service::origin(&config, &dir, &origin_addr);
    let mut origin = start_origin()?;
    let edge_port = free_port()?;
    let origin_url = format!("http://{origin_addr}");
    let _edge = Service::edge(
        &dir,
        edge_port,
        &[
            ("ORIGIN_URL", origin_url.as_str()),
            ("SHOPIFY_SECRET", SHOPIFY_SECRET),
            ("EDGE_SIGNING_KEY_ID", KEY_ID),
            ("EDGE_SIGNING_KEY", SIGNING_KEY),
            ("SHOP_ALLOWLIST", SHOP),
            // The deployed settings retry for about 3 h; here a few seconds, so that the hold
            // below outlasts the main queue's retries but not the dead-letter queue's.
            ("RETRY_BASE_DELAY_SECS", "1"),
            ("RETRY_MAX_DELAY_SECS", "2"),
            ("QUEUE_MAX_RETRIES", "3"),
            ("QUEUE_BATCH_TIMEOUT_SECS", "0.2"),
            ("ORIGIN_TIMEOUT_MS", "10000"),
        ],
    )?;
    let inbox = Inbox { db: &db };
    let edge_url = format!("http://127.0.0.1:{edge_port}/webhooks");
    println!("   database {db}, origin {origin_url}, edge http://127.0.0.1:{edge_port}");

    step(&format!(
        "Shopify delivers {} orders and {} updates, shuffled, ~10% twice",
        MAIN.orders, MAIN.updates
    ));
    let main = Deliveries::start(&edge_url, &MAIN, &dir)?;

    step("Fault 1: origin SIGKILLed while it holds claimed rows, started again");
    let at = inbox.wait("origin to be working on claimed rows", |c| {
        c.done >= 400 && c.processing > 0
    })?;
    origin.stop();
    println!(
        "   killed with {} rows claimed, {} done",
        at.processing, at.done
    );
    origin = start_origin()?;

    step("Fault 2: pg_ctl restart -m fast while origin is working");
    let at = inbox.wait("origin to be working again", |c| {
        c.done >= at.done + 600 && c.processing > 0
    })?;
    cluster.restart_fast()?;
    println!(
        "   restarted with {} rows claimed, {} done",
        at.processing, at.done
    );

    step(&format!(
        "Fault 3: origin SIGKILLed and held down {HOLD:?}; {} more orders arrive meanwhile",
        DURING_OUTAGE.orders
    ));
    let at = inbox.wait("more progress", |c| c.done >= at.done + 400)?;
    origin.stop();
    let down = Instant::now();
    println!(
        "   killed with {} rows claimed, {} done",
        at.processing, at.done
    );
    let during = Deliveries::start(&edge_url, &DURING_OUTAGE, &dir)?.finish()?;
    println!("   while origin was down, shopify-deliver: {during}");
    std::thread::sleep(HOLD.saturating_sub(down.elapsed()));
    origin = start_origin()?;
    println!("   origin back after {:.1} s", down.elapsed().as_secs_f64());
    let report = main.finish()?;
    println!("   shopify-deliver: {report}");

    step("Settling: every webhook applied or dead-lettered by the edge's DLQ");
    let total = (MAIN.webhooks() + DURING_OUTAGE.webhooks()) as i64;
    let settled = inbox.wait("every webhook in the inbox, done or dead", |c| {
        c.orders == total && c.done + c.dead == total
    })?;
    let mut manual_steps = Vec::new();
    if settled.dead > 0 {
        let from_dlq = count(
            &db,
            "SELECT count(*) FROM inbox WHERE status = 'dead' AND source = 'edge_dlq'",
        )?;
        println!(
            "   {} dead letters, {from_dlq} of them from the edge's dead-letter queue: the \
             outage outlasted the edge's retries",
            settled.dead
        );
        let replay = origin_cli(&config, &["dead-letters", "replay", "--shop", SHOP])?;
        let replayed = serde_json::from_str::<serde_json::Value>(&replay)?["replayed"]
            .as_array()
            .map_or(0, Vec::len);
        manual_steps.push(format!("origin dead-letters replay --shop {SHOP}"));
        println!("   $ origin dead-letters replay --shop {SHOP}\n   replayed {replayed}");
    }
    inbox.wait("every webhook applied", |c| c.done == total)?;

    step("Checking the tables against what was sent");
    let orders = (MAIN.orders + DURING_OUTAGE.orders) as i64;
    let lines = (MAIN.lines() + DURING_OUTAGE.lines()) as i64;
    let updated = (MAIN.updates + DURING_OUTAGE.updates) as i64;
    let got_orders = count(&db, "SELECT count(*) FROM orders")?;
    let got_lines = count(&db, "SELECT count(*) FROM order_lines")?;
    // orders/updated carries 11:00 −05:00; orders/create 10:00 −05:00.
    let got_updated = count(
        &db,
        "SELECT count(*) FROM orders WHERE source_updated_at = '2026-11-23T16:00:00Z'",
    )?;
    // Both batches send the same number of lines per order; an update has one fewer.
    let wrong_lines = count(
        &db,
        &format!(
            "SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM order_lines l \
         WHERE l.shop = o.shop AND l.order_id = o.id) <> CASE \
         WHEN o.source_updated_at = '2026-11-23T16:00:00Z' THEN {} ELSE {} END",
            MAIN.lines - 1,
            MAIN.lines
        ),
    )?;
    let inbox_rows = count(
        &db,
        "SELECT count(*) FROM inbox WHERE topic LIKE 'orders/%'",
    )?;
    println!(
        "   orders {got_orders}/{orders}, lines {got_lines}/{lines}, final versions \
         {got_updated}/{updated}, orders with wrong lines {wrong_lines}, inbox rows \
         {inbox_rows}/{total}"
    );
    ensure!(got_orders == orders, "orders: {got_orders}, sent {orders}");
    ensure!(got_lines == lines, "order lines: {got_lines}, sent {lines}");
    ensure!(
        got_updated == updated,
        "orders at their updated version: {got_updated}, sent {updated}"
    );
    ensure!(
        wrong_lines == 0,
        "{wrong_lines} orders have lines of another version"
    );
    ensure!(
        inbox_rows == total,
        "inbox rows: {inbox_rows}, unique webhooks {total}"
    );
    println!("   ok: 0 lost, 0 doubled");
    origin.stop();
    println!(
        "\nChaos test passed in {:.0} s ({:.0} s after the build); operator steps: {}. Logs: {}",
        started.elapsed().as_secs_f64(),
        built.elapsed().as_secs_f64(),
        if manual_steps.is_empty() {
            "none".to_owned()
        } else {
            manual_steps.join("; ")
        },
        dir.display()
    );
    Ok(())
}

/// A single number from a query.
fn count(db: &str, sql: &str) -> Result<i64> {
    let out = query(db, sql)?;
    out.trim()
        .parse()
        .with_context(|| format!("expected a number from {sql}, got {out:?}"))
}

fn step(what: &str) {
    println!("\n== chaos: {what}");
}

/// A free TCP port on loopback.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn write_origin_config(dir: &Path, addr: &str, db: &str) -> Result<PathBuf> {
    let path = dir.join("origin.toml");
    // A short lease, so that the rows a killed origin held are reclaimed in seconds, not
    // the default minute; everything else as deployed.
    std::fs::write(
        &path,
        format!(
            "bind = \"{addr}\"\ndatabase_url = \"{db}\"\n\n\
             [[internal.keys]]\nid = \"{KEY_ID}\"\nsecret = \"{SIGNING_KEY}\"\n\n\
             [worker]\nlease_ms = 5000\n"
        ),
    )?;
    Ok(path)
}

fn origin_cli(config: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(target_dir().join("debug/origin"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .context("running the origin CLI")?;
    if !out.status.success() {
        bail!(
            "origin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A `shopify-deliver` run in the background.
struct Deliveries {
    child: Child,
}

impl Deliveries {
    fn start(url: &str, batch: &Batch, dir: &Path) -> Result<Deliveries> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("deliver.log"))?;
        let child = Command::new(target_dir().join("debug/shopify-deliver"))
            .args(["--url", url, "--shop", SHOP])
            .args(batch.args())
            .env("SHOPIFY_SECRET", SHOPIFY_SECRET)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting shopify-deliver")?;
        Ok(Deliveries { child })
    }

    /// Waits for the run to end; its JSON report. Fails unless every webhook was delivered.
    fn finish(mut self) -> Result<String> {
        let mut report = String::new();
        self.child
            .stdout
            .take()
            .expect("piped")
            .read_to_string(&mut report)?;
        let status = self.child.wait()?;
        ensure!(
            status.success(),
            "shopify-deliver failed ({status}): {report}"
        );
        Ok(report.trim().to_owned())
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        // Only when the test fails before `finish`: a finished child is already reaped.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Counts of the inbox's order webhooks by status.
#[derive(Clone, Copy, Debug)]
struct Counts {
    orders: i64,
    done: i64,
    processing: i64,
    dead: i64,
}

struct Inbox<'a> {
    db: &'a str,
}

impl Inbox<'_> {
    fn counts(&self) -> Result<Counts> {
        let out = query(
            self.db,
            "SELECT count(*), count(*) FILTER (WHERE status = 'done'), \
             count(*) FILTER (WHERE status = 'processing'), \
             count(*) FILTER (WHERE status = 'dead') \
             FROM inbox WHERE topic LIKE 'orders/%'",
        )?;
        let n: Vec<i64> = out
            .trim()
            .split('|')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("inbox counts: {out:?}"))?;
        let [orders, done, processing, dead] = n[..] else {
            bail!("inbox counts: {out:?}");
        };
        Ok(Counts {
            orders,
            done,
            processing,
            dead,
        })
    }

    /// Polls the counts until `ready` holds; the counts then. Fails after [`WAIT`] with the
    /// last counts. A failed query (PostgreSQL restarting) is retried.
    fn wait(&self, what: &str, ready: impl Fn(&Counts) -> bool) -> Result<Counts> {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        loop {
            if let Ok(c) = self.counts() {
                if ready(&c) {
                    return Ok(c);
                }
                last = Some(c);
            }
            if Instant::now() > deadline {
                bail!("timed out after {WAIT:?} waiting for {what}; inbox: {last:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
