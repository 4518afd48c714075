//! `cargo xtask fuzz [target] [--seconds N] [--merge]`: builds the cargo-fuzz targets in
//! `fuzz/` and runs one (or each) for N seconds (default 20) on its saved corpus, failing on a
//! crash with the reproducer's path.
//!
//! libFuzzer needs nightly-only compiler flags (`-Zsanitizer`, coverage instrumentation); the
//! stable toolchain accepts them with `RUSTC_BOOTSTRAP=1`. The sanitizer build goes to its own
//! target directory beside the normal one, so neither rebuilds the other. New inputs land in a
//! scratch corpus there; `--merge` then adds those that reach new coverage to `fuzz/corpus/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::setup;
use crate::shell::{self, cmd, root};

/// The cargo-fuzz version installed when missing.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Seconds per target when `--seconds` is not given (what `cargo xtask test` runs).
const DEFAULT_SECONDS: u64 = 20;

/// The fuzz targets (binaries of `fuzz/Cargo.toml`), with what each checks.
const TARGETS: &[(&str, &str)] = &[
    (
        "strip",
        "allowlist stripper: serde_json's verdict, JSON out, idempotent",
    ),
    (
        "shopify_hmac",
        "Shopify HMAC headers: only a true HMAC passes, with its secret",
    ),
    (
        "envelope_signature",
        "envelope signature header: no panic, sign/verify round trip",
    ),
    (
        "jsonl_scanner",
        "bulk JSONL scanner vs serde_json: same verdict, same values",
    ),
    (
        "rules_payload",
        "rules metafield codec: round trip, decode of any bytes",
    ),
    (
        "rules_import",
        "rules CSV/JSON importer: no panic, exported rows re-import equal",
    ),
];

/// Parses the arguments and runs.
pub fn run(args: &[&str]) -> Result<()> {
    let mut target = None;
    let mut seconds = DEFAULT_SECONDS;
    let mut merge = false;
    let mut args = args.iter();
    while let Some(&a) = args.next() {
        match a {
            "--seconds" => {
                seconds = args
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds needs a whole number")?;
            }
            "--merge" => merge = true,
            t if TARGETS.iter().any(|(n, _)| *n == t) => target = Some(t),
            other => {
                eprintln!("usage: cargo xtask fuzz [target] [--seconds N] [--merge]\ntargets:");
                for (n, what) in TARGETS {
                    eprintln!("  {n:<20} {what}");
                }
                bail!("unknown argument {other:?}");
            }
        }
    }
    match target {
        Some(t) => fuzz(&[t], seconds, merge),
        None => fuzz(
            &TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            seconds,
            merge,
        ),
    }
}

/// Builds `targets` and runs each for `seconds` on its saved corpus; fails naming every
/// target that crashed and its reproducer.
pub fn fuzz(targets: &[&str], seconds: u64, merge: bool) -> Result<()> {
    setup::cargo_tool(
        "cargo-fuzz",
        CARGO_FUZZ_VERSION,
        &[
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
        ],
    )?;
    let dir = fuzz_target_dir();
    let mut build = cargo_fuzz(&dir, &["build"]);
    if let [one] = targets {
        build.arg(one);
    }
    shell::run(&mut build)?;

    let mut crashed = Vec::new();
    for &t in targets {
        let saved = root().join("fuzz/corpus").join(t);
        let scratch = dir.join("corpus").join(t);
        let artifacts = root().join("fuzz/artifacts").join(t);
        for d in [&saved, &scratch, &artifacts] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let before = files(&artifacts)?;
        let mut run = cargo_fuzz(&dir, &["run", t]);
        run.arg(&scratch).arg(&saved).args([
            "--".to_owned(),
            format!("-max_total_time={seconds}"),
            "-timeout=10".to_owned(),
            "-print_final_stats=1".to_owned(),
        ]);
        if let Err(e) = shell::run(&mut run) {
            let new: Vec<String> = files(&artifacts)?
                .difference(&before)
                .map(|p| p.display().to_string())
                .collect();
            eprintln!("fuzz target {t} failed ({e:#}); reproducer(s): {new:?}");
            eprintln!(
                "  rerun one: RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR={} cargo fuzz run {t} <file>",
                dir.display()
            );
            crashed.push(format!("{t}: {}", new.join(", ")));
            continue;
        }
        if merge {
            let mut m = cargo_fuzz(&dir, &["run", t]);
            // Edges only (no hit counts): a few hundred inputs per target rather than thousands.
            m.arg(&saved)
                .arg(&scratch)
                .args(["--", "-merge=1", "-use_counters=0"]);
            shell::run(&mut m)?;
        }
    }
    if !crashed.is_empty() {
        bail!("fuzzing found crashes: {}", crashed.join("; "));
    }
    Ok(())
}

/// `cargo fuzz <args>` with the stable toolchain unlocked and the fuzz target directory.
/// Never incremental: it gains nothing on these one-codegen-unit release builds, costs disk,
/// and a caller's differing `CARGO_INCREMENTAL` would otherwise rebuild everything.
fn cargo_fuzz(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = cmd("cargo", &["fuzz"]);
    c.args(args)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", dir)
        .env("CARGO_INCREMENTAL", "0");
    // `cargo xtask` is `cargo run`, which sets xtask's own `CARGO_PKG_*` and `CARGO_MANIFEST_*`;
    // ring's build script reruns when they change, so a fuzz build from here and one by hand
    // (`cargo fuzz …`) would each rebuild ring and everything above it (origin included).
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str() {
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_MANIFEST_")
                || matches!(
                    k,
                    "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
                )
            {
                c.env_remove(k);
            }
        }
    }
    c
}

/// `fuzz-target` beside the normal target directory (`~/.cache/wholesail/fuzz-target` in CI),
/// or `fuzz/target` when none is set.
fn fuzz_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).with_file_name("fuzz-target"),
        None => root().join("fuzz/target"),
    }
}

/// The files directly in `dir`.
fn files(dir: &Path) -> Result<BTreeSet<PathBuf>> {
    std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| Ok(e?.path()))
        .collect()
}
