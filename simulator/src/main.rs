//! `shopify-simulator`: runs the Shopify simulator standalone (for the demo and manual tests)
//! until Ctrl-C. Every option also reads from an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use shopify_simulator::{
    BucketConfig, CatalogSpec, ShopConfig, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN,
};

/// Runs Shopify's Admin GraphQL API and webhook delivery locally.
#[derive(Parser, Debug)]
#[command(name = "shopify-simulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SIMULATOR_BIND", default_value = "127.0.0.1:8787")]
    bind: SocketAddr,
    /// The shop's domain.
    #[arg(long, env = "SIMULATOR_SHOP", default_value = DEFAULT_SHOP)]
    shop: String,
    /// The access token that authenticates as the shop.
    #[arg(long, env = "SIMULATOR_ACCESS_TOKEN", default_value = DEFAULT_TOKEN, hide_env_values = true)]
    access_token: String,
    /// The app's client secret, which signs webhooks.
    #[arg(
        long,
        env = "SIMULATOR_APP_SECRET",
        default_value = "simulator_app_secret",
        hide_env_values = true
    )]
    app_secret: String,
    /// Products in the generated catalog (about 8 variants each).
    #[arg(long, env = "SIMULATOR_PRODUCTS", default_value_t = 1000)]
    products: u64,
    /// Seed of the generated catalog.
    #[arg(long, env = "SIMULATOR_SEED", default_value_t = 1)]
    seed: u64,
    /// Cost bucket restore rate, points/s (Standard 100, Advanced 200, Plus 1000).
    #[arg(long, env = "SIMULATOR_RESTORE_RATE", default_value_t = 100.0)]
    restore_rate: f64,
    /// Cost bucket size, points.
    #[arg(long, env = "SIMULATOR_BUCKET_SIZE", default_value_t = 2000.0)]
    bucket_size: f64,
    /// How long a bulk operation runs, milliseconds.
    #[arg(long, env = "SIMULATOR_BULK_MS", default_value_t = 2000)]
    bulk_ms: u64,
    /// Where to send `bulk_operations/finish` webhooks.
    #[arg(long, env = "SIMULATOR_BULK_FINISH_URL")]
    bulk_finish_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = SimulatorConfig {
        bind: args.bind,
        shops: vec![ShopConfig {
            domain: args.shop.clone(),
            access_token: args.access_token,
            catalog: CatalogSpec::new(args.seed, args.products),
        }],
        bucket: BucketConfig {
            maximum_available: args.bucket_size,
            restore_rate: args.restore_rate,
        },
        app_secret: args.app_secret,
        ..SimulatorConfig::default()
    };
    config.bulk.duration = Duration::from_millis(args.bulk_ms);
    config.delivery.shop = args.shop.clone();
    if let Some(url) = args.bulk_finish_url {
        config
            .webhook_subscriptions
            .push(("bulk_operations/finish".into(), url));
    }
    let sim = Simulator::start(config)
        .await
        .context("starting the simulator")?;
    tracing::info!(
        shop = %args.shop,
        graphql = %sim.graphql_url("2026-01"),
        "shopify simulator listening"
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
