//! Writes realistic Shopify `orders/create` bodies for the edge worker's workerd tests and its
//! benchmark: `shopify-fixtures <dir>` writes `order-<lines>.json` for 1, 3, 500 and 1,000 lines, made
//! by the simulator (the same payloads the strip benchmark measures).

use std::path::PathBuf;

use anyhow::Context;
use shopify_simulator::payloads::{order, OrderSpec};

/// The line counts written.
const LINES: [usize; 4] = [1, 3, 500, 1000];

fn main() -> anyhow::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .context("usage: shopify-fixtures <output dir>")?
        .into();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for lines in LINES {
        let body = order(&OrderSpec::new(lines as u64, lines)).to_string();
        let path = dir.join(format!("order-{lines}.json"));
        std::fs::write(&path, &body).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{}: {} bytes", path.display(), body.len());
    }
    Ok(())
}
