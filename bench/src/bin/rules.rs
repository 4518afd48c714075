//! `cargo xtask bench rules`: the cart validation Function against Shopify's limits.
//!
//! - the wasm module's size against the 256 KB limit;
//! - native time per cart (decode the buyer's pages + validate) for 10, 200 and 500 lines with
//!   the full rule set, beside a serde_json decode of the same rules as the reference;
//! - the real wasm's instruction count, in wasmtime with fuel, linked to the real
//!   `shopify_function_provider` 2.0.1 compiled to wasm (the module Shopify's runner links the
//!   Function against), for the same carts and for the same carts of a buyer without rules
//!   (the floor: walking the input's lines, no rules decoded or checked), per line and as a
//!   share of Shopify's scaled limit (11 M instructions up to 200 lines, × lines/200 above);
//!   and the fixed cost per cart on an empty cart.
//!
//! What the count includes: every wasm instruction executed in the Function module and in the
//! provider module from the call of the export `cart_validations_generate_run` to its return
//! (wasmtime fuel: 1 per operator; `nop`, `drop`, `block`, `loop`, `end`, `else` are free).
//! What it excludes: the glue between the two modules (Shopify's trampoline copies strings
//! between the memories with a few instructions per import call; here the host does it, and
//! the number of import calls is printed so it can be estimated), the provider's `initialize`
//! and `finalize` and the MessagePack encoding of the input, which happen outside the
//! Function. Shopify's own counter (function-runner) may weigh operators differently.

use std::collections::HashMap;

use anyhow::{ensure, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use wholesail_bench::function::{build_provider, target_dir, Harness, FUNCTION_WASM};
use wholesail_bench::time_per_call;
use wholesail_rules::payload::{self, PAGE_KEYS};
use wholesail_rules::{
    evaluate, validate, BuyerRules, Cart, CartLine, CurrencyCode, Money, Policy, VariantRule,
};

/// Shopify's instruction limit up to 200 cart lines.
const BASE_LIMIT: f64 = 11_000_000.0;

fn scaled_limit(lines: usize) -> f64 {
    BASE_LIMIT * (lines as f64 / 200.0).clamp(1.0, 10.0)
}

// ---------------------------------------------------------------------------------------------
// Workload: the largest buyer that fits, with every rule set on every variant.

/// SplitMix64, for a reproducible workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A buyer with `n` variants, every one with a case pack, line min and max, quota, stock and
/// eligibility, ids spaced as a subset of a large shop's catalogue, and an order minimum.
fn full_buyer(n: usize, seed: u64) -> BuyerRules {
    let mut rng = Rng(seed);
    let mut id = 44_000_000_000_000u64;
    let variants = (0..n)
        .map(|_| {
            id += 1 + rng.below(2_000);
            let pack = [1, 6, 12, 24][rng.below(4) as usize];
            VariantRule {
                variant_id: id,
                increment: pack,
                min: pack,
                max: Some(pack * (50 + rng.below(200) as u32)),
                quota_remaining: Some(pack * rng.below(2_000) as u32),
                stock: Some(rng.below(50_000) as u32),
                eligible: rng.below(20) != 0,
            }
        })
        .collect();
    let minimum = Money {
        hundredths: 250_000,
        currency: CurrencyCode::parse("USD").expect("valid"),
    };
    BuyerRules::new(variants, Some(minimum)).expect("valid rules")
}

/// The largest full buyer (in steps of 50 variants) whose payload still fits.
fn largest_fitting_buyer() -> (BuyerRules, Vec<String>) {
    let mut n = 10_000;
    loop {
        let rules = full_buyer(n, 7);
        if let Ok(pages) = payload::encode("bench-buyer", &rules) {
            return (rules, pages);
        }
        n -= 50;
    }
}

/// A cart of `lines` distinct ruled variants; about one line in ten breaks a rule.
fn cart_for(rules: &BuyerRules, lines: usize, seed: u64) -> Cart {
    let mut rng = Rng(seed);
    let table = rules.variants();
    let step = table.len() / lines.max(1);
    let lines = (0..lines)
        .map(|i| {
            let r = &table[i * step];
            let mut q = r.increment * (1 + rng.below(4) as u32);
            if rng.below(10) == 0 {
                q += 1;
            }
            CartLine {
                variant_id: Some(r.variant_id),
                quantity: q,
            }
        })
        .collect();
    Cart {
        lines,
        subtotal: Some(Money {
            hundredths: 1_234_567,
            currency: CurrencyCode::parse("USD").expect("valid"),
        }),
    }
}

/// The Function's input for `cart`, with the buyer's pages when `pages` is given.
fn function_input(cart: &Cart, pages: Option<&[String]>) -> Value {
    let lines: Vec<Value> = cart
        .lines
        .iter()
        .map(|l| {
            json!({
                "quantity": l.quantity,
                "merchandise": {
                    "__typename": "ProductVariant",
                    "id": format!("gid://shopify/ProductVariant/{}", l.variant_id.unwrap_or(0)),
                },
            })
        })
        .collect();
    let buyer = pages.map(|pages| {
        let mut location = serde_json::Map::new();
        for (i, key) in PAGE_KEYS.iter().enumerate() {
            let v = pages.get(i).map_or(Value::Null, |p| json!({ "value": p }));
            location.insert(key.to_string(), v);
        }
        json!({ "purchasingCompany": { "location": location } })
    });
    let subtotal = cart.subtotal.expect("bench carts have one");
    json!({
        "cart": {
            "buyerIdentity": buyer,
            "cost": { "subtotalAmount": {
                "amount": format!("{}.{:02}", subtotal.hundredths / 100, subtotal.hundredths % 100),
                "currencyCode": subtotal.currency.as_str(),
            }},
            "lines": lines,
        },
        "validation": { "policy": null },
    })
}

/// The output the Function must produce for these rules and this cart.
fn expected_output(rules: Option<&BuyerRules>, cart: &Cart) -> Value {
    let errors: Vec<Value> = rules
        .map(|r| validate(r, cart))
        .unwrap_or_default()
        .into_iter()
        .map(|v| json!({ "message": v.message, "target": v.target.to_string() }))
        .collect();
    if errors.is_empty() {
        json!({ "operations": [] })
    } else {
        json!({ "operations": [{ "validationAdd": { "errors": errors } }] })
    }
}

// ---------------------------------------------------------------------------------------------
// The serde_json reference: the same rules as the JSON an engineer would write by default.

#[derive(Deserialize)]
#[allow(dead_code)] // the fields are what serde_json has to parse; the bench only times it
struct JsonRule {
    id: u64,
    increment: u32,
    min: u32,
    max: Option<u32>,
    quota: Option<u32>,
    stock: Option<u32>,
    eligible: bool,
}

fn rules_as_json(rules: &BuyerRules) -> String {
    let list: Vec<Value> = rules
        .variants()
        .iter()
        .map(|v| {
            json!({ "id": v.variant_id, "increment": v.increment, "min": v.min, "max": v.max,
                    "quota": v.quota_remaining, "stock": v.stock, "eligible": v.eligible })
        })
        .collect();
    Value::Array(list).to_string()
}

fn main() -> Result<()> {
    let target = target_dir();
    let wasm = target.join(FUNCTION_WASM);
    let wasm_size = std::fs::metadata(&wasm)
        .with_context(|| {
            format!(
                "{} missing: run via `cargo xtask bench rules`",
                wasm.display()
            )
        })?
        .len();
    let provider = build_provider(&target)?;

    let (rules, pages) = largest_fitting_buyer();
    let page_bytes: Vec<usize> = pages.iter().map(String::len).collect();
    let json = rules_as_json(&rules);
    println!("## Function module\n");
    println!(
        "wasm: {wasm_size} bytes ({:.1}% of Shopify's 262144-byte limit); provider wasm {} bytes\n",
        100.0 * wasm_size as f64 / 262_144.0,
        std::fs::metadata(&provider)?.len()
    );
    println!("## Payload of the largest full buyer that fits\n");
    println!(
        "{} variants, every rule set on each; {} pages of {page_bytes:?} bytes = {:.1} bytes/variant; \
         the same rules as plain JSON: {} bytes ({:.1}× larger, {} pages' worth)\n",
        rules.variants().len(),
        pages.len(),
        page_bytes.iter().sum::<usize>() as f64 / rules.variants().len() as f64,
        json.len(),
        json.len() as f64 / page_bytes.iter().sum::<usize>() as f64,
        json.len().div_ceil(payload::MAX_PAGE_BYTES),
    );

    // Native: decoding the buyer's pages, and the serde_json reference.
    let refs: Vec<Option<&str>> = pages.iter().map(|p| Some(p.as_str())).collect();
    let t_decode = time_per_call(15, 200, || {
        std::hint::black_box(payload::decode(&refs).expect("decodes"));
    });
    let t_json = time_per_call(15, 200, || {
        let v: Vec<JsonRule> = serde_json::from_str(&json).expect("parses");
        std::hint::black_box(v);
    });
    println!("| native decode of the buyer's rules | median µs | vs serde_json |");
    println!("|---|---:|---:|");
    println!(
        "| wholesail-rules payload | {:.1} | {:.2} |",
        t_decode * 1e6,
        t_decode / t_json
    );
    println!(
        "| serde_json, same rules (reference) | {:.1} | 1.00 |\n",
        t_json * 1e6
    );

    println!("| lines | native µs/cart (decode + validate) | of which validate | violations |");
    println!("|---:|---:|---:|---:|");
    let harness = Harness::new(&wasm, &provider)?;
    let mut rows = Vec::new();
    for lines in [10usize, 200, 500] {
        let cart = cart_for(&rules, lines, lines as u64);
        let policy = Policy::default();
        let t_all = time_per_call(15, 50, || {
            std::hint::black_box(evaluate(&refs, policy, &cart));
        });
        let t_validate = time_per_call(15, 50, || {
            std::hint::black_box(validate(&rules, &cart));
        });
        let violations = validate(&rules, &cart).len();
        println!(
            "| {lines} | {:.1} | {:.1} | {violations} |",
            t_all * 1e6,
            t_validate * 1e6
        );

        let full_input = function_input(&cart, Some(&pages));
        let full = harness.run(&full_input)?;
        ensure!(
            full.output == expected_output(Some(&rules), &cart),
            "the wasm's output differs from wholesail_rules::validate at {lines} lines"
        );
        let floor = harness.run(&function_input(&cart, Some(&[])))?;
        ensure!(
            floor.output == expected_output(None, &cart),
            "the wasm's output for a buyer without rules is not empty"
        );
        rows.push((lines, full, floor));
    }

    println!("\n## Fixed cost per cart: instructions of the real wasm on an empty cart\n");
    println!("| scenario | instructions |");
    println!("|---|---:|");
    let empty = cart_for(&rules, 0, 0);
    let unknown_version: Vec<String> = pages.iter().map(|p| p.replacen("WS1", "WS9", 1)).collect();
    for (what, input) in [
        ("no B2B buyer", function_input(&empty, None)),
        (
            "B2B buyer, no rules pushed (fails open)",
            function_input(&empty, Some(&[])),
        ),
        (
            "B2B buyer, pages of an unknown version (read, not decoded)",
            function_input(&empty, Some(&unknown_version)),
        ),
        (
            "B2B buyer, pages read and decoded",
            function_input(&empty, Some(&pages)),
        ),
    ] {
        println!("| {what} | {} |", harness.run(&input)?.instructions);
    }

    println!("\n## Instructions of the real wasm (wasmtime fuel, Function + provider)\n");
    println!("| lines | input (MessagePack) | instructions | per line | % of scaled limit | import calls | floor: same cart, buyer without rules | floor per line |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut per_line = HashMap::new();
    for (lines, full, floor) in &rows {
        per_line.insert(*lines, full.instructions);
        println!(
            "| {lines} | {} B | {} | {:.0} | {:.2}% | {} | {} | {:.0} |",
            full.input_bytes,
            full.instructions,
            full.instructions as f64 / *lines as f64,
            100.0 * full.instructions as f64 / scaled_limit(*lines),
            full.import_calls,
            floor.instructions,
            floor.instructions as f64 / *lines as f64,
        );
    }
    let marginal = (per_line[&500] - per_line[&200]) as f64 / 300.0;
    let fixed = per_line[&500] as f64 - 500.0 * marginal;
    println!(
        "\nmarginal cost {marginal:.0} instructions per line (200→500 lines); intercept ≈ \
         {fixed:.0} (walking the {} bytes of pages up to the cart's last variant, the input root, \
         the output)",
        page_bytes.iter().sum::<usize>()
    );
    println!(
        "budget: 25% of the scaled limit at 500 lines = {:.0} instructions; used {:.1}%",
        0.25 * scaled_limit(500),
        100.0 * per_line[&500] as f64 / scaled_limit(500)
    );
    Ok(())
}
