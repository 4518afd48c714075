//! Reconciliation: the shop's webhook subscriptions checked against the topics the pipeline
//! needs at the edge's address. The demo's shop was only ever subscribed to
//! `bulk_operations/finish` (as if Shopify had dropped the rest after failed deliveries): the
//! first run finds the others missing and recreates them, the second finds nothing. Then the
//! catalog: three stock counts drift by 47 units in PostgreSQL (the incident the product
//! exists for); a catalog run finds them per SKU and location, heals them, and a second run
//! finds nothing.

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
    catalog(demo)?;
    let runs: Value = serde_json::from_str(&demo.origin_cli(&[
        "reconcile",
        "runs",
        "--shop",
        SHOP,
        "--json",
    ])?)?;
    println!(
        "   origin reconcile runs --shop {SHOP}: {} runs recorded",
        runs["runs"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}

/// Three stock levels off by 47 units here; a catalog run finds and heals them.
fn catalog(demo: &Demo) -> Result<()> {
    step("Reconciliation: inventory drift found per SKU and location, and healed");
    let drifted = crate::postgres::query(
        &demo.db,
        "WITH d AS (SELECT shop, inventory_item_id, location_id FROM inventory_levels
                    WHERE available >= 47 ORDER BY inventory_item_id, location_id LIMIT 3)
         UPDATE inventory_levels l SET available = l.available - 47 FROM d
         WHERE l.shop = d.shop AND l.inventory_item_id = d.inventory_item_id
           AND l.location_id = d.location_id RETURNING 1",
    )?;
    println!(
        "   {} stock levels lowered by 47 units in PostgreSQL (no webhook says so)",
        drifted.lines().count()
    );
    let run = || -> Result<Value> {
        let out = demo.origin_cli(&["reconcile", "catalog", "--shop", SHOP])?;
        serde_json::from_str(&out).context("the run's JSON")
    };
    let first = run()?;
    let counts = &first["counts"];
    println!(
        "   $ origin reconcile catalog --shop {SHOP}\n   run {}: {} rows compared, {} missing, {} stale, {} healed",
        first["run"], counts["compared"], counts["missing"], counts["stale"], counts["healed"]
    );
    let findings = first["findings"].as_array().cloned().unwrap_or_default();
    for f in &findings {
        println!(
            "   {} {}: ours {}, Shopify {}, {} units",
            f["kind"].as_str().unwrap_or_default(),
            f["record"].as_str().unwrap_or_default(),
            f["detail"]["ours"],
            f["detail"]["shopify"],
            f["detail"]["units"]
        );
    }
    check(
        findings.len() == 3
            && findings
                .iter()
                .all(|f| f["kind"] == "inventory_drift" && f["detail"]["units"] == 47),
        "exactly the 3 drifted levels are found, 47 units each",
    )?;
    let second = run()?;
    check(
        second["counts"]["missing"] == 0 && second["counts"]["stale"] == 0,
        "a second catalog run finds nothing",
    )?;
    println!("   run {} again: nothing to heal", second["run"]);
    Ok(())
}
