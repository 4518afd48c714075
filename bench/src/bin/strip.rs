//! `cargo xtask bench strip`: how much the allowlist removes from a realistic order, and how
//! fast, next to the floor of merely validating the same bytes as JSON (serde_json parsing
//! into `IgnoredAny`), measured in the same run.

use serde_json::value::RawValue;
use shopify_simulator::payloads::{order, OrderSpec};
use wholesail_bench::time_per_call;
use wholesail_webhook::strip;

fn main() -> anyhow::Result<()> {
    println!("| order lines | body | stripped | reduction | strip MB/s (median) | JSON validate-only MB/s | strip / validate |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for lines in [1usize, 50, 500, 1000] {
        let body = order(&OrderSpec::new(42, lines)).to_string().into_bytes();
        let out = strip("orders/create", &body)?;
        let iters = (2_000_000 / body.len()).clamp(5, 2_000);
        let t_strip = time_per_call(15, iters, || {
            std::hint::black_box(strip("orders/create", &body).expect("strips"));
        });
        let t_parse = time_per_call(15, iters, || {
            let v: &RawValue = serde_json::from_slice(&body).expect("valid JSON");
            std::hint::black_box(v);
        });
        let mb = body.len() as f64 / 1e6;
        println!(
            "| {lines} | {} B | {} B | {:.1}× ({:.1}% kept) | {:.0} | {:.0} | {:.2} |",
            body.len(),
            out.json.len(),
            body.len() as f64 / out.json.len() as f64,
            100.0 * out.json.len() as f64 / body.len() as f64,
            mb / t_strip,
            mb / t_parse,
            t_strip / t_parse,
        );
    }
    Ok(())
}
