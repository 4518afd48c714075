//! `cargo xtask demo`: the whole system on this machine.
//!
//! 1. PostgreSQL (found or started) with a fresh `wholesail_demo` database.
//! 2. origin (`origin serve`) on 127.0.0.1:18080, the edge worker in workerd on 127.0.0.1:18787.
//! 3. The Shopify simulator delivers signed order webhooks to the edge as Shopify does: some
//!    twice with the same webhook id, updates shuffled before their creates. The demo waits
//!    until origin has applied them and checks the tables against what was sent.
//! 4. Origin goes down; one more order is delivered. The edge still acknowledges it (it is on
//!    the queue), retries origin, moves it to the dead-letter queue and, once origin is back,
//!    hands it to origin's dead-letter intake. An operator lists the dead letter and replays it;
//!    the order is applied exactly once.
//!
//! Logs of origin and the edge go to `<target>/demo/`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::shell::{self, cmd, root, target_dir};
use crate::{edge, postgres};

const ORIGIN_ADDR: &str = "127.0.0.1:18080";
const EDGE_PORT: &str = "18787";
const SHOP: &str = "wholesail-demo.myshopify.com";
const SHOPIFY_SECRET: &str = "demo-shopify-app-secret";
const KEY_ID: &str = "demo-edge-1";
const SIGNING_KEY: &str = "demo-edge-signing-key";
const ADMIN_TOKEN: &str = "demo-admin-token";

/// Runs the demo.
pub fn run() -> Result<()> {
    let started = Instant::now();
    step("PostgreSQL");
    let db = postgres::recreate_database("wholesail_demo")?;
    println!("   fresh database {db}");

    step("Building origin, the simulator's delivery tool and the edge worker");
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
    let dir = target_dir().join("demo");
    std::fs::create_dir_all(&dir)?;
    let config = write_origin_config(&dir, &db)?;

    step("Starting origin and the edge (workerd)");
    let mut origin = Service::origin(&config, &dir)?;
    wait_until("origin /readyz", Duration::from_secs(60), || {
        http_ok(&format!("http://{ORIGIN_ADDR}/readyz"))
    })?;
    let edge = Service::edge(&dir)?;
    println!("   origin http://{ORIGIN_ADDR}, edge http://127.0.0.1:{EDGE_PORT}");

    step("Shopify delivers 25 orders (40 lines each) and 5 updates, shuffled, some twice");
    let report = deliver(&[
        "--orders",
        "25",
        "--lines",
        "40",
        "--updates",
        "5",
        "--seed",
        "1",
    ])?;
    println!("   simulator: {report}");
    let webhooks: i64 = json_number(&report, "\"webhooks\":")?;
    wait_until(
        "origin to apply every event",
        Duration::from_secs(90),
        || count(&db, "SELECT count(*) FROM inbox WHERE status = 'done'").map(|n| n == webhooks),
    )?;
    let orders = count(&db, "SELECT count(*) FROM orders")?;
    let lines = count(&db, "SELECT count(*) FROM order_lines")?;
    println!(
        "   inbox: {webhooks} unique deliveries done (duplicates acknowledged, not stored twice)"
    );
    println!("   tables: {orders} orders, {lines} order lines");
    check(
        orders == 25 && lines == 20 * 40 + 5 * 39,
        "orders and lines match what Shopify sent",
    )?;

    step("Origin goes down; Shopify delivers one more order; the edge still says 200");
    origin.stop();
    let report = deliver(&[
        "--orders",
        "1",
        "--lines",
        "12",
        "--updates",
        "0",
        "--seed",
        "900",
        "--duplicate-rate",
        "0",
    ])?;
    println!("   simulator: {report}");
    wait_until(
        "the edge to give up on origin and use its dead-letter queue",
        Duration::from_secs(90),
        || Ok(edge.saw("/internal/dead-letters")),
    )?;
    println!("   the edge retried origin, then moved the message to its dead-letter queue");

    step("Origin is back; the dead letter arrives; operations replay it");
    let mut origin = Service::origin(&config, &dir)?;
    wait_until("the dead letter at origin", Duration::from_secs(90), || {
        count(
            &db,
            "SELECT count(*) FROM inbox WHERE status = 'dead' AND source = 'edge_dlq'",
        )
        .map(|n| n == 1)
    })?;
    let origin_bin = target_dir().join("debug/origin");
    let listing = origin_cli(&origin_bin, &config, &["dead-letters", "list"])?;
    println!("   $ origin dead-letters list\n   {}", listing.trim());
    let id = count(&db, "SELECT id FROM inbox WHERE source = 'edge_dlq'")?;
    let replay = origin_cli(
        &origin_bin,
        &config,
        &["dead-letters", "replay", "--id", &id.to_string()],
    )?;
    println!(
        "   $ origin dead-letters replay --id {id}\n   {}",
        replay.trim()
    );
    wait_until(
        "the replayed order to be applied",
        Duration::from_secs(60),
        || count(&db, "SELECT count(*) FROM orders WHERE order_number = 1900").map(|n| n == 1),
    )?;
    let replayed_lines = count(
        &db,
        "SELECT count(*) FROM order_lines l JOIN orders o ON o.shop = l.shop AND o.id = l.order_id \
         WHERE o.order_number = 1900",
    )?;
    check(
        replayed_lines == 12,
        "the replayed order has its 12 lines, once",
    )?;
    println!(
        "   metrics: {}",
        metrics_summary(&format!("http://{ORIGIN_ADDR}/metrics"))
    );
    origin.stop();
    drop(edge);
    println!(
        "\nDemo finished in {:.0} s. Logs: {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

fn step(what: &str) {
    println!("\n== {what}");
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        println!("   ok: {what}");
        Ok(())
    } else {
        bail!("check failed: {what}")
    }
}

fn write_origin_config(dir: &Path, db: &str) -> Result<PathBuf> {
    let path = dir.join("origin.toml");
    std::fs::write(
        &path,
        format!(
            "bind = \"{ORIGIN_ADDR}\"\ndatabase_url = \"{db}\"\n\n\
             [admin]\ntoken = \"{ADMIN_TOKEN}\"\n\n\
             [shopify]\nsecret = \"{SHOPIFY_SECRET}\"\n\n\
             [[internal.keys]]\nid = \"{KEY_ID}\"\nsecret = \"{SIGNING_KEY}\"\n"
        ),
    )?;
    Ok(path)
}

/// Runs `shopify-deliver` against the edge and returns its JSON report.
fn deliver(args: &[&str]) -> Result<String> {
    let bin = target_dir().join("debug/shopify-deliver");
    let url = format!("http://127.0.0.1:{EDGE_PORT}/webhooks");
    let mut all = vec!["--url", url.as_str(), "--shop", SHOP];
    all.extend_from_slice(args);
    let out = Command::new(bin)
        .args(&all)
        .env("SHOPIFY_SECRET", SHOPIFY_SECRET)
        .stderr(Stdio::inherit())
        .output()
        .context("running shopify-deliver")?;
    if !out.status.success() {
        bail!(
            "shopify-deliver failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn origin_cli(bin: &Path, config: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
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

fn count(db: &str, sql: &str) -> Result<i64> {
    let out = postgres::query(db, sql)?;
    out.trim()
        .parse()
        .with_context(|| format!("expected a number from {sql}, got {out:?}"))
}

fn json_number(json: &str, key: &str) -> Result<i64> {
    let start = json.find(key).context("key missing in report")? + key.len();
    let digits: String = json[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().context("not a number in report")
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if ready().unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A plain HTTP/1.1 GET on loopback; true for a 2xx answer.
fn http_get(url: &str) -> Result<String> {
    let rest = url.strip_prefix("http://").context("http URLs only")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut s, &mut body)?;
    Ok(body)
}

fn http_ok(url: &str) -> Result<bool> {
    Ok(http_get(url)?.starts_with("HTTP/1.1 2"))
}

/// A few of origin's metrics, by name prefix.
fn metrics_summary(url: &str) -> String {
    let body = http_get(url).unwrap_or_default();
    body.lines()
        .filter(|l| {
            !l.starts_with('#')
                && [
                    "wholesail_inbox_depth",
                    "wholesail_intake_events_total",
                    "wholesail_events_processed_total",
                    "wholesail_dead_letters_replayed_total",
                ]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .take(12)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A background process of the demo, stopped when dropped.
struct Service {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Service {
    fn origin(config: &Path, dir: &Path) -> Result<Service> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("origin.log"))?;
        let child = Command::new(target_dir().join("debug/origin"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting origin")?;
        Ok(Service {
            child,
            lines: Arc::default(),
        })
    }

    fn edge(dir: &Path) -> Result<Service> {
        let mut child = Command::new("node")
            .args(["edge/serve.mjs", "--port", EDGE_PORT])
            .current_dir(root())
            .env("ORIGIN_URL", format!("http://{ORIGIN_ADDR}"))
            .env("SHOPIFY_SECRET", SHOPIFY_SECRET)
            .env("EDGE_SIGNING_KEY_ID", KEY_ID)
            .env("EDGE_SIGNING_KEY", SIGNING_KEY)
            .env("SHOP_ALLOWLIST", SHOP)
            .env("RETRY_BASE_DELAY_SECS", "1")
            .env("RETRY_MAX_DELAY_SECS", "1")
            .env("QUEUE_MAX_RETRIES", "3")
            .env("QUEUE_BATCH_TIMEOUT_SECS", "0.2")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so stopping it also stops the workerd it started.
            .process_group(0)
            .spawn()
            .context("starting the edge (node edge/serve.mjs)")?;
        let stdout = child.stdout.take().expect("piped");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = lines.clone();
        let mut log = File::create(dir.join("edge.log"))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                seen.lock().expect("log lock").push(line);
            }
        });
        let service = Service { child, lines };
        wait_until("the edge to listen", Duration::from_secs(60), || {
            Ok(service.saw("edge listening"))
        })?;
        Ok(service)
    }

    fn saw(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Kills the process and everything in its process group (the edge's workerd).
    fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}
