//! `cargo xtask demo`: the whole system locally.

use anyhow::Result;

use crate::postgres;

/// Runs the demo.
pub fn run() -> Result<()> {
    let url = postgres::ensure()?;
    println!("PostgreSQL: {url}");
    Ok(())
}
