//! `shopify-deliver`: sends a stream of signed `orders/create` and `orders/updated` webhooks to
//! a URL the way Shopify does (retries, optional duplicates with the same webhook id, shuffled
//! order), then prints what was sent and what the operational tables must hold afterwards as
//! one JSON object on stdout. `--payload TOPIC=FILE` adds a webhook of any topic with the
//! file's JSON as its body (e.g. `company_locations/create`). Used by `cargo xtask demo`.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use shopify_simulator::payloads::{order, OrderSpec};
use shopify_simulator::webhooks::{DeliveryConfig, WebhookSender};

/// Sends generated order webhooks with Shopify's delivery behaviour.
#[derive(Parser, Debug)]
#[command(name = "shopify-deliver", version)]
struct Args {
    /// The webhook endpoint (the edge's `/webhooks` or origin's `/webhooks/shopify`).
    #[arg(long)]
    url: String,
    /// The app's client secret that signs the bodies.
    #[arg(long, env = "SHOPIFY_SECRET", hide_env_values = true)]
    secret: String,
    /// The shop the webhooks come from.
    #[arg(long, default_value = "wholesail-demo.myshopify.com")]
    shop: String,
    /// Number of orders (each gets an `orders/create`).
    #[arg(long, default_value_t = 20)]
    orders: u64,
    /// Line items per order.
    #[arg(long, default_value_t = 40)]
    lines: usize,
    /// How many of the orders also get a newer `orders/updated` with one line removed.
    #[arg(long, default_value_t = 5)]
    updates: u64,
    /// First order seed (ids follow from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Probability that a delivered webhook is delivered again with the same id.
    #[arg(long, default_value_t = 0.2)]
    duplicate_rate: f64,
    /// Multiplies Shopify's timeouts and retry delays (0.01: retries after 0.6 s … 77 s).
    #[arg(long, default_value_t = 0.01)]
    time_scale: f64,
    /// Also deliver this file's JSON as a webhook of this topic (repeatable; delivered in the
    /// order given, before the orders).
    #[arg(long = "payload", value_name = "TOPIC=FILE")]
    payloads: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sender = WebhookSender::new(
        args.secret.as_bytes(),
        DeliveryConfig {
            shop: args.shop.clone(),
            time_scale: args.time_scale,
            duplicate_rate: args.duplicate_rate,
            seed: args.seed,
            total_timeout: Duration::from_secs(5),
            ..DeliveryConfig::default()
        },
    );
    let mut webhooks = Vec::new();
    for p in &args.payloads {
        let (topic, file) = p
            .split_once('=')
            .with_context(|| format!("--payload {p:?}: expected TOPIC=FILE"))?;
        let body = std::fs::read(file).with_context(|| format!("reading {file}"))?;
        serde_json::from_slice::<serde_json::Value>(&body)
            .with_context(|| format!("{file} is not JSON"))?;
        let w = sender.webhook(topic, body);
        // One at a time, in order: a location's company should exist before the location.
        let report = sender.deliver(&args.url, &w).await;
        anyhow::ensure!(
            report.delivered,
            "the {topic} webhook from {file} was not delivered"
        );
    }
    let mut expected_lines = 0;
    for seed in args.seed..args.seed + args.orders {
        let created = OrderSpec {
            updated_at: "2026-11-23T10:00:00-05:00".into(),
            ..OrderSpec::new(seed, args.lines)
        };
        webhooks.push(sender.webhook("orders/create", order(&created).to_string().into_bytes()));
        if seed - args.seed < args.updates {
            let updated = OrderSpec {
                updated_at: "2026-11-23T11:00:00-05:00".into(),
                ..OrderSpec::new(seed, args.lines.saturating_sub(1))
            };
            webhooks
                .push(sender.webhook("orders/updated", order(&updated).to_string().into_bytes()));
            expected_lines += args.lines.saturating_sub(1);
        } else {
            expected_lines += args.lines;
        }
    }
    let sent = webhooks.len();
    let reports = sender.deliver_shuffled(&args.url, webhooks).await;
    let delivered = reports.iter().filter(|r| r.delivered).count();
    let attempts: usize = reports.iter().map(|r| r.attempts.len()).sum();
    let duplicates = reports
        .iter()
        .flat_map(|r| &r.attempts)
        .filter(|a| a.duplicate)
        .count();
    println!(
        "{}",
        json!({
            "payloads": args.payloads.len(),
            "webhooks": sent,
            "delivered": delivered,
            "attempts": attempts,
            "duplicate_deliveries": duplicates,
            "expected": {"orders": args.orders, "order_lines": expected_lines},
        })
    );
    anyhow::ensure!(
        delivered == sent,
        "{} of {sent} webhooks were not delivered",
        sent - delivered
    );
    Ok(())
}
