//! Shopify's own `function-runner` (9.2.1) on the Function's wasm after Shopify's trampoline
//! (`shopify_function_trampoline` 2.0.1): the count the platform's limit is judged by. Both are
//! built outside the project from their sources (see `shopify-function/README.md`); when they
//! are absent, the `rules` benchmark says so and reports the [`crate::function`] harness alone.
//!
//! Where they are looked up: `FUNCTION_RUNNER_BIN` and `SHOPIFY_TRAMPOLINE_BIN`, else
//! [`DEFAULT_DIR`] under the home directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// Where the binaries are expected when the environment names none, under `$HOME`.
pub const DEFAULT_DIR: &str = ".cache/wholesail/function-runner";
/// The runner's file name in [`DEFAULT_DIR`], and the variable that overrides its path.
pub const RUNNER: (&str, &str) = ("function-runner", "FUNCTION_RUNNER_BIN");
/// The trampoline's file name in [`DEFAULT_DIR`] (cargo builds `shopify_function_trampoline`;
/// the name it is released under is also accepted), and the variable that overrides its path.
pub const TRAMPOLINE: (&str, &str) = ("shopify-function-trampoline", "SHOPIFY_TRAMPOLINE_BIN");
const TRAMPOLINE_AS_BUILT: &str = "shopify_function_trampoline";

/// The paths where the two binaries are looked for: the runner's, then the trampoline's.
pub fn expected_paths() -> [PathBuf; 2] {
    let dir = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(DEFAULT_DIR);
    let [runner, trampoline] = [RUNNER, TRAMPOLINE].map(|(file, var)| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join(file))
    });
    let as_built = dir.join(TRAMPOLINE_AS_BUILT);
    let trampoline = if std::env::var_os(TRAMPOLINE.1).is_none()
        && !trampoline.is_file()
        && as_built.is_file()
    {
        as_built
    } else {
        trampoline
    };
    [runner, trampoline]
}

/// One run by Shopify's runner.
pub struct RunnerRun {
    /// Instructions as the runner counts them (its `instructions` field).
    pub instructions: u64,
    /// The Function's output.
    pub output: Value,
}

/// A Function module trampolined for Shopify's runner, ready to run on inputs.
pub struct ShopifyRunner {
    runner: PathBuf,
    module: PathBuf,
    schema: PathBuf,
    query: PathBuf,
    export: String,
    scratch: PathBuf,
}

impl ShopifyRunner {
    /// Trampolines `wasm` into `scratch` when both binaries exist; `Ok(None)` when either is
    /// missing. `schema` and `query` are given to the runner, which checks the input against
    /// them.
    pub fn locate(
        wasm: &Path,
        export: &str,
        schema: &Path,
        query: &Path,
        scratch: &Path,
    ) -> Result<Option<Self>> {
        let [runner, trampoline] = expected_paths();
        if !runner.is_file() || !trampoline.is_file() {
            return Ok(None);
        }
        std::fs::create_dir_all(scratch)?;
        let module = scratch.join("function.trampolined.wasm");
        let status = Command::new(&trampoline)
            .arg("-i")
            .arg(wasm)
            .arg("-o")
            .arg(&module)
            .status()
            .with_context(|| format!("running {}", trampoline.display()))?;
        ensure!(status.success(), "{} failed", trampoline.display());
        Ok(Some(Self {
            runner,
            module,
            schema: schema.to_owned(),
            query: query.to_owned(),
            export: export.to_owned(),
            scratch: scratch.to_owned(),
        }))
    }

    /// Runs the Function once on `input` (JSON; the runner encodes it as MessagePack for the
    /// provider, as Shopify does).
    pub fn run(&self, input: &Value) -> Result<RunnerRun> {
        let path = self.scratch.join("input.json");
        std::fs::write(&path, serde_json::to_vec(input)?)?;
        let out = Command::new(&self.runner)
            .arg("-f")
            .arg(&self.module)
            .arg("-i")
            .arg(&path)
            .arg("-e")
            .arg(&self.export)
            .arg("-s")
            .arg(&self.schema)
            .arg("-q")
            .arg(&self.query)
            .arg("--json")
            .output()
            .with_context(|| format!("running {}", self.runner.display()))?;
        let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "{} printed no JSON report: {}",
                self.runner.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if report["success"] != Value::Bool(true) {
            bail!("the Function failed in function-runner: {}", report["logs"]);
        }
        let instructions = report["instructions"]
            .as_u64()
            .context("the runner's report has no instructions")?;
        Ok(RunnerRun {
            instructions,
            output: report["output"].clone(),
        })
    }
}
