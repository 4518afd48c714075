//! The rules metafield payload codec.
//!
//! Input: the first byte picks the mode.
//! - Even: the rest is text, pages separated by `\n` (an empty page stands for an absent
//!   metafield). Decoding never panics; what decodes re-encodes to pages that decode to the
//!   same rules; decoding only some variants gives exactly those variants' rules.
//! - Odd: the rest is unstructured bytes for `arbitrary`, building rules that are encoded,
//!   checked against the format's limits and decoded back to the same rules.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use wholesail_rules::payload::{self, MAX_PAGES, MAX_PAGE_BYTES};
use wholesail_rules::{BuyerRules, CurrencyCode, Money, VariantRule};

#[derive(Arbitrary, Debug)]
struct Rule {
    variant_id: u64,
    increment: u32,
    min: u32,
    max: Option<u32>,
    quota_remaining: Option<u32>,
    stock: Option<u32>,
    eligible: bool,
}

#[derive(Arbitrary, Debug)]
struct Rules {
    variants: Vec<Rule>,
    order_minimum: Option<(u64, [u8; 3])>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        decode_text(rest);
    } else if let Ok(rules) = Rules::arbitrary_take_rest(Unstructured::new(rest)) {
        round_trip(rules);
    }
});

fn decode_text(rest: &[u8]) {
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let pages: Vec<Option<&str>> = text
        .split('\n')
        .map(|p| Some(p).filter(|p| !p.is_empty()))
        .collect();
    let Ok(Some(rules)) = payload::decode(&pages) else {
        return;
    };
    let encoded = match payload::encode("fuzz", &rules) {
        Ok(pages) => pages,
        Err(_) => return, // decodable pages beyond what origin may write: nothing to compare
    };
    assert_eq!(
        decode_all(&encoded),
        Some(rules.clone()),
        "re-encoding changed the rules"
    );
    check_subset(&pages, &rules);
}

fn round_trip(input: Rules) {
    let variants = input
        .variants
        .into_iter()
        .map(|r| VariantRule {
            variant_id: r.variant_id,
            increment: r.increment,
            min: r.min,
            max: r.max,
            quota_remaining: r.quota_remaining,
            stock: r.stock,
            eligible: r.eligible,
        })
        .collect();
    let minimum = input.order_minimum.and_then(|(hundredths, code)| {
        let code: String = code.iter().map(|b| char::from(b'A' + b % 26)).collect();
        Some(Money {
            hundredths,
            currency: CurrencyCode::parse(&code)?,
        })
    });
    let Ok(rules) = BuyerRules::new(variants, minimum) else {
        return;
    };
    let Ok(pages) = payload::encode("fuzz", &rules) else {
        return;
    };
    assert!(pages.len() <= MAX_PAGES, "{} pages", pages.len());
    for p in &pages {
        assert!(p.len() <= MAX_PAGE_BYTES, "a page of {} bytes", p.len());
    }
    assert_eq!(
        decode_all(&pages),
        Some(rules.clone()),
        "decoding changed the rules"
    );
    let refs: Vec<Option<&str>> = pages.iter().map(|p| Some(p.as_str())).collect();
    check_subset(&refs, &rules);
}

fn decode_all(pages: &[String]) -> Option<BuyerRules> {
    let refs: Vec<Option<&str>> = pages.iter().map(|p| Some(p.as_str())).collect();
    payload::decode(&refs).expect("encoded pages decode")
}

/// Decoding every other variant (and ids that have no rule) yields exactly those rules.
fn check_subset(pages: &[Option<&str>], rules: &BuyerRules) {
    let mut wanted: Vec<u64> = rules
        .variants()
        .iter()
        .step_by(2)
        .map(|v| v.variant_id)
        .collect();
    wanted.extend(
        rules
            .variants()
            .iter()
            .map(|v| v.variant_id.wrapping_add(1)),
    );
    wanted.sort_unstable();
    wanted.dedup();
    let some = payload::decode_for(pages, &wanted)
        .expect("a subset of a decodable payload decodes")
        .expect("page 0 is present");
    let expected: Vec<VariantRule> = rules
        .variants()
        .iter()
        .filter(|v| wanted.binary_search(&v.variant_id).is_ok())
        .copied()
        .collect();
    assert_eq!(
        some.variants(),
        expected.as_slice(),
        "decode_for read other rules"
    );
    assert_eq!(some.order_minimum(), rules.order_minimum());
}
