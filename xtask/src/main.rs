//! Wholesail's developer tasks, run as `cargo xtask <task>`:
//!
//! - `setup`: installs what building and testing need (wasm target, worker-build,
//!   wasm-bindgen-cli matching Cargo.lock, the npm tools); skips what is present.
//! - `test`: setup, a local PostgreSQL, formatting, clippy, the workspace tests, the edge
//!   worker's tests in workerd, the Function's wasm build and `chaos`. The README's test
//!   command.
//! - `demo [--ci] [--observe]`: setup, then the whole system locally. The README's demo
//!   command; `--ci` runs every step with a smaller catalog (CI runs it); `--observe` also runs
//!   Prometheus scraping origin.
//! - `chaos`: origin killed, PostgreSQL restarted and origin held down while a few thousand
//!   webhooks flow through the edge; then 0 lost, 0 doubled. `test` runs it last.
//! - `bench <name>`: setup, then one benchmark; `bench` alone lists them.
//! - `fuzz [target] [--seconds N] [--merge]`: the cargo-fuzz targets in `fuzz/`, N seconds
//!   each (default 20) on the saved corpus; fails on a crash.
//! - `sqlx [--check]`: regenerates `.sqlx/`, the offline data of origin's checked queries,
//!   from a freshly migrated database; `--check` fails when it is out of date (`test` runs it).
//! - `pg [--tls]`: starts (or finds) the local PostgreSQL and prints `export DATABASE_URL=…`;
//!   with `--tls`, turns TLS on for it (a self-signed CA, see `pg_tls`) and also prints
//!   `export WHOLESAIL_PG_CA=…`. `test` does that for the private cluster by itself.

mod bench;
mod chaos;
mod demo;
mod edge;
mod function;
mod fuzz;
mod http;
mod pg_tls;
mod postgres;
mod prometheus;
mod prune;
mod service;
mod setup;
mod shell;
mod sqlx_data;
mod test;

use anyhow::{bail, Result};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup::run(),
        Some("test") => test::run(),
        Some("demo") => demo::run(&rest),
        Some("chaos") => setup::run().and_then(|()| chaos::run()),
        Some("bench") => bench::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("sqlx") => sqlx_data::run(rest.contains(&"--check")),
        Some("pg") => {
            let url = postgres::ensure()?;
            println!("export DATABASE_URL={url}");
            if rest.contains(&"--tls") {
                let ca = pg_tls::enable(&url)?;
                println!("export WHOLESAIL_PG_CA={}", ca.display());
            }
            Ok(())
        }
        _ => bail!(
            "usage: cargo xtask <setup|test|demo [--ci] [--observe]|chaos|bench [name]|fuzz [target] [--seconds N]|pg [--tls]|sqlx [--check]>"
        ),
    }
}
