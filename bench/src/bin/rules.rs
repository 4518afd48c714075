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
//! - Shopify's own count: when `function-runner` and `shopify-function-trampoline` are
//!   installed (see [`wholesail_bench::function_runner`]), every cart also runs there, and the
//!   tables put the two counts side by side with the harness ÷ runner ratio. Two buyers: the
//!   full rule mix (every rule on each of the largest buyer's variants) and a harder one (the
//!   most variants that fit, each with a case pack and stock, 12% of lines off their pack).
//!
//! What the harness counts: every wasm instruction executed in the Function module and in the
//! provider module from the call of the export `cart_validations_generate_run` to its return
//! (wasmtime fuel: 1 per operator; `nop`, `drop`, `block`, `loop`, `end`, `else` are free).
//! What it leaves out and the runner counts: the trampoline's glue between the two modules
//! (the number of import calls is printed). Neither counts the provider's `initialize` and
//! `finalize` nor the MessagePack encoding of the input.

use anyhow::{ensure, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use wholesail_bench::function::{build_provider, target_dir, Harness, Run, FUNCTION_WASM};
use wholesail_bench::function_runner::{self, ShopifyRunner};
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

/// A buyer with `n` variants, every one with a case pack (2 to 24) and stock: few bytes per
/// variant, so the most variants fit, and every line of a cart is ruled.
fn pack_buyer(n: usize, seed: u64) -> BuyerRules {
    let mut rng = Rng(seed);
    let mut id = 44_000_000_000_000u64;
    let variants = (0..n)
        .map(|_| {
            id += 1 + rng.below(2_000);
            let pack = [2, 6, 12, 24][rng.below(4) as usize];
            let mut rule = VariantRule::unconstrained(id);
            rule.increment = pack;
            rule.stock = Some(pack * (40 + rng.below(200) as u32));
            rule
        })
        .collect();
    let minimum = Money {
        hundredths: 250_000,
        currency: CurrencyCode::parse("USD").expect("valid"),
    };
    BuyerRules::new(variants, Some(minimum)).expect("valid rules")
}

/// The largest buyer made by `make` (in steps of 50 variants) whose payload still fits.
fn largest_fitting_buyer(make: fn(usize, u64) -> BuyerRules) -> (BuyerRules, Vec<String>) {
    let mut n = 10_000;
    loop {
        let rules = make(n, 7);
        if let Ok(pages) = payload::encode("bench-buyer", &rules) {
            return (rules, pages);
        }
        n -= 50;
    }
}

/// A cart of `lines` distinct ruled variants spread over the buyer's; `off_pack` percent of
/// the lines are one unit off their case pack.
fn cart_for(rules: &BuyerRules, lines: usize, seed: u64, off_pack: u64) -> Cart {
    let mut rng = Rng(seed);
    let table = rules.variants();
    let step = table.len() / lines.max(1);
    let lines = (0..lines)
        .map(|i| {
            let r = &table[i * step];
            let mut q = r.increment * (1 + rng.below(4) as u32);
            if rng.below(100) < off_pack {
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

/// The cart sizes measured in wasm.
const SIZES: [usize; 7] = [1, 10, 50, 100, 200, 300, 500];

/// One generated buyer: its rules, their pages, and how many lines of its carts break a rule.
struct Buyer {
    name: &'static str,
    rules: BuyerRules,
    pages: Vec<String>,
    off_pack: u64,
}

/// One cart measured in wasm: the harness's run, Shopify's runner's count when installed, and
/// the same for the floor (the same cart of a buyer without rules).
struct Row {
    lines: usize,
    violations: usize,
    harness: Run,
    runner: Option<u64>,
    floor_harness: u64,
    floor_runner: Option<u64>,
}

/// Runs `input` in the harness and, when installed, in Shopify's runner; both outputs must be
/// `expected`.
fn run_both(
    harness: &Harness,
    runner: Option<&ShopifyRunner>,
    input: &Value,
    expected: &Value,
    what: &str,
) -> Result<(Run, Option<u64>)> {
    let run = harness.run(input)?;
    ensure!(
        &run.output == expected,
        "{what}: the harness's output differs from wholesail_rules::validate"
    );
    let counted = match runner {
        Some(r) => {
            let got = r.run(input)?;
            ensure!(
                &got.output == expected,
                "{what}: function-runner's output differs from wholesail_rules::validate: {}",
                got.output
            );
            Some(got.instructions)
        }
        None => None,
    };
    Ok((run, counted))
}

fn percent(instructions: u64, lines: usize) -> String {
    format!("{:.1}%", 100.0 * instructions as f64 / scaled_limit(lines))
}

fn print_table(buyer: &Buyer, rows: &[Row]) {
    println!(
        "\n### {}: {} variants, {} pages ({} bytes), {}% of lines off their case pack\n",
        buyer.name,
        buyer.rules.variants().len(),
        buyer.pages.len(),
        buyer.pages.iter().map(String::len).sum::<usize>(),
        buyer.off_pack
    );
    println!("| lines | violations | runner instructions | % of limit | harness instructions | harness % | harness ÷ runner | import calls | floor (runner) | floor % | floor (harness) | above the floor (runner) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let na = || "n/a".to_owned();
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.lines,
            r.violations,
            r.runner.map_or_else(na, |n| n.to_string()),
            r.runner.map_or_else(na, |n| percent(n, r.lines)),
            r.harness.instructions,
            percent(r.harness.instructions, r.lines),
            r.runner.map_or_else(na, |n| format!(
                "{:.3}",
                r.harness.instructions as f64 / n as f64
            )),
            r.harness.import_calls,
            r.floor_runner.map_or_else(na, |n| n.to_string()),
            r.floor_runner.map_or_else(na, |n| percent(n, r.lines)),
            r.floor_harness,
            r.runner
                .zip(r.floor_runner)
                .map_or_else(na, |(n, f)| (n as i64 - f as i64).to_string()),
        );
    }
    let by = |lines: usize| rows.iter().find(|r| r.lines == lines);
    if let (Some(a), Some(b)) = (by(200), by(500)) {
        let count = |r: &Row| r.runner.unwrap_or(r.harness.instructions) as f64;
        let marginal = (count(b) - count(a)) / 300.0;
        println!(
            "\nmarginal cost {marginal:.0} instructions per line (200→500 lines, {}); intercept ≈ {:.0}",
            if b.runner.is_some() { "runner" } else { "harness" },
            count(b) - 500.0 * marginal
        );
    }
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
    let function_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shopify-function");
    let runner = ShopifyRunner::locate(
        &wasm,
        "cart_validations_generate_run",
        &function_dir.join("schema.graphql"),
        &function_dir.join("src/cart_validations_generate_run.graphql"),
        &target.join("function-runner-scratch"),
    )?;

    let (rules, pages) = largest_fitting_buyer(full_buyer);
    let page_bytes: Vec<usize> = pages.iter().map(String::len).collect();
    let json = rules_as_json(&rules);
    println!("## Function module\n");
    println!(
        "wasm: {wasm_size} bytes ({:.1}% of Shopify's 262144-byte limit); provider wasm {} bytes\n",
        100.0 * wasm_size as f64 / 262_144.0,
        std::fs::metadata(&provider)?.len()
    );
    match &runner {
        Some(_) => {
            let [r, t] = function_runner::expected_paths();
            println!(
                "Shopify's runner: {} on the module after {}\n",
                r.display(),
                t.display()
            );
        }
        None => {
            let [r, t] = function_runner::expected_paths();
            println!(
                "Shopify's runner: NOT INSTALLED ({} or {} missing; set {} / {} or see \
                 shopify-function/README.md): harness counts only\n",
                r.display(),
                t.display(),
                function_runner::RUNNER.1,
                function_runner::TRAMPOLINE.1
            );
        }
    }
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
    for lines in [10usize, 200, 500] {
        let cart = cart_for(&rules, lines, lines as u64, 10);
        let policy = Policy::default();
        let t_all = time_per_call(15, 50, || {
            std::hint::black_box(evaluate(&refs, policy, &cart));
        });
        let t_validate = time_per_call(15, 50, || {
            std::hint::black_box(validate(&rules, &cart));
        });
        println!(
            "| {lines} | {:.1} | {:.1} | {} |",
            t_all * 1e6,
            t_validate * 1e6,
            validate(&rules, &cart).len()
        );
    }

    let harness = Harness::new(&wasm, &provider)?;
    let (pack_rules, pack_pages) = largest_fitting_buyer(pack_buyer);
    let buyers = [
        Buyer {
            name: "full rule mix",
            rules,
            pages,
            off_pack: 10,
        },
        Buyer {
            name: "harder: every line ruled, packs and stock only, the most variants that fit",
            rules: pack_rules,
            pages: pack_pages,
            off_pack: 12,
        },
    ];

    println!("\n## Fixed cost per cart: instructions on an empty cart (full buyer)\n");
    println!("| scenario | harness | runner |");
    println!("|---|---:|---:|");
    let full = &buyers[0];
    let empty = cart_for(&full.rules, 0, 0, 0);
    let unknown_version: Vec<String> = full
        .pages
        .iter()
        .map(|p| p.replacen("WS1", "WS9", 1))
        .collect();
    for (what, input, rules) in [
        ("no B2B buyer", function_input(&empty, None), None),
        (
            "B2B buyer, no rules pushed (fails open)",
            function_input(&empty, Some(&[])),
            None,
        ),
        (
            "B2B buyer, pages of an unknown version (read, not decoded)",
            function_input(&empty, Some(&unknown_version)),
            None,
        ),
        (
            "B2B buyer, pages read and decoded",
            function_input(&empty, Some(&full.pages)),
            Some(&full.rules),
        ),
    ] {
        let expected = expected_output(rules, &empty);
        let (run, counted) = run_both(&harness, runner.as_ref(), &input, &expected, what)?;
        println!(
            "| {what} | {} | {} |",
            run.instructions,
            counted.map_or_else(|| "n/a".to_owned(), |n| n.to_string())
        );
    }

    println!("\n## Instructions per cart: Shopify's runner beside the harness\n");
    println!(
        "% of limit: of Shopify's 11 M instructions up to 200 lines, scaled by lines/200 above. \
         Floor: the same cart of a buyer without rules (walking the input, no rules read)."
    );
    for buyer in &buyers {
        let mut rows = Vec::new();
        for lines in SIZES {
            let cart = cart_for(&buyer.rules, lines, lines as u64, buyer.off_pack);
            let what = format!("{}, {lines} lines", buyer.name);
            let (harness_run, runner_count) = run_both(
                &harness,
                runner.as_ref(),
                &function_input(&cart, Some(&buyer.pages)),
                &expected_output(Some(&buyer.rules), &cart),
                &what,
            )?;
            let (floor, floor_runner) = run_both(
                &harness,
                runner.as_ref(),
                &function_input(&cart, Some(&[])),
                &expected_output(None, &cart),
                &what,
            )?;
            rows.push(Row {
                lines,
                violations: validate(&buyer.rules, &cart).len(),
                harness: harness_run,
                runner: runner_count,
                floor_harness: floor.instructions,
                floor_runner,
            });
        }
        print_table(buyer, &rows);
    }
    Ok(())
}
