//! Reconciliation: the shop's webhook subscriptions checked against the topics the pipeline
//! needs at the edge's address. The demo's shop was only ever subscribed to
//! `bulk_operations/finish` (as if Shopify had dropped the rest after failed deliveries): the
//! first run finds the others missing and recreates them, the second finds nothing.

use anyhow::{Context, Result};
use serde_json::Value;

use super::{check, step, Demo, EDGE_PORT, SHOP};

/// Two `origin reconcile subscriptions` runs and the runs list.
pub fn subscriptions(demo: &Demo) -> Result<()> {
    step("Reconciliation: webhook subscriptions Shopify no longer has are recreated");
    let config = std::fs::read_to_string(&demo.config)?.replacen(
        "[reconcile]\n",
        &format!("[reconcile]\nwebhook_uri = \"http://127.0.0.1:{EDGE_PORT}/webhooks\"\n"),
        1,
    );
    std::fs::write(&demo.config, config)?;
    let run = || -> Result<Value> {
        let out = demo.origin_cli(&["reconcile", "subscriptions", "--shop", SHOP])?;
        serde_json::from_str(&out).context("the run's JSON")
    };
    let first = run()?;
    let counts = &first["counts"];
    println!(
        "   $ origin reconcile subscriptions --shop {SHOP}\n   run {}: {} topics compared, {} missing, {} elsewhere, {} recreated, {} failed, {} Shopify cost points",
        first["run"], counts["compared"], counts["missing"], counts["stale"], counts["healed"],
        counts["failed"], counts["cost_used"]
    );
    let missing = counts["missing"].as_i64().unwrap_or(0);
    check(
        missing > 0 && counts["healed"].as_i64() == Some(missing) && counts["failed"] == 0,
        "every missing subscription was recreated at the edge",
    )?;
    let second = run()?;
    println!(
        "   run {} again: {} missing, {} recreated",
        second["run"], second["counts"]["missing"], second["counts"]["healed"]
    );
    check(
        second["counts"]["missing"] == 0 && second["counts"]["stale"] == 0,
        "a second run finds nothing",
    )?;
    let runs: Value =
        serde_json::from_str(&demo.origin_cli(&["reconcile", "runs", "--shop", SHOP])?)?;
    println!(
        "   origin reconcile runs --shop {SHOP}: {} runs recorded",
        runs["runs"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}
