//! Shared measuring tools of Wholesail's benchmark binaries (`src/bin/*`, run by
//! `cargo xtask bench <name>`): medians, per-call timing and scratch databases, and the
//! [`function`] harness that runs the Shopify Function's real wasm, and [`function_runner`],
//! Shopify's own runner when it is installed.

pub mod function;
pub mod function_runner;

use std::time::Instant;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The median of `xs` (the upper one for an even count). Panics on an empty sample.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds per call of `f` over `rounds` rounds of `iters` calls.
pub fn time_per_call(rounds: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    let samples = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() / iters as f64
        })
        .collect();
    median(samples)
}

/// Drops and recreates the database `name` through the server's `admin_url`, connects to it
/// at `db_url` with `connections` connections and applies origin's migrations.
pub async fn scratch_database(
    admin_url: &str,
    name: &str,
    db_url: &str,
    connections: u32,
) -> anyhow::Result<PgPool> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .connect(db_url)
        .await?;
    wholesail_origin::app::MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// `s` as a shop domain (the benchmarks' shops are valid `*.myshopify.com` names).
pub fn shop_domain(s: &str) -> wholesail_webhook::ShopDomain {
    wholesail_webhook::ShopDomain::parse(s).expect("a myshopify domain")
}
