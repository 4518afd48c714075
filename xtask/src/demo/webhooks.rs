//! Webhook deliveries through the edge: duplicates and disorder, then an origin outage, the
//! edge's dead-letter queue, and an operator's replay.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{check, step, wait_until, Demo, EDGE_PORT, SHOP, SHOPIFY_SECRET};
use crate::service::Service;
use crate::shell::target_dir;

/// Orders delivered with duplicates and disorder, applied once each; then the outage.
pub(super) fn deliveries_and_dead_letters(
    demo: &Demo,
    origin: &mut Service,
    edge: &Service,
) -> Result<()> {
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
        || {
            demo.count("SELECT count(*) FROM inbox WHERE topic LIKE 'orders/%' AND status = 'done'")
                .map(|n| n == webhooks)
        },
    )?;
    let orders = demo.count("SELECT count(*) FROM orders")?;
    let lines = demo.count("SELECT count(*) FROM order_lines")?;
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
    *origin = Service::origin(&demo.config, &demo.dir, super::ORIGIN_ADDR)?;
    wait_until("the dead letter at origin", Duration::from_secs(90), || {
        demo.count("SELECT count(*) FROM inbox WHERE status = 'dead' AND source = 'edge_dlq'")
            .map(|n| n == 1)
    })?;
    let listing = demo.origin_cli(&["dead-letters", "list", "--json"])?;
    println!(
        "   $ origin dead-letters list --json\n   {}",
        listing.trim()
    );
    let id = demo.count("SELECT id FROM inbox WHERE source = 'edge_dlq'")?;
    let replay = demo.origin_cli(&["dead-letters", "replay", "--id", &id.to_string()])?;
    println!(
        "   $ origin dead-letters replay --id {id}\n   {}",
        replay.trim()
    );
    wait_until(
        "the replayed order to be applied",
        Duration::from_secs(60),
        || {
            demo.count("SELECT count(*) FROM orders WHERE order_number = 1900")
                .map(|n| n == 1)
        },
    )?;
    let replayed_lines = demo.count(
        "SELECT count(*) FROM order_lines l JOIN orders o ON o.shop = l.shop AND o.id = l.order_id \
         WHERE o.order_number = 1900",
    )?;
    check(
        replayed_lines == 12,
        "the replayed order has its 12 lines, once",
    )?;
    Ok(())
}

/// Runs `shopify-deliver` against the edge and returns its JSON report.
pub(super) fn deliver(args: &[&str]) -> Result<String> {
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

fn json_number(json: &str, key: &str) -> Result<i64> {
    let start = json.find(key).context("key missing in report")? + key.len();
    let digits: String = json[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().context("not a number in report")
}
