//! Origin and checkout must agree: thousands of generated rule sets and carts (fixed seeds),
//! validated once by `wholesail_rules::validate` on the rules as origin holds them, and once by
//! the Function on the encoded metafield pages through `run_function_with_input`.

use serde_json::Value;
use wholesail_rules::payload::{self, MAX_INPUT_BYTES, MAX_PAGES, MAX_PAGE_BYTES};
use wholesail_rules::{validate, BuyerRules, Cart, CartLine, CurrencyCode, Money, VariantRule};

use crate::cart_validations_generate_run::tests::{b2b_input, run, Line};

/// SplitMix64: a tiny deterministic generator, so a failing seed can be replayed.
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
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const BASE_ID: u64 = 44_000_000_000_000;

fn usd() -> CurrencyCode {
    CurrencyCode::parse("USD").unwrap()
}

/// A buyer with `n` ruled variants drawn from `space` consecutive-ish ids.
fn buyer(rng: &mut Rng, n: usize, space: u64) -> BuyerRules {
    let mut ids: Vec<u64> = (0..n).map(|_| BASE_ID + rng.below(space) * 13).collect();
    ids.sort_unstable();
    ids.dedup();
    let variants = ids
        .into_iter()
        .map(|id| {
            let mut r = VariantRule::unconstrained(id);
            if rng.chance(50) {
                r.increment = [2, 6, 12, 24, 48][rng.below(5) as usize];
            }
            if rng.chance(30) {
                r.min = rng.below(20) as u32;
            }
            if rng.chance(30) {
                r.max = Some(r.min + rng.below(200) as u32);
            }
            if rng.chance(30) {
                r.quota_remaining = Some(rng.below(300) as u32);
            }
            if rng.chance(50) {
                r.stock = Some(rng.below(1_000) as u32);
            }
            r.eligible = !rng.chance(10);
            if r.is_unconstrained() {
                r.stock = Some(0);
            }
            r
        })
        .collect();
    let minimum = rng.chance(50).then(|| Money {
        hundredths: rng.below(200_000),
        currency: usd(),
    });
    BuyerRules::new(variants, minimum).expect("generated rules are valid")
}

fn cart(rng: &mut Rng, lines: usize, space: u64) -> (Cart, Vec<Line>, String, &'static str) {
    let mut raw = Vec::with_capacity(lines);
    for _ in 0..lines {
        let variant = (!rng.chance(5)).then(|| BASE_ID + rng.below(space) * 13);
        let quantity = rng.below(120) as i64;
        raw.push((variant, quantity));
    }
    let hundredths = rng.below(300_000);
    let currency = if rng.chance(90) { "USD" } else { "EUR" };
    // Shopify writes decimals with or without trailing zeros; both must parse the same.
    let amount = if hundredths.is_multiple_of(10) && rng.chance(50) {
        format!("{}.{}", hundredths / 100, (hundredths % 100) / 10)
    } else {
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
    };
    let cart = Cart {
        lines: raw
            .iter()
            .map(|&(variant_id, q)| CartLine {
                variant_id,
                quantity: q as u32,
            })
            .collect(),
        subtotal: Some(Money {
            hundredths,
            currency: CurrencyCode::parse(currency).unwrap(),
        }),
    };
    (cart, raw, amount, currency)
}

fn origin_verdict(rules: &BuyerRules, cart: &Cart) -> Vec<(String, String)> {
    validate(rules, cart)
        .into_iter()
        .map(|v| (v.message, v.target.to_string()))
        .collect()
}

fn pages_of(rules: &BuyerRules, buyer: &str) -> Vec<Option<String>> {
    payload::encode(buyer, rules)
        .expect("generated buyers fit")
        .into_iter()
        .map(Some)
        .collect()
}

#[test]
fn origin_and_the_function_agree_on_thousands_of_generated_carts() {
    let mut rng = Rng(0x5EED_0001);
    let mut violations = 0;
    for case in 0..3_000 {
        let space = 1 + rng.below(80);
        let n = rng.below(60) as usize;
        let rules = buyer(&mut rng, n, space);
        let n = rng.below(40) as usize;
        let (cart, lines, amount, currency) = cart(&mut rng, n, space + 5);
        let pages = pages_of(&rules, &format!("case-{case}"));
        let input = b2b_input(&pages, &lines, Some((&amount, currency)), None);
        let want = origin_verdict(&rules, &cart);
        violations += want.len();
        assert_eq!(run(&input), want, "case {case}: {input}");
    }
    // The generator must actually exercise the validators.
    assert!(violations > 3_000, "only {violations} violations generated");
}

#[test]
fn origin_and_the_function_agree_on_large_multi_page_buyers() {
    let mut rng = Rng(0x5EED_0002);
    let mut largest: Option<(usize, Vec<Option<String>>)> = None;
    for case in 0..40 {
        let space = 40_000;
        let n = 500 + rng.below(2_000) as usize;
        let rules = buyer(&mut rng, n, space);
        let pages = pages_of(&rules, &format!("large-{case}"));
        for _ in 0..5 {
            let n = 1 + rng.below(200) as usize;
            let (cart, lines, amount, currency) = cart(&mut rng, n, 3_000);
            let input = b2b_input(&pages, &lines, Some((&amount, currency)), None);
            assert_eq!(
                run(&input),
                origin_verdict(&rules, &cart),
                "large case {case}"
            );
        }
        let bytes: usize = pages.iter().flatten().map(String::len).sum();
        if largest.as_ref().is_none_or(|(b, _)| bytes > *b) {
            largest = Some((bytes, pages));
        }
    }
    // The largest generated buyer stays within Shopify's limits: every page ≤ 10,000 bytes,
    // at most MAX_PAGES pages, and a 200-line input (measured as JSON, which is larger than
    // the MessagePack Shopify measures) ≤ 128 kB.
    let (bytes, pages) = largest.expect("generated");
    assert!(
        pages.len() > 1 && pages.len() <= MAX_PAGES,
        "{} pages",
        pages.len()
    );
    assert!(pages.iter().flatten().all(|p| p.len() <= MAX_PAGE_BYTES));
    let lines: Vec<Line> = (0..200)
        .map(|i| (Some(BASE_ID + 99_999_999 + i), 9_999))
        .collect();
    let input: Value = b2b_input(
        &pages,
        &lines,
        Some(("123456.78", "USD")),
        Some("missing=closed"),
    );
    let size = input.to_string().len();
    assert!(
        size <= MAX_INPUT_BYTES,
        "{size} bytes of input for {bytes} bytes of pages"
    );
}
