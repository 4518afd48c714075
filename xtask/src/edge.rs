//! Building the edge worker with worker-build and testing it in workerd.
//!
//! worker-build is pointed at local tools (wasm-bindgen from `cargo xtask setup`, wasm-opt and
//! esbuild from the npm packages) so it never tries to download them. The tests and the
//! benchmark run the built worker in workerd through Miniflare (`node_modules`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::shell::{self, cmd, root, target_dir};

/// The edge tests' time limit: they take well under a minute; a hang must not stall CI.
const TEST_TIMEOUT_SECS: &str = "300";

/// The benchmark's time limit: four workers (five with `EDGE_BENCH_BEFORE`), unpinned and
/// pinned; three took 8.5 min on the loaded 2-core machine.
const BENCH_TIMEOUT_SECS: &str = "1500";

/// Builds the worker and runs its workerd tests: against a local stand-in for origin that
/// checks envelope signatures and deduplicates (`edge/tests/edge.test.mjs`), and against the
/// real `origin` binary on a fresh database of the PostgreSQL server at `database_url`
/// (`edge/tests/real-origin.test.mjs`).
pub fn build_and_test(database_url: &str) -> Result<()> {
    let fixtures = write_fixtures()?;
    build_worker()?;
    shell::run(&mut cmd(
        "cargo",
        &["build", "-p", "wholesail-origin", "--bin", "origin"],
    ))?;
    shell::run(
        node(&[
            "timeout",
            TEST_TIMEOUT_SECS,
            "node",
            "--test",
            "edge/tests/",
        ])
        .env("EDGE_FIXTURES", &fixtures)
        .env("EDGE_TEST_ORIGIN_BIN", target_dir().join("debug/origin"))
        .env("DATABASE_URL", database_url),
    )
}

/// `cargo xtask bench edge`: the release worker and the JavaScript reference worker in
/// workerd, ack latency and throughput for 1- and 500-line orders.
pub fn bench() -> Result<()> {
    let fixtures = write_fixtures()?;
    build_worker()?;
    build_in(&root().join("bench/edge-floor"))?;
    shell::run(
        node(&[
            "timeout",
            BENCH_TIMEOUT_SECS,
            "node",
            "bench/edge/bench.mjs",
        ])
        .env("EDGE_FIXTURES", &fixtures),
    )
}

/// `cargo xtask bench edge-parse`: the passes of `bench/wasm-parse` (the edge's stripper,
/// serde_json's and simd-json's validating parses) built for wasm with SIMD and timed in V8 on
/// 1- and 500-line orders, beside JavaScript's `JSON.parse` of the same bodies.
pub fn bench_parse() -> Result<()> {
    let fixtures = write_fixtures()?;
    let out = target_dir().join("wasm-parse");
    shell::run(
        cmd(
            "cargo",
            &[
                "build",
                "--release",
                "-p",
                "wholesail-wasm-parse",
                "--target",
                "wasm32-unknown-unknown",
            ],
        )
        .env("CARGO_TARGET_DIR", &out)
        .env("RUSTFLAGS", "-C target-feature=+simd128")
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
    )?;
    let wasm = out.join("wasm32-unknown-unknown/release/wholesail_wasm_parse.wasm");
    let pkg = out.join("pkg");
    let mut bindgen = Command::new(wasm_bindgen_bin());
    bindgen
        .args(["--target", "nodejs", "--out-dir"])
        .arg(&pkg)
        .arg(&wasm);
    shell::run(&mut bindgen)?;
    let glue = pkg.join("wholesail_wasm_parse_bg.wasm");
    let mut opt = Command::new(root().join("node_modules/.bin/wasm-opt"));
    opt.args([
        "-O3",
        "--enable-simd",
        "--enable-bulk-memory",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "-o",
    ])
    .arg(&glue)
    .arg(&glue);
    shell::run(&mut opt)?;
    let (pkg, fixtures) = (
        pkg.to_str().context("target dir is not UTF-8")?,
        fixtures.to_str().context("target dir is not UTF-8")?,
    );
    shell::run(&mut node(&[
        "timeout",
        "600",
        "node",
        "bench/wasm-parse/run.mjs",
        pkg,
        &format!("{fixtures}/order-1.json"),
        &format!("{fixtures}/order-500.json"),
    ]))
}

/// Writes the simulator's order bodies the tests and the benchmark send.
fn write_fixtures() -> Result<PathBuf> {
    let dir = target_dir().join("edge-fixtures");
    let dir_str = dir.to_str().context("target dir is not UTF-8")?;
    shell::run(&mut cmd(
        "cargo",
        &[
            "run",
            "--release",
            "-q",
            "-p",
            "shopify-simulator",
            "--bin",
            "shopify-fixtures",
            "--",
            dir_str,
        ],
    ))?;
    Ok(dir)
}

/// `worker-build --release` in `edge/`, producing `edge/build/index.js` and its wasm. The
/// wasm build uses fat LTO and one codegen unit (as `wrangler.toml`'s build command does);
/// host builds keep the workspace's release profile.
pub fn build_worker() -> Result<()> {
    build_in(&root().join("edge"))
}

/// `worker-build --release` of the worker crate in `dir`, into `dir/build`.
fn build_in(dir: &Path) -> Result<()> {
    let bin = root().join("node_modules/.bin");
    let mut c = cmd("worker-build", &["--release"]);
    c.current_dir(dir)
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("WASM_BINDGEN_BIN", wasm_bindgen_bin())
        .env("WASM_OPT_BIN", bin.join("wasm-opt"))
        .env("ESBUILD_BIN", bin.join("esbuild"));
    shell::run(&mut c)
}

/// The wasm-bindgen CLI `cargo xtask setup` installed (`~/.cargo/bin`), or the one on PATH.
fn wasm_bindgen_bin() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    cargo_home
        .map(|h| h.join("bin/wasm-bindgen"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "wasm-bindgen".into())
}

/// A command running Node tooling with Cloudflare's telemetry and network look-ups off.
fn node(args: &[&str]) -> Command {
    let mut c = cmd(args[0], &args[1..]);
    c.env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
    c
}
