//! `cargo xtask sqlx [--check]`: the offline data of origin's `query!`/`query_as!` macros.
//!
//! Builds normally read `.sqlx/` (`SQLX_OFFLINE=true` in `.cargo/config.toml`), so compiling
//! needs no database. This command migrates a scratch database, compiles origin once against
//! it with the macros writing what they checked into a fresh directory, and replaces `.sqlx/`
//! with it; `--check` (run by `cargo xtask test`) fails instead when `.sqlx/` differs, naming
//! the stale and missing files. It compiles in a target directory of its own
//! (`~/.cache/wholesail/sqlx-target`) so that it can force origin to recompile without
//! throwing away the main build.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::postgres;
use crate::shell::{self, cmd};

const DATABASE: &str = "wholesail_sqlx_prepare";

/// Regenerates `.sqlx/`, or with `check` only compares.
pub fn run(check: bool) -> Result<()> {
    let url = postgres::recreate_database(DATABASE)?;
    for migration in migrations()? {
        postgres::run_file(&url, &migration)?;
    }
    let target = sqlx_target_dir();
    let fresh = target.join("sqlx-data");
    if fresh.exists() {
        fs::remove_dir_all(&fresh)?;
    }
    fs::create_dir_all(&fresh)?;
    // Forces the macros to run again: cargo cannot see a changed schema.
    shell::run(
        cmd("cargo", &["clean", "--package", "wholesail-origin"]).env("CARGO_TARGET_DIR", &target),
    )?;
    shell::run(
        cmd(
            "cargo",
            &["check", "--package", "wholesail-origin", "--lib", "--bins"],
        )
        .env("CARGO_TARGET_DIR", &target)
        .env("SQLX_OFFLINE", "false")
        .env("DATABASE_URL", &url)
        .env("SQLX_OFFLINE_DIR", &fresh),
    )?;
    let committed = shell::root().join(".sqlx");
    let (want, have) = (files(&fresh)?, files(&committed)?);
    if check {
        let stale: Vec<&String> = have
            .keys()
            .filter(|k| want.get(*k) != have.get(*k))
            .collect();
        let missing: Vec<&String> = want.keys().filter(|k| !have.contains_key(*k)).collect();
        if !stale.is_empty() || !missing.is_empty() {
            bail!(
                ".sqlx/ is out of date (run `cargo xtask sqlx`): stale or unused {stale:?}, \
                 missing {missing:?}"
            );
        }
        eprintln!(".sqlx/ is current: {} queries", want.len());
        return Ok(());
    }
    if committed.exists() {
        fs::remove_dir_all(&committed)?;
    }
    fs::create_dir_all(&committed)?;
    for (name, body) in &want {
        fs::write(committed.join(name), body)?;
    }
    eprintln!("wrote {} queries to .sqlx/", want.len());
    Ok(())
}

fn sqlx_target_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache/wholesail/sqlx-target")
}

/// The migrations in the order sqlx applies them (by version, the file name's prefix).
fn migrations() -> Result<Vec<PathBuf>> {
    let mut all: Vec<PathBuf> = fs::read_dir(shell::root().join("migrations"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    all.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    all.sort();
    Ok(all)
}

/// The query files of a directory by name (empty when it does not exist).
fn files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if name.starts_with("query-") && name.ends_with(".json") {
                out.insert(name.to_owned(), fs::read(&path)?);
            }
        }
    }
    Ok(out)
}
