//! `cargo xtask setup`: installs the tools building and testing need, skipping what is present
//! (the wasm target, worker-build, wasm-bindgen, the npm tooling, Debian's prometheus package:
//! promtool, and the server `demo --observe` runs; and Debian's Chromium for the console's
//! browser test).
//!
//! Cargo-installed tools go to `~/.cargo/bin` and npm's cache to `~/.cache/npm`, outside the
//! clone, so a fresh clone on a machine that ran this before installs nothing new.

use anyhow::{Context, Result};

use crate::shell::{self, cmd, on_path, output, root};

/// The worker-build version matching the `worker` crate in Cargo.lock.
const WORKER_BUILD_VERSION: &str = "0.8.7";

/// Installs whatever is missing.
pub fn run() -> Result<()> {
    wasm_target()?;
    cargo_tool(
        "worker-build",
        WORKER_BUILD_VERSION,
        &["install", "worker-build", "--version", WORKER_BUILD_VERSION],
    )?;
    let bindgen = locked_version("wasm-bindgen")?;
    cargo_tool(
        "wasm-bindgen",
        &bindgen,
        &["install", "wasm-bindgen-cli", "--version", &bindgen],
    )?;
    npm_tools()?;
    debian_package("promtool", "prometheus")?;
    debian_package("chromium", "chromium")
}

/// Installs Debian package `package` with apt-get (as root) when `tool` is not on PATH.
fn debian_package(tool: &str, package: &str) -> Result<()> {
    if on_path(tool) {
        return Ok(());
    }
    eprintln!("installing {package} for {tool}");
    shell::run(&mut cmd("apt-get", &["update", "-q"]))?;
    shell::run(
        cmd(
            "apt-get",
            &["install", "-y", "-q", "--no-install-recommends", package],
        )
        .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn wasm_target() -> Result<()> {
    let installed =
        output(&mut cmd("rustup", &["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l == "wasm32-unknown-unknown") {
        return Ok(());
    }
    shell::run(&mut cmd(
        "rustup",
        &["target", "add", "wasm32-unknown-unknown"],
    ))
}

/// Installs `tool` with `cargo <install_args>` unless `tool --version` already reports `version`.
pub fn cargo_tool(tool: &str, version: &str, install_args: &[&str]) -> Result<()> {
    let current = output(&mut cmd(tool, &["--version"])).unwrap_or_default();
    if current.split_whitespace().any(|w| w == version) {
        return Ok(());
    }
    eprintln!("installing {tool} {version} (found: {current:?})");
    shell::run(&mut cmd("cargo", install_args))
}

/// The version of `package` that Cargo.lock pins.
pub fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .with_context(|| format!("{package} is not in Cargo.lock"))?
        + needle.len();
    let end = lock[start..].find('"').context("unterminated version")? + start;
    Ok(lock[start..end].to_owned())
}

/// `npm ci` for the edge tooling (wrangler, miniflare/workerd, esbuild, binaryen) and the
/// console's browser test (playwright-core) when `node_modules` is missing or lacks one.
fn npm_tools() -> Result<()> {
    let root = root();
    if !root.join("package.json").is_file()
        || (root.join("node_modules/.package-lock.json").is_file()
            && root
                .join("node_modules/playwright-core/package.json")
                .is_file())
    {
        return Ok(());
    }
    if !on_path("npm") {
        anyhow::bail!("npm is not on PATH: install Node.js 20+ with npm");
    }
    let cache = home().join(".cache/npm");
    shell::run(&mut cmd(
        "npm",
        &[
            "ci",
            "--cache",
            cache.to_str().context("cache path is not UTF-8")?,
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
        ],
    ))
}

fn home() -> std::path::PathBuf {
    std::env::var_os("HOME")
        .map(Into::into)
        .unwrap_or_else(|| "/root".into())
}
