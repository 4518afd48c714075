//! The allowlist stripper on any body, under every known topic and an unknown one: it never
//! panics, accepts every JSON document (as `serde_json::Value` reads them) except one without
//! the delete shape under a delete topic, its output is JSON, and stripping that output again
//! changes nothing.
//!
//! (A body that is not strict JSON, e.g. a bad escape inside a dropped field, may be accepted:
//! dropped values are skipped, not validated, as `serde_json` skips ignored ones.)
//!
//! A number where the allowlist expects an object or an array (a shape Shopify never sends) is
//! written back through `f64`, and serde_json's default float parser may round the last bit
//! differently when reading that back: outputs differing only there count as the same.
//!
//! Input: the first byte picks the topic, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wholesail_webhook::allowlist::{known_topics, strip, StripError};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let topics: Vec<&str> = known_topics().chain(["unknown/topic"]).collect();
    let topic = topics[usize::from(pick) % topics.len()];
    let valid = serde_json::from_slice::<Value>(body).is_ok();
    match strip(topic, body) {
        Ok(stripped) => {
            if valid {
                if let Err(e) = serde_json::from_str::<Value>(&stripped.json) {
                    panic!(
                        "{topic}: the output of a valid body is not JSON ({e}): {}",
                        stripped.json
                    );
                }
            }
            let again = strip(topic, stripped.json.as_bytes())
                .unwrap_or_else(|e| panic!("{topic}: the stripped output is refused: {e}"));
            if again.json != stripped.json {
                let parse = |s: &str| serde_json::from_str::<Value>(s).ok();
                assert!(
                    same(&parse(&again.json), &parse(&stripped.json)),
                    "{topic}: stripping twice changes the output: {} then {}",
                    stripped.json,
                    again.json
                );
            }
            assert_eq!(again.stripping, stripped.stripping);
        }
        Err(e) => assert!(
            !valid || matches!(e, StripError::NotDeleteShape(_)),
            "{topic}: refused a body serde_json accepts: {e}"
        ),
    }
});

/// Equal, numbers within two units in the last place of an `f64`.
fn same(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_value(a, b),
        _ => a == b,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => {
                x == y
                    || (x.is_sign_positive() == y.is_sign_positive()
                        && x.to_bits().abs_diff(y.to_bits()) <= 2)
            }
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy))
        }
        _ => a == b,
    }
}
