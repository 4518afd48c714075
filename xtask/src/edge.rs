//! Building the edge worker with worker-build and testing it in workerd.

use anyhow::Result;

/// Builds the worker and runs its workerd tests against a real origin on `database_url`.
pub fn build_and_test(_database_url: &str) -> Result<()> {
    eprintln!("edge: no workerd tests yet");
    Ok(())
}

/// `cargo xtask bench edge`.
pub fn bench() -> Result<()> {
    anyhow::bail!("the edge benchmark does not exist yet")
}
