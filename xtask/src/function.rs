//! Building the Shopify Function's wasm and checking it against Shopify's limits.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::shell::{self, cmd};

/// Shopify's limit on a Function's wasm module.
pub const MAX_MODULE_BYTES: u64 = 256 * 1024;

/// Where the `function` profile puts the module.
pub fn wasm_path() -> PathBuf {
    shell::target_dir().join("wasm32-unknown-unknown/function/wholesail-function.wasm")
}

/// Builds the Function for `wasm32-unknown-unknown` with the `function` profile, prints its
/// size and fails if it exceeds Shopify's 256 KB module limit.
pub fn build_and_check() -> Result<()> {
    shell::run(&mut cmd(
        "cargo",
        &[
            "build",
            "-p",
            "wholesail-function",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "function",
        ],
    ))?;
    let path = wasm_path();
    let size = std::fs::metadata(&path)
        .with_context(|| format!("the build did not produce {}", path.display()))?
        .len();
    eprintln!(
        "function: {} is {size} bytes ({:.1}% of Shopify's {MAX_MODULE_BYTES}-byte limit)",
        path.display(),
        100.0 * size as f64 / MAX_MODULE_BYTES as f64
    );
    if size > MAX_MODULE_BYTES {
        bail!("the Function's wasm is {size} bytes, over Shopify's {MAX_MODULE_BYTES}-byte module limit");
    }
    Ok(())
}
