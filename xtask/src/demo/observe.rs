//! `cargo xtask demo --observe`: Prometheus (Debian's `prometheus` package, which `cargo xtask
//! setup` installs with promtool) on [`PROMETHEUS_ADDR`], scraping origin's `/metrics` every
//! 5 s with a token that has only `ops:read`, and evaluating `deploy/prometheus/
//! wholesail.rules.yml`. Its configuration, token file, data and log go to
//! `<target>/demo/prometheus/` (data fresh on each run); it stops with the demo.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::http;
use crate::service::Service;
use crate::shell::root;

/// Where the demo's Prometheus listens.
pub const PROMETHEUS_ADDR: &str = "127.0.0.1:19090";
/// Debian's Prometheus server.
const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// Starts Prometheus scraping origin at `origin_addr` with `token` (ops:read); returns once its
/// HTTP API answers.
pub fn start(dir: &Path, origin_addr: &str, token: &str) -> Result<Service> {
    if !Path::new(PROMETHEUS_BIN).is_file() {
        bail!("{PROMETHEUS_BIN} is missing: `cargo xtask setup` installs Debian's prometheus");
    }
    let home = dir.join("prometheus");
    let data = home.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data).context("clearing the last run's Prometheus data")?;
    }
    std::fs::create_dir_all(&data)?;
    let token_file = home.join("token");
    write_private(&token_file, token)?;
    let rules = root().join("deploy/prometheus/wholesail.rules.yml");
    let config = home.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: origin\n    metrics_path: /metrics\n\
             \x20   authorization:\n      type: Bearer\n      credentials_file: {token}\n\
             \x20   static_configs:\n      - targets: [\"{origin_addr}\"]\n",
            rules = rules.display(),
            token = token_file.display(),
        ),
    )?;
    let mut c = Command::new(PROMETHEUS_BIN);
    c.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={PROMETHEUS_ADDR}"))
        .arg("--log.level=warn");
    let mut prometheus = Service::start("Prometheus", c, &home.join("prometheus.log"))?;
    let ready = format!("http://{PROMETHEUS_ADDR}/-/ready");
    prometheus.wait_ready(Duration::from_secs(30), |_| http::ok(&ready))?;
    Ok(prometheus)
}

/// What Prometheus reports of its origin target: `(health, summary)`, e.g. `("up", "origin
/// 127.0.0.1:18080 up, last scrape 0.004 s, …")`.
pub fn target() -> Result<(String, String)> {
    let url = format!("http://{PROMETHEUS_ADDR}/api/v1/targets?state=active");
    let (status, body) = http::get_json(&url, "")?;
    if status != 200 {
        bail!("GET {url}: {status} {body}");
    }
    let target = body["data"]["activeTargets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["labels"]["job"] == "origin"))
        .context("Prometheus has no origin target")?;
    let health = target["health"].as_str().unwrap_or("unknown").to_owned();
    let error = target["lastError"].as_str().unwrap_or_default();
    let summary = format!(
        "origin {} {health}, last scrape {:.3} s{}",
        target["labels"]["instance"].as_str().unwrap_or("?"),
        target["lastScrapeDuration"].as_f64().unwrap_or(f64::NAN),
        if error.is_empty() {
            String::new()
        } else {
            format!(" ({error})")
        }
    );
    Ok((health, summary))
}

/// Rule groups loaded and alerts firing, from `/api/v1/rules`.
pub fn rules() -> Result<String> {
    let url = format!("http://{PROMETHEUS_ADDR}/api/v1/rules");
    let (_, body) = http::get_json(&url, "")?;
    let groups = body["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rules: Vec<&Value> = groups
        .iter()
        .filter_map(|g| g["rules"].as_array())
        .flatten()
        .collect();
    let firing: Vec<&str> = rules
        .iter()
        .filter(|r| r["state"] == "firing")
        .filter_map(|r| r["name"].as_str())
        .collect();
    Ok(format!(
        "{} rule groups, {} rules, firing: {}",
        groups.len(),
        rules.len(),
        if firing.is_empty() {
            "none".to_owned()
        } else {
            firing.join(", ")
        }
    ))
}

/// Writes `secret` to `path`, readable by its owner only.
fn write_private(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Created anew, so that the mode applies.
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::File::options()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}
