//! `cargo xtask bench reconcile [--rounds R]`: reconciliation runs against the Shopify
//! simulator on a real PostgreSQL (scratch database `wholesail_bench_reconcile`, needs
//! `DATABASE_URL`), each beside its floor measured in the same run.
//!
//! **Webhook subscriptions.** A shop subscribed to every required topic at the edge; per
//! round, 3 of them are deleted (as Shopify does after failed deliveries) and a heal run finds
//! and recreates them, then a second run finds nothing. Printed: the runs' wall time and
//! Shopify cost points beside the listing alone (`webhookSubscriptions`, the least any run
//! must read) and the cost of the 3 creates it cannot avoid. Medians of `--rounds` (default 7).
//!
//! Orders, inventory, prices and the catalog are not reconciled yet (#15).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use secrecy::SecretString;
use shopify_simulator::{Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN};
use wholesail_bench::{median, scratch_database, shop_domain};
use wholesail_origin::reconcile::runs::{Mode, Trigger};
use wholesail_origin::reconcile::subscriptions::{self, required_topics};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

const DB: &str = "wholesail_bench_reconcile";
const EDGE: &str = "http://127.0.0.1:9/webhooks";
const DROPPED: [&str; 3] = [
    "orders/create",
    "inventory_levels/update",
    "products/update",
];

#[tokio::main]
async fn main() -> Result<()> {
    let mut rounds = 7usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().context("a number")?.parse()?,
            other => bail!("unknown argument {other}; usage: reconcile [--rounds R]"),
        }
    }
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let db_url = format!("{}/{DB}", base.rsplit_once('/').context("DATABASE_URL")?.0);
    let pool = scratch_database(&base, DB, &db_url, 4).await?;
    let sim = Simulator::start(SimulatorConfig::default()).await?;
    let client = AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))?;
    let shop = shop_domain(DEFAULT_SHOP);
    let required = required_topics().count();
    for topic in required_topics() {
        client.create_webhook_subscription(topic, EDGE).await?;
    }

    let (mut list_s, mut heal_s, mut clean_s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut list_cost, mut heal_cost, mut clean_cost) = (0, 0, 0);
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let (_, cost) = client.webhook_subscriptions().await?;
        list_s.push(start.elapsed().as_secs_f64());
        list_cost = cost;
        for topic in DROPPED {
            sim.delete_webhook_subscription(DEFAULT_SHOP, topic);
        }
        let start = Instant::now();
        let (_, healed) =
            subscriptions::reconcile(&pool, &client, &shop, EDGE, Mode::Heal, Trigger::Operator)
                .await?;
        heal_s.push(start.elapsed().as_secs_f64());
        if healed.healed != DROPPED.len() as i64 {
            bail!("healed {} of {}", healed.healed, DROPPED.len());
        }
        heal_cost = healed.cost_used;
        let start = Instant::now();
        let (_, clean) =
            subscriptions::reconcile(&pool, &client, &shop, EDGE, Mode::Heal, Trigger::Schedule)
                .await?;
        clean_s.push(start.elapsed().as_secs_f64());
        if clean.missing + clean.stale != 0 {
            bail!(
                "a second run found {} differences",
                clean.missing + clean.stale
            );
        }
        clean_cost = clean.cost_used;
    }
    let ms = |v: Vec<f64>| median(v) * 1000.0;
    let (list, heal, clean) = (ms(list_s), ms(heal_s), ms(clean_s));
    println!(
        "reconcile subscriptions: {required} required topics, {} deleted each round, median of {rounds}\n",
        DROPPED.len()
    );
    println!("| run | wall | ÷ listing alone | Shopify cost points |");
    println!("|---|---:|---:|---:|");
    println!("| listing alone (`webhookSubscriptions`, the floor) | {list:.1} ms | 1.00× | {list_cost} |");
    println!(
        "| heal run: finds and recreates {} | {heal:.1} ms | {:.2}× | {heal_cost} (listing + {} creates) |",
        DROPPED.len(),
        heal / list,
        DROPPED.len()
    );
    println!(
        "| clean run: finds nothing | {clean:.1} ms | {:.2}× | {clean_cost} |",
        clean / list
    );
    Ok(())
}
