//! `salesforce-simulator`: runs the Salesforce simulator standalone (for the demo and manual
//! tests) until Ctrl-C. Every option also reads from a `SALESFORCE_SIMULATOR_*` variable.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use salesforce_simulator::{Config, Simulator, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

/// Runs Salesforce's REST, Bulk 2.0 and Pub/Sub APIs locally.
#[derive(Parser, Debug)]
#[command(name = "salesforce-simulator", version)]
struct Args {
    /// Address of the HTTP API (login URL and instance URL).
    #[arg(
        long,
        env = "SALESFORCE_SIMULATOR_BIND",
        default_value = "127.0.0.1:8788"
    )]
    bind: SocketAddr,
    /// Address of the Pub/Sub API (gRPC).
    #[arg(
        long,
        env = "SALESFORCE_SIMULATOR_GRPC_BIND",
        default_value = "127.0.0.1:7443"
    )]
    grpc_bind: SocketAddr,
    /// The connected app's consumer key.
    #[arg(long, env = "SALESFORCE_SIMULATOR_CLIENT_ID", default_value = DEFAULT_CLIENT_ID)]
    client_id: String,
    /// The connected app's consumer secret.
    #[arg(long, env = "SALESFORCE_SIMULATOR_CLIENT_SECRET", default_value = DEFAULT_CLIENT_SECRET, hide_env_values = true)]
    client_secret: String,
    /// Access token lifetime, seconds.
    #[arg(
        long,
        env = "SALESFORCE_SIMULATOR_TOKEN_SECONDS",
        default_value_t = 7200
    )]
    token_seconds: u64,
    /// API requests per day.
    #[arg(
        long,
        env = "SALESFORCE_SIMULATOR_DAILY_API_REQUESTS",
        default_value_t = 100_000
    )]
    daily_api_requests: u64,
    /// Milliseconds after which a request counts as long-running.
    #[arg(
        long,
        env = "SALESFORCE_SIMULATOR_LONG_RUNNING_MS",
        default_value_t = 20_000
    )]
    long_running_ms: u64,
    /// Milliseconds a write holds its row locks.
    #[arg(long, env = "SALESFORCE_SIMULATOR_LOCK_HOLD_MS", default_value_t = 0)]
    lock_hold_ms: u64,
    /// Bulk API ingest speed, records per second.
    #[arg(
        long,
        env = "SALESFORCE_SIMULATOR_BULK_RECORDS_PER_SECOND",
        default_value_t = 10_000.0
    )]
    bulk_records_per_second: f64,
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
    let config = Config {
        bind: args.bind,
        grpc_bind: args.grpc_bind,
        client_id: args.client_id,
        client_secret: args.client_secret,
        token_lifetime: Duration::from_secs(args.token_seconds),
        daily_api_requests: args.daily_api_requests,
        long_running_after: Duration::from_millis(args.long_running_ms),
        lock_hold: Duration::from_millis(args.lock_hold_ms),
        bulk_records_per_second: args.bulk_records_per_second,
        ..Config::default()
    };
    let sim = Simulator::start(config)
        .await
        .context("starting the simulator")?;
    tracing::info!(
        instance_url = %sim.base_url(),
        pubsub = %sim.pubsub_url(),
        org_id = %sim.config().org_id,
        "salesforce simulator listening"
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
