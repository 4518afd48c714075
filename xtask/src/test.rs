//! `cargo xtask test`: every check the project has, in the order that fails fastest.

use anyhow::Result;

use crate::shell::{self, cmd};
use crate::{chaos, edge, function, fuzz, pg_tls, postgres, prometheus, prune, setup, sqlx_data};

/// Prunes the build cache when its disk runs low, then runs setup, formatting, the check that `.sqlx/` is current, clippy, the Prometheus rules'
/// promtool tests, the workspace tests against a local PostgreSQL (the console's browser
/// test, `origin/tests/console_browser.rs`, among them: Chromium from setup), the edge
/// worker's tests in workerd, the Function's wasm build, each fuzz target briefly and the
/// chaos test.
pub fn run() -> Result<()> {
    prune::if_low_on_disk(&shell::target_dir())?;
    setup::run()?;
    shell::run(&mut cmd("cargo", &["fmt", "--all", "--check"]))?;
    let url = postgres::ensure()?;
    std::env::set_var("DATABASE_URL", &url);
    pg_tls::for_tests(&url);
    sqlx_data::run(true)?;
    shell::run(&mut cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ))?;
    prometheus::check()?;
    // The bench crate has no tests; clippy above already compiles it.
    shell::run(&mut cmd(
        "cargo",
        &["test", "--workspace", "--exclude", "wholesail-bench"],
    ))?;
    function::build_and_check()?;
    edge::build_and_test(&url)?;
    fuzz::run(&[])?;
    // Last: it restarts a PostgreSQL cluster of its own, never the one above.
    chaos::run()?;
    Ok(())
}
