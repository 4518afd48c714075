//! Origin's metrics checked by the real tools: a live `/metrics` scrape of `origin serve` and
//! every catalogued metric pass `promtool check metrics`; the catalog
//! (`wholesail_origin::metrics_catalog`), `docs/metrics.md` and the code agree; the Grafana
//! dashboard parses, its queries are valid PromQL (`promtool check rules`) and use only
//! metrics origin exports or recording rules define.
//!
//! promtool comes from Debian's `prometheus` package (`cargo xtask setup` installs it).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_origin::auth::{tokens, Scope};
use wholesail_origin::metrics_catalog::{self, Kind, METRICS};

/// A token with only `ops:read`, as Prometheus would use.
const READER: &str = "wso_prometheus-reader-token-0123456789ab";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `promtool <args>` with `stdin`; its exit status and everything it printed.
fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; cargo xtask setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The metric families of a scrape (its `# TYPE` lines).
fn families(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

async fn scrape(origin: &Origin) -> String {
    let resp = reqwest::Client::new()
        .get(origin.url("/metrics"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_live_scrape_after_traffic_passes_promtool_check_metrics(pool: PgPool) {
    let origin = Origin::spawn(&database_url(&pool), &[]);
    // `origin serve` has migrated the database by now.
    tokens::insert(&pool, "prometheus", &[Scope::OpsRead], READER, None)
        .await
        .unwrap();
    let url = origin.url("/internal/webhooks");
    let envelopes: Vec<Value> = (0..5)
        .map(|i| envelope(&format!("m-{i}"), "acme.myshopify.com", 4_000 + i))
        .collect();
    let resp = post_signed(&url, &json!({ "envelopes": envelopes })).await;
    assert_eq!(resp.status(), 200);
    // The same again (duplicates), and one without a valid signature (refused).
    assert_eq!(post_signed(&url, &envelopes[0]).await.status(), 200);
    let forged = reqwest::Client::new()
        .post(&url)
        .header(wholesail_webhook::SIGNATURE_HEADER, "v2,edge-test,1,00")
        .json(&envelopes[1])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let origin = &origin;
    eventually(
        Duration::from_secs(30),
        "the 5 events applied",
        || async move {
            scrape(origin)
                .await
                .contains("wholesail_processing_lag_seconds_count 5")
        },
    )
    .await;
    let text = scrape(origin).await;

    let (ok, problems) = promtool(&["check", "metrics"], &text);
    assert!(ok && problems.is_empty(), "{problems}\n--- scrape:\n{text}");
    let found = families(&text);
    for name in [
        "wholesail_intake_events_total",
        "wholesail_events_processed_total",
        "wholesail_handler_duration_seconds",
        "wholesail_inbox_depth",
    ] {
        assert!(found.contains(name), "{name} missing from\n{text}");
    }
    for name in &found {
        let m = metrics_catalog::find(name)
            .unwrap_or_else(|| panic!("{name} is exported but not in the metrics catalog"));
        assert!(
            text.contains(&format!("# HELP {name} {}", m.help)),
            "{name} has no help line"
        );
    }
}

#[test]
fn every_catalogued_metric_passes_promtool_check_metrics() {
    let handle = wholesail_origin::ops::recorder();
    metrics_catalog::describe();
    for m in METRICS {
        let labels: Vec<(String, String)> = m
            .labels
            .iter()
            .map(|l| ((*l).to_owned(), "x".to_owned()))
            .collect();
        match m.kind {
            Kind::Counter => metrics::counter!(m.name, &labels).increment(1),
            Kind::Gauge => metrics::gauge!(m.name, &labels).set(1.0),
            Kind::Histogram => metrics::histogram!(m.name, &labels).record(0.5),
        }
    }
    handle.run_upkeep();
    let text = handle.render();
    let (ok, problems) = promtool(&["check", "metrics"], &text);
    assert!(ok && problems.is_empty(), "{problems}\n--- scrape:\n{text}");
    let all: BTreeSet<String> = METRICS.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(families(&text), all);
}

/// Metric names recorded by `metrics::counter!`/`gauge!`/`histogram!` with a literal name in
/// the `.rs` files under `dir`.
fn recorded_in(dir: &Path, names: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            recorded_in(&path, names);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for macro_ in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(macro_) {
                let rest = text[at + macro_.len()..].trim_start();
                let Some(rest) = rest.strip_prefix('"') else {
                    continue; // a name from a variable (the catalog's own loops)
                };
                let name = &rest[..rest.find('"').unwrap()];
                names.insert(name.to_owned());
            }
        }
    }
}

#[test]
fn every_metric_the_code_records_is_catalogued() {
    let mut names = BTreeSet::new();
    for dir in ["origin/src", "shopify-admin/src", "salesforce-client/src"] {
        recorded_in(&repo().join(dir), &mut names);
    }
    names.insert(wholesail_shopify_admin::breaker::STATE_METRIC.to_owned());
    names.insert(wholesail_salesforce::BREAKER_METRIC.to_owned());
    assert!(names.len() > 50, "the scan found the metrics: {names:?}");
    let missing: Vec<_> = names
        .iter()
        .filter(|n| metrics_catalog::find(n).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "add to origin/src/metrics_catalog.rs and docs/metrics.md: {missing:?}"
    );
}

#[test]
fn docs_list_exactly_the_catalogued_metrics() {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let listed: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `wholesail_"))
        .map(|l| format!("wholesail_{}", &l[..l.find('`').unwrap()]))
        .collect();
    let catalogued: BTreeSet<String> = METRICS.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(listed, catalogued, "docs/metrics.md and METRICS differ");
}

/// Every series name a PromQL expression mentions that starts with `wholesail`.
fn series_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("wholesail") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        rest = &rest[at + name.len()..];
        out.insert(name);
    }
    out
}

#[test]
fn the_dashboard_queries_are_valid_and_use_only_exported_metrics() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/wholesail.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "Intake & inbox",
            "Latency vs SLO per stage",
            "Problems",
            "Catalog",
            "Rules push",
            "Draft orders",
            "Shopify cost & throttle",
            "Salesforce",
            "Reconciliation"
        ]
    );
    let rules =
        std::fs::read_to_string(repo().join("deploy/prometheus/wholesail.rules.yml")).unwrap();
    let recorded: BTreeSet<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .collect();
    let mut exprs = Vec::new();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${datasource}");
            let expr = target["expr"].as_str().unwrap();
            for name in series_in(expr) {
                assert!(
                    metrics_catalog::find(&name).is_some() || recorded.contains(name.as_str()),
                    "panel {}: {name} is neither exported nor recorded",
                    panel["title"]
                );
            }
            exprs.push(expr.replace("$__rate_interval", "5m"));
        }
    }
    assert!(exprs.len() > 40, "{} queries", exprs.len());
    // promtool parses each query as a recording rule's expression.
    let file = std::env::temp_dir().join(format!(
        "wholesail-dashboard-{}.rules.yml",
        std::process::id()
    ));
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        yaml.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    std::fs::write(&file, yaml).unwrap();
    let (ok, out) = promtool(&["check", "rules", file.to_str().unwrap()], "");
    std::fs::remove_file(&file).unwrap();
    assert!(ok, "{out}");
}

#[tokio::test]
async fn shopify_requests_are_counted_per_shop_with_cost_and_throttles() {
    use secrecy::SecretString;
    use shopify_simulator::{Simulator, SimulatorConfig, DEFAULT_TOKEN};
    use wholesail_shopify_admin::{AdminClient, AdminConfig};
    const SHOP: &str = "metrics-test.myshopify.com";
    let handle = wholesail_origin::ops::recorder();
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let mut config = AdminConfig::new(sim.base_url(), "2026-01", SecretString::from(DEFAULT_TOKEN));
    config.shop = SHOP.to_owned();
    config.backoff_base = Duration::from_millis(1);
    let client = AdminClient::new(config).unwrap();
    client.shop_name().await.unwrap();
    client.shop_name().await.unwrap();
    // Throttled once (not executed), then answered.
    sim.fail_next(1, 429);
    client.shop_name().await.unwrap();

    let text = handle.render();
    let line = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse::<f64>()
            .unwrap()
    };
    let shop = format!("shop=\"{SHOP}\"");
    assert_eq!(
        line(&format!(
            "wholesail_shopify_requests_total{{{shop},result=\"ok\"}}"
        )),
        3.0
    );
    assert_eq!(
        line(&format!(
            "wholesail_shopify_requests_total{{{shop},result=\"throttled\"}}"
        )),
        1.0
    );
    assert_eq!(
        line(&format!("wholesail_shopify_throttled_total{{{shop}}}")),
        1.0
    );
    assert_eq!(
        line(&format!("wholesail_shopify_cost_points_total{{{shop}}}")),
        client.cost_spent() as f64
    );
    assert!(
        client.cost_spent() >= 3,
        "each query costs at least 1 point"
    );
    let maximum = line(&format!(
        "wholesail_shopify_bucket_maximum_points{{{shop}}}"
    ));
    let available = line(&format!(
        "wholesail_shopify_bucket_available_points{{{shop}}}"
    ));
    assert_eq!(
        maximum,
        sim.throttle_status(shopify_simulator::DEFAULT_SHOP)
            .maximum_available
    );
    assert!(
        available > 0.0 && available <= maximum,
        "{available} of {maximum}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_completed_catalog_run_is_counted_with_its_rows_and_times(pool: PgPool) {
    use secrecy::SecretString;
    use shopify_simulator::{CatalogSpec, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN};
    use wholesail_origin::catalog::{Runner, Settings};
    use wholesail_shopify_admin::{AdminClient, AdminConfig};
    let handle = wholesail_origin::ops::recorder();
    let mut sim_config = SimulatorConfig::default();
    sim_config.shops[0].catalog = CatalogSpec::new(3, 12);
    sim_config.bulk.duration = Duration::from_millis(50);
    let sim = Simulator::start(sim_config).await.unwrap();
    let mut config = AdminConfig::new(sim.base_url(), "2026-01", SecretString::from(DEFAULT_TOKEN));
    config.shop = DEFAULT_SHOP.to_owned();
    let client = AdminClient::new(config).unwrap();
    let settings = Settings {
        poll_interval: Duration::from_millis(50),
        ..Settings::default()
    };
    let runner = Runner::from_url(pool.clone(), &database_url(&pool), settings).unwrap();
    let out = runner
        .resync(&client, &domain(DEFAULT_SHOP), &|_| {})
        .await
        .unwrap();

    let text = handle.render();
    let line = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse::<f64>()
            .unwrap()
    };
    let shop = format!("shop=\"{DEFAULT_SHOP}\"");
    assert_eq!(
        line(&format!(
            "wholesail_catalog_runs_total{{{shop},outcome=\"completed\"}}"
        )),
        1.0
    );
    assert_eq!(
        line(&format!("wholesail_catalog_rows_staged_total{{{shop}}}")),
        out.staged.total() as f64
    );
    assert_eq!(
        line(&format!(
            "wholesail_catalog_rows_merged_total{{{shop},change=\"inserted\"}}"
        )),
        out.merged.total().inserted as f64
    );
    assert_eq!(
        line(&format!("wholesail_catalog_stage_seconds_count{{{shop}}}")),
        1.0
    );
    assert_eq!(
        line(&format!("wholesail_catalog_merge_seconds_count{{{shop}}}")),
        1.0
    );
    // Catalog durations have buckets up to two hours (the default ones end at 300 s).
    assert_eq!(
        line(&format!(
            "wholesail_catalog_stage_seconds_bucket{{{shop},le=\"7200\"}}"
        )),
        1.0
    );
    assert!(line(&format!("wholesail_catalog_rows_per_second{{{shop}}}")) > 0.0);
}
