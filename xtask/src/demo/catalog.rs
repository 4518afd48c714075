//! Operations resync the catalog from the simulator's bulk export, with the CLI's progress bar.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{check, http, origin_bin, step, Demo, ORIGIN_ADDR, SHOP};

/// `origin catalog resync`, then the live tables checked against the run's summary.
pub(super) fn resync(demo: &Demo) -> Result<()> {
    step(&format!(
        "Operations resync the catalog ({} products) from a Shopify bulk export",
        demo.products
    ));
    println!("   $ origin catalog resync --shop {SHOP}");
    let started = Instant::now();
    // The progress bar draws on the terminal (standard error); the summary is on stdout.
    let out = Command::new(origin_bin())
        .arg("--config")
        .arg(&demo.config)
        .args(["catalog", "resync", "--shop", SHOP])
        // The merge's statements are slow by nature; sqlx's slow-statement warnings are noise.
        .env("RUST_LOG", "warn,sqlx::query=error")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running origin catalog resync")?;
    let summary = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("origin catalog resync failed: {summary}");
    }
    println!("   {}", summary.trim());
    let products = demo.count("SELECT count(*) FROM products")?;
    let variants = demo.count("SELECT count(*) FROM variants")?;
    let levels = demo.count("SELECT count(*) FROM inventory_levels")?;
    let metafields = demo.count("SELECT count(*) FROM catalog_metafields")?;
    println!(
        "   live tables: {products} products, {variants} variants, {levels} inventory levels \
         ({:.1} s including Shopify's export)",
        started.elapsed().as_secs_f64()
    );
    check(
        products == demo.products as i64,
        "every product of the export is in the live tables",
    )?;
    check(
        summary.contains(&format!(
            "inserted {}, updated 0, deleted 0",
            products + variants + levels + metafields
        )),
        "the summary's inserted rows are the live tables' rows",
    )?;
    let (_, runs) = http::get_json(
        &format!("http://{ORIGIN_ADDR}/admin/catalog/runs?shop={SHOP}&limit=1"),
        &demo.ops_token,
    )?;
    let run = &runs[0];
    println!(
        "   GET /admin/catalog/runs?shop={SHOP}: run {} {}, {} lines, {} bytes",
        run["id"], run["status"], run["lines_read"], run["bytes_read"]
    );
    check(
        run["status"] == "completed",
        "the admin API reports the run completed",
    )?;
    let woke = demo.count(
        "SELECT count(*) FROM inbox WHERE topic = 'bulk_operations/finish' AND status = 'done'",
    )?;
    println!("   bulk_operations/finish webhooks applied by origin: {woke}");
    Ok(())
}
