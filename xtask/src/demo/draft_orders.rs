//! A sales rep's 1,200-line quote becomes three linked draft orders, asynchronously.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::rules::LOCATION;
use super::{check, http, step, wait_until, Demo, ORIGIN_ADDR, SHOP};

/// Lines of the demo quote: more than two drafts' worth (Shopify: ≤ 499 lines per draft).
const QUOTE_LINES: i64 = 1_200;

/// `POST /v1/draft-orders`, then the job followed to its drafts.
pub(super) fn split_quote(demo: &Demo) -> Result<()> {
    step(&format!(
        "A {QUOTE_LINES}-line quote for the buyer becomes linked draft orders"
    ));
    let ids = crate::postgres::query(
        &demo.db,
        &format!(
            "SELECT string_agg(id::text, ',') FROM (SELECT v.id FROM variants v \
             WHERE NOT EXISTS (SELECT 1 FROM rule_line_limits r WHERE r.target_id = v.id) \
             ORDER BY v.id LIMIT {QUOTE_LINES}) s"
        ),
    )?;
    let lines: Vec<Value> = ids
        .trim()
        .split(',')
        .map(|id| -> Result<Value> {
            Ok(json!({"variant_id": id.parse::<u64>().context("variant id")?, "quantity": 6}))
        })
        .collect::<Result<_>>()?;
    let quote = json!({
        "shop": SHOP,
        "quote_id": "Q-DEMO-1200",
        "company_location_id": LOCATION,
        "lines": lines,
        "shipping": {"title": "LTL freight", "price": "250.00"},
        "note": "Spring restock",
    });
    let url = format!("http://{ORIGIN_ADDR}/v1/draft-orders");
    let started = Instant::now();
    let (status, job) = http::send_json("POST", &url, &demo.integrator_token, &quote)?;
    let first = started.elapsed();
    println!(
        "   POST /v1/draft-orders → {status} {{job: {}, status: {}}} in {:.1} ms",
        job["job"],
        job["status"],
        first.as_secs_f64() * 1e3
    );
    check(
        status == 202 && job["status"] == "processing",
        "the quote is accepted at once as a processing job",
    )?;
    let id = job["job"].as_str().context("job id")?.to_owned();
    let (again, same) = http::send_json("POST", &url, &demo.integrator_token, &quote)?;
    check(
        again == 200 && same["job"] == job["job"],
        "the same quote submitted again is the same job",
    )?;
    let mut done = Value::Null;
    wait_until("the drafts", Duration::from_secs(120), || {
        let (_, s) = http::get_json(&format!("{url}/{id}"), &demo.integrator_token)?;
        let finished = s["status"] != "processing";
        done = s;
        Ok(finished)
    })?;
    println!(
        "   GET /v1/draft-orders/{id} → {} after {:.1} s: {} of {} parts, total {} {}",
        done["status"],
        started.elapsed().as_secs_f64(),
        done["progress"]["parts_created"],
        done["progress"]["parts_total"],
        done["total"],
        done["currency"]
    );
    let drafts = done["drafts"].as_array().cloned().unwrap_or_default();
    for d in &drafts {
        println!(
            "   part {}: {} lines, total {}, shipping {}, {} {}",
            d["part"], d["lines"], d["total"], d["shipping"], d["id"], d["invoice_url"]
        );
    }
    check(
        done["status"] == "completed" && drafts.len() == 3,
        "completed as 3 drafts (the fewest under 499 lines each)",
    )?;
    let cents = |v: &Value| -> i64 {
        let s = v.as_str().unwrap_or("0");
        let (units, frac) = s.split_once('.').unwrap_or((s, "0"));
        units.parse::<i64>().unwrap_or(0) * 100
            + format!("{frac:0<2}")[..2].parse::<i64>().unwrap_or(0)
    };
    let parts: i64 = drafts.iter().map(|d| cents(&d["shopify_total"])).sum();
    check(
        parts == cents(&done["total"]),
        "Shopify's draft totals add up to the quote's total, to the cent",
    )?;
    Ok(())
}
