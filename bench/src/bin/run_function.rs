//! `run-function`: runs the Shopify Function's real wasm once, in wasmtime linked to the real
//! provider (the harness of the `rules` benchmark), and prints its output as JSON on stdout
//! (instructions executed on stderr).
//!
//! ```text
//! run-function [--wasm PATH] [--provider PATH] < input.json
//! run-function [--wasm PATH] [--provider PATH] --shop-url URL --token TOKEN --location GID \
//!     --line VARIANT_ID:QTY [--line …] [--subtotal 421.00] [--currency USD] [--api-version 2026-01] [--print-input]
//! ```
//!
//! The first form reads the Function's input (the shape of
//! `shopify-function/src/cart_validations_generate_run.graphql`) from stdin. The second builds
//! it: the buyer's pages are read from the shop's Admin API (`rules0..3` in
//! `$app:wholesail` on the company location — what origin pushed, e.g. to the simulator), the
//! lines and subtotal from the arguments. `--wasm` defaults to the module `cargo xtask` builds
//! (`target/wasm32-unknown-unknown/function/wholesail-function.wasm`); the provider is built
//! from cargo's registry source when `--provider` is not given.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use secrecy::SecretString;
use serde_json::{json, Value};
use wholesail_bench::function::{build_provider, target_dir, Harness, FUNCTION_WASM};
use wholesail_rules::payload::{NAMESPACE, PAGE_KEYS};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

#[derive(Default)]
struct Args {
    wasm: Option<PathBuf>,
    provider: Option<PathBuf>,
    shop_url: Option<String>,
    token: Option<String>,
    api_version: Option<String>,
    location: Option<String>,
    lines: Vec<(u64, u32)>,
    subtotal: Option<String>,
    currency: Option<String>,
    print_input: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--print-input" {
            args.print_input = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--wasm" => args.wasm = Some(value.into()),
            "--provider" => args.provider = Some(value.into()),
            "--shop-url" => args.shop_url = Some(value),
            "--token" => args.token = Some(value),
            "--api-version" => args.api_version = Some(value),
            "--location" => args.location = Some(value),
            "--subtotal" => args.subtotal = Some(value),
            "--currency" => args.currency = Some(value),
            "--line" => {
                let (v, q) = value
                    .split_once(':')
                    .with_context(|| format!("--line {value}: expected VARIANT_ID:QTY"))?;
                args.lines.push((v.parse()?, q.parse()?));
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// The Function's input for `lines` of the buyer whose pages are `pages`.
fn input(pages: &[Option<String>], lines: &[(u64, u32)], subtotal: &str, currency: &str) -> Value {
    let mut location = serde_json::Map::new();
    for (key, page) in PAGE_KEYS.iter().zip(pages) {
        let v = page.as_ref().map_or(Value::Null, |p| json!({ "value": p }));
        location.insert((*key).to_owned(), v);
    }
    let lines: Vec<Value> = lines
        .iter()
        .map(|(v, q)| {
            json!({"quantity": q,
                   "merchandise": {"id": format!("gid://shopify/ProductVariant/{v}")}})
        })
        .collect();
    json!({
        "cart": {
            "buyerIdentity": { "purchasingCompany": { "location": location } },
            "cost": { "subtotalAmount": { "amount": subtotal, "currencyCode": currency } },
            "lines": lines,
        },
        "validation": { "policy": null },
    })
}

async fn pages_from_shop(args: &Args, location: &str) -> Result<Vec<Option<String>>> {
    let url = args
        .shop_url
        .clone()
        .context("--shop-url is required with --location")?;
    let token = args
        .token
        .clone()
        .context("--token is required with --location")?;
    let version = args.api_version.clone().unwrap_or_else(|| "2026-01".into());
    let client = AdminClient::new(AdminConfig::new(url, version, SecretString::from(token)))?;
    let mut pages = Vec::new();
    for key in PAGE_KEYS {
        pages.push(
            client
                .metafield(location, NAMESPACE, key)
                .await?
                .map(|m| m.value),
        );
    }
    Ok(pages)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let input = match &args.location {
        Some(location) => {
            let pages = pages_from_shop(&args, location).await?;
            input(
                &pages,
                &args.lines,
                args.subtotal.as_deref().unwrap_or("0.00"),
                args.currency.as_deref().unwrap_or("USD"),
            )
        }
        None => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            serde_json::from_str(&text).context("stdin: the Function's input as JSON")?
        }
    };
    if args.print_input {
        eprintln!("{}", serde_json::to_string_pretty(&input)?);
    }
    let target = target_dir();
    let wasm = args
        .wasm
        .clone()
        .unwrap_or_else(|| target.join(FUNCTION_WASM));
    anyhow::ensure!(
        wasm.exists(),
        "{} missing: build it with `cargo build -p wholesail-function --target wasm32-unknown-unknown --profile function`",
        wasm.display()
    );
    let provider = match &args.provider {
        Some(p) => p.clone(),
        None => build_provider(&target)?,
    };
    let run = Harness::new(&wasm, &provider)?.run(&input)?;
    eprintln!(
        "instructions: {} (import calls {}, input {} B MessagePack)",
        run.instructions, run.import_calls, run.input_bytes
    );
    println!("{}", serde_json::to_string_pretty(&run.output)?);
    Ok(())
}
