//! `cargo xtask demo [--ci]`: the whole system on this machine. `--ci` runs every step with a
//! catalog of 2,000 products instead of 20,000; CI (`.ci/run`) runs it after the tests.
//!
//! 0. `cargo xtask setup`: the tools a fresh machine lacks (worker-build, wasm-bindgen, npm).
//! 1. PostgreSQL (found or started) with a fresh `wholesail_demo` database.
//! 2. The Shopify simulator on 127.0.0.1:18700 (a generated wholesale catalog), origin
//!    (`origin serve`) on 127.0.0.1:18080, the edge worker in workerd on 127.0.0.1:18787.
//! 3. [`catalog`]: operations resync the catalog with `origin catalog resync` (progress bar,
//!    summary); Shopify's `bulk_operations/finish` webhook reaches origin through the edge.
//! 4. [`rules`]: a buyer (company + location) arrives by webhook; operations import its rules
//!    (`origin rules import`); origin's background push writes the location's metafields in
//!    the simulator; the real Function wasm rejects a sample cart; a rule change through the
//!    admin API flows to the metafield and the same cart is accepted.
//! 5. [`draft_orders`]: a 1,200-line quote (`POST /v1/draft-orders`) answered in milliseconds
//!    becomes three linked draft orders whose totals add up to the quote's, to the cent.
//! 6. [`webhooks`]: the simulator delivers signed order webhooks to the edge as Shopify does:
//!    some twice with the same webhook id, updates shuffled before their creates; the demo
//!    checks the tables against what was sent. Then origin goes down; one more order is
//!    delivered; the edge still acknowledges it, retries origin, moves it to the dead-letter
//!    queue and, once origin is back, hands it to origin's dead-letter intake; an operator
//!    lists the dead letter and replays it; the order is applied exactly once.
//! 7. [`salesforce`]: the Salesforce simulator with existing Accounts; origin restarts with the
//!    shop connected; a company is linked to its Account (same name and business domain), an
//!    ambiguous one waits for review, an order reaches Salesforce with its lines; a 600-line
//!    Quote approved in Salesforce comes back as two draft orders with their checkout links.
//! 8. [`reconcile`]: the shop's webhook subscriptions checked against the required topics at
//!    the edge (`origin reconcile subscriptions`): the missing ones are recreated, a second run
//!    finds nothing.
//!
//! Logs of origin, the edge and the simulator go to `<target>/demo/`.

mod catalog;
mod draft_orders;
mod reconcile;
mod rules;
mod salesforce;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http;
use crate::service::Service;
use crate::shell::{self, cmd, target_dir};
use crate::{edge, postgres, setup};

const ORIGIN_ADDR: &str = "127.0.0.1:18080";
const EDGE_PORT: u16 = 18787;
const SIMULATOR_ADDR: &str = "127.0.0.1:18700";
const SHOP: &str = "wholesail-demo.myshopify.com";
const SHOP_TOKEN: &str = "shpat_demo_token";
const SHOPIFY_SECRET: &str = "demo-shopify-app-secret-0123456789abc";
const KEY_ID: &str = "demo-edge-1";
const SIGNING_KEY: &str = "demo-edge-signing-key-0123456789abcde";
/// Products in the simulator's generated catalog (about 8 variants each).
const CATALOG_PRODUCTS: u64 = 20_000;
/// The catalog of `cargo xtask demo --ci`: every step, smaller data.
const CI_CATALOG_PRODUCTS: u64 = 2_000;

/// What every step of the demo shares.
struct Demo {
    /// The demo database's URL.
    db: String,
    /// Where logs and the origin config go.
    dir: PathBuf,
    /// origin's configuration file.
    config: PathBuf,
    /// Products in the simulator's catalog.
    products: u64,
    /// Bearer token with `ops:read` and `ops:write` (made with `origin tokens create`).
    ops_token: String,
    /// Bearer token with the `integrator` scope.
    integrator_token: String,
}

impl Demo {
    /// Runs an origin CLI command; its standard output.
    fn origin_cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(origin_bin())
            .arg("--config")
            .arg(&self.config)
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

    /// Creates a token with `scopes` (`origin tokens create`); its secret.
    fn create_token(&self, name: &str, scopes: &[&str]) -> Result<String> {
        let mut args = vec!["tokens", "create", "--name", name];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        let issued: serde_json::Value = serde_json::from_str(&self.origin_cli(&args)?)
            .context("origin tokens create prints JSON")?;
        issued["token"]
            .as_str()
            .map(str::to_owned)
            .context("origin tokens create printed no token")
    }

    /// A single number from a query on the demo database.
    fn count(&self, sql: &str) -> Result<i64> {
        let out = postgres::query(&self.db, sql)?;
        out.trim()
            .parse()
            .with_context(|| format!("expected a number from {sql}, got {out:?}"))
    }
}

/// Runs the demo: `--ci` runs every step with a smaller catalog (what CI runs).
pub fn run(args: &[&str]) -> Result<()> {
    let products = match args {
        [] => CATALOG_PRODUCTS,
        ["--ci"] => CI_CATALOG_PRODUCTS,
        _ => bail!("usage: cargo xtask demo [--ci]"),
    };
    let started = Instant::now();
    step("Tools (cargo xtask setup)");
    setup::run()?;
    step("PostgreSQL");
    let db = postgres::recreate_database("wholesail_demo")?;
    println!("   fresh database {db}");

    step("Building origin, the Shopify simulator and the edge worker");
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
            "--bin",
            "shopify-simulator",
            "-p",
            "salesforce-simulator",
            "--bin",
            "salesforce-simulator",
        ],
    ))?;
    edge::build_worker()?;
    let dir = target_dir().join("demo");
    std::fs::create_dir_all(&dir)?;
    // Each run's logs start empty, so that a service's last lines are its own.
    for log in ["origin.log", "edge.log", "simulator.log", "salesforce.log"] {
        std::fs::write(dir.join(log), "")?;
    }
    let mut demo = Demo {
        config: write_origin_config(&dir, &db)?,
        db,
        dir,
        products,
        ops_token: String::new(),
        integrator_token: String::new(),
    };

    step("Starting the Shopify simulator, origin and the edge (workerd)");
    let _simulator = simulator(&demo.dir, demo.products)?;
    let mut origin = Service::origin(&demo.config, &demo.dir, ORIGIN_ADDR)?;
    demo.ops_token = demo.create_token("demo-ops", &["ops:read", "ops:write"])?;
    demo.integrator_token = demo.create_token("demo-erp", &["integrator"])?;
    println!("   tokens demo-ops (ops:read, ops:write) and demo-erp (integrator) created");
    let edge = start_edge(&demo.dir)?;
    println!(
        "   simulator http://{SIMULATOR_ADDR}, origin http://{ORIGIN_ADDR}, edge http://127.0.0.1:{EDGE_PORT}"
    );

    catalog::resync(&demo)?;
    rules::rule_change_reaches_checkout(&demo)?;
    draft_orders::split_quote(&demo)?;
    webhooks::deliveries_and_dead_letters(&demo, &mut origin, &edge)?;
    let _salesforce = salesforce::start_simulator(&demo.dir)?;
    salesforce::sync_and_quote_to_cash(&demo, &mut || {
        origin.stop();
        let mut config = std::fs::read_to_string(&demo.config)?;
        config.push_str(&salesforce::org_config());
        std::fs::write(&demo.config, config)?;
        origin = Service::origin(&demo.config, &demo.dir, ORIGIN_ADDR)?;
        println!("   origin restarted with the shop connected to the Salesforce org ([[salesforce.orgs]], pubsub_url)");
        Ok(())
    })?;

    reconcile::subscriptions(&demo)?;

    step("Audit log");
    let audit = demo.origin_cli(&["audit", "list", "--json", "--limit", "1000"])?;
    println!(
        "   origin audit list: {} write actions",
        audit.lines().count()
    );
    check(
        audit.contains("\"PUT /admin/rules\"") && audit.contains("\"POST /v1/draft-orders\""),
        "the rules edit and the quote are in the audit log, with their tokens",
    )?;

    println!(
        "   metrics: {}",
        metrics_summary(&format!("http://{ORIGIN_ADDR}/metrics"), &demo.ops_token)
    );
    origin.stop();
    drop(edge);
    println!(
        "\nDemo finished in {:.0} s. Logs: {}",
        started.elapsed().as_secs_f64(),
        demo.dir.display()
    );
    Ok(())
}

/// The Shopify simulator with a generated catalog of `products`, on [`SIMULATOR_ADDR`].
fn simulator(dir: &Path, products: u64) -> Result<Service> {
    let mut c = Command::new(target_dir().join("debug/shopify-simulator"));
    c.env("SIMULATOR_BIND", SIMULATOR_ADDR)
        .env("SIMULATOR_SHOP", SHOP)
        .env("SIMULATOR_ACCESS_TOKEN", SHOP_TOKEN)
        .env("SIMULATOR_APP_SECRET", SHOPIFY_SECRET)
        .env("SIMULATOR_PRODUCTS", products.to_string())
        .env("SIMULATOR_BULK_MS", "3000")
        // Shopify's finish webhook goes to the edge, like every other webhook.
        .env(
            "SIMULATOR_BULK_FINISH_URL",
            format!("http://127.0.0.1:{EDGE_PORT}/webhooks"),
        );
    let mut simulator = Service::start("the Shopify simulator", c, &dir.join("simulator.log"))?;
    simulator.wait_ready(Duration::from_secs(30), |_| {
        Ok(std::net::TcpStream::connect(SIMULATOR_ADDR).is_ok())
    })?;
    Ok(simulator)
}

/// The edge worker in workerd on [`EDGE_PORT`], posting to the demo's origin, with short
/// retry delays and few retries so that the outage step reaches the dead-letter queue soon.
fn start_edge(dir: &Path) -> Result<Service> {
    let origin_url = format!("http://{ORIGIN_ADDR}");
    Service::edge(
        dir,
        EDGE_PORT,
        &[
            ("ORIGIN_URL", &origin_url),
            ("SHOPIFY_SECRET", SHOPIFY_SECRET),
            ("EDGE_SIGNING_KEY_ID", KEY_ID),
            ("EDGE_SIGNING_KEY", SIGNING_KEY),
            ("SHOP_ALLOWLIST", SHOP),
            ("RETRY_BASE_DELAY_SECS", "1"),
            ("RETRY_MAX_DELAY_SECS", "1"),
            ("QUEUE_MAX_RETRIES", "3"),
            ("QUEUE_BATCH_TIMEOUT_SECS", "0.2"),
        ],
    )
}

/// The origin binary the demo built.
fn origin_bin() -> PathBuf {
    target_dir().join("debug/origin")
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
             [shopify]\nsecret = \"{SHOPIFY_SECRET}\"\n\n\
             [[internal.keys]]\nid = \"{KEY_ID}\"\nsecret = \"{SIGNING_KEY}\"\n\n\
             [reconcile]\n# The demo runs each reconciliation itself (step 7).\n\
             orders = []\ncatalog_interval_ms = 0\n\n\
             [[shops]]\ndomain = \"{SHOP}\"\nurl = \"http://{SIMULATOR_ADDR}\"\n\
             access_token = \"{SHOP_TOKEN}\"\n"
        ),
    )?;
    Ok(path)
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

/// A few of origin's metrics, by name prefix.
fn metrics_summary(url: &str, token: &str) -> String {
    let body = http::text(url, token).unwrap_or_default();
    body.lines()
        .filter(|l| {
            !l.starts_with('#')
                && [
                    "wholesail_inbox_depth",
                    "wholesail_intake_events_total",
                    "wholesail_events_processed_total",
                    "wholesail_dead_letters_replayed_total",
                    "wholesail_salesforce_calls_total",
                ]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .take(12)
        .collect::<Vec<_>>()
        .join("; ")
}
