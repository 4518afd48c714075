//! A buyer arrives by webhook, operations import its rules, origin pushes them to the
//! company location's metafields, and the real Function wasm rejects, then (after a rule
//! change through the admin API) accepts the same cart.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{
    check, http, step, wait_until, webhooks, Demo, ORIGIN_ADDR, SHOP, SHOP_TOKEN, SIMULATOR_ADDR,
};
use crate::function;
use crate::shell::{self, cmd, target_dir};

/// The demo buyer: a company location in the United States.
pub(super) const LOCATION: &str = "gid://shopify/CompanyLocation/8800001";
const COMPANY: &str = "gid://shopify/Company/7700001";

/// The buyer's company and location through the edge, rules imported and pushed, the
/// Function run on a sample cart before and after a rule change.
pub(super) fn rule_change_reaches_checkout(demo: &Demo) -> Result<()> {
    step("A buyer (company + location) arrives by webhook; the Function's wasm is built");
    let company = demo.dir.join("company.json");
    let location = demo.dir.join("company_location.json");
    std::fs::write(
        &company,
        json!({"id": 7700001, "admin_graphql_api_id": COMPANY, "name": "Northwind Wholesale",
               "updated_at": "2026-11-23T09:00:00Z", "created_at": "2026-01-05T10:00:00Z"})
        .to_string(),
    )?;
    std::fs::write(
        &location,
        json!({"id": 8800001, "admin_graphql_api_id": LOCATION, "name": "Northwind Chicago DC",
               "updated_at": "2026-11-23T09:00:00Z", "created_at": "2026-01-05T10:00:00Z",
               "company": {"admin_graphql_api_id": COMPANY, "name": "Northwind Wholesale"},
               "shipping_address": {"country_code": "US", "province_code": "IL",
                                    "zip": "60607", "city": "Chicago"}})
        .to_string(),
    )?;
    let report = webhooks::deliver(&[
        "--orders",
        "0",
        "--payload",
        &format!("companies/create={}", company.display()),
        "--payload",
        &format!("company_locations/create={}", location.display()),
    ])?;
    println!("   Shopify → edge → origin: companies/create, company_locations/create ({report})");
    wait_until(
        "the company location in origin's tables",
        Duration::from_secs(60),
        || {
            demo.count("SELECT count(*) FROM company_locations")
                .map(|n| n == 1)
        },
    )?;
    function::build_and_check()?;
    shell::run(&mut cmd(
        "cargo",
        &[
            "build",
            "-q",
            "--release",
            "-p",
            "wholesail-bench",
            "--bin",
            "run-function",
        ],
    ))?;

    step("Operations import the buyer's rules; origin pushes them to the location's metafields");
    let variant = demo.count("SELECT min(id) FROM variants")?;
    let product = demo.count(&format!(
        "SELECT product_id FROM variants WHERE id = {variant}"
    ))?;
    let rules = demo.dir.join("rules.csv");
    std::fs::write(
        &rules,
        format!(
            "rule,company_location,target,min_quantity,unit_price,increment,max_quantity\n\
             limits,{LOCATION},variant:{variant},6,,6,120\n\
             price,{LOCATION},product:{product},1,9.00,,\n\
             price,{LOCATION},product:{product},24,8.00,,\n"
        ),
    )?;
    println!("   rules.csv: case pack 6 (6..120 per line) on variant {variant}, price breaks on product {product}");
    let out = demo.origin_cli(&[
        "rules",
        "import",
        "--shop",
        SHOP,
        "--file",
        &rules.display().to_string(),
    ])?;
    println!(
        "   $ origin rules import --shop {SHOP} --file rules.csv\n   {}",
        out.trim()
    );
    let first = wait_for_push(demo, None)?;
    let cart = [(variant, 4)];
    let verdict = run_function(&cart)?;
    println!(
        "   checkout, 4 units of variant {variant}: {}",
        describe(&verdict)
    );
    check(
        errors(&verdict)
            .iter()
            .any(|m| m.starts_with("Case pack of 6")),
        "the Function rejects the cart with the case-pack message",
    )?;

    step("Operations change the case pack to 2 through the admin API; the push follows");
    let (status, answer) = http::send_json(
        "PUT",
        &format!("http://{ORIGIN_ADDR}/admin/rules"),
        &demo.ops_token,
        &json!({"shop": SHOP, "rules": [{"rule": "limits", "company_location": LOCATION,
                 "target": format!("variant:{variant}"), "increment": 2, "min_quantity": 2,
                 "max_quantity": 120}]}),
    )?;
    println!("   PUT /admin/rules → {status} {answer}");
    check(status == 200, "the rule change is accepted")?;
    wait_for_push(demo, Some(&first))?;
    let verdict = run_function(&cart)?;
    println!(
        "   checkout, 4 units of variant {variant}: {}",
        describe(&verdict)
    );
    check(
        errors(&verdict).is_empty(),
        "the Function accepts the same cart",
    )?;
    Ok(())
}

/// Waits for origin's background push to record a digest for the buyer's first page that
/// differs from `before`; returns it.
fn wait_for_push(demo: &Demo, before: Option<&str>) -> Result<String> {
    let started = Instant::now();
    let sql = format!(
        "SELECT digest FROM rules_pushed WHERE shop = '{SHOP}' AND owner_id = '{LOCATION}' \
         ORDER BY key LIMIT 1"
    );
    let mut digest = String::new();
    wait_until("origin's rules push", Duration::from_secs(60), || {
        digest = crate::postgres::query(&demo.db, &sql)?.trim().to_owned();
        Ok(!digest.is_empty() && Some(digest.as_str()) != before)
    })?;
    println!(
        "   pushed to the simulator's metafields {:.1} s later (debounced background push)",
        started.elapsed().as_secs_f64()
    );
    Ok(digest)
}

/// Runs the real Function wasm on a cart, its input built from the metafields the simulator
/// holds for the buyer.
fn run_function(lines: &[(i64, u32)]) -> Result<Value> {
    let mut c = Command::new(target_dir().join("release/run-function"));
    c.args([
        "--shop-url",
        &format!("http://{SIMULATOR_ADDR}"),
        "--token",
        SHOP_TOKEN,
        "--location",
        LOCATION,
        "--wasm",
        &function::wasm_path().display().to_string(),
    ]);
    for (variant, quantity) in lines {
        c.args(["--line", &format!("{variant}:{quantity}")]);
    }
    let out = c.output().context("running run-function")?;
    if !out.status.success() {
        bail!(
            "run-function failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("run-function's output is not JSON")
}

/// The validation error messages in a Function output.
fn errors(output: &Value) -> Vec<String> {
    let mut messages = Vec::new();
    collect_messages(output, &mut messages);
    messages
}

fn collect_messages(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(s)) = m.get("message") {
                out.push(s.clone());
            }
            m.values().for_each(|v| collect_messages(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_messages(v, out)),
        _ => {}
    }
}

fn describe(output: &Value) -> String {
    let e = errors(output);
    if e.is_empty() {
        "accepted (no validation errors)".into()
    } else {
        format!("rejected: {}", e.join("; "))
    }
}
