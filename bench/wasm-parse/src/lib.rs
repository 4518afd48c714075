//! The passes `cargo xtask bench edge-parse` times in V8 (`run.mjs`), each over a body handed
//! in from JavaScript through wasm-bindgen's glue (copied into the module's memory, as the
//! edge worker's body is): the edge's stripper (what the Rust worker does to every order) and
//! two validating parses that build nothing the worker keeps, serde_json's (`IgnoredAny`) and
//! simd-json's (its tape: simdjson's two stages, with wasm SIMD when built with `+simd128`).
//! Each returns a size, or -1 for a body it rejects.

use serde::de::IgnoredAny;
use wasm_bindgen::prelude::wasm_bindgen;

/// The body stripped by the `orders/create` allowlist: the stripped JSON's length.
#[wasm_bindgen]
pub fn strip(body: &[u8]) -> i32 {
    wholesail_webhook::allowlist::strip("orders/create", body).map_or(-1, |s| s.json.len() as i32)
}

/// serde_json's validating parse, nothing built: the body's length.
#[wasm_bindgen]
pub fn serde_validate(body: &[u8]) -> i32 {
    serde_json::from_slice::<IgnoredAny>(body).map_or(-1, |_| body.len() as i32)
}

/// simd-json's tape of the body (parsed in place, so the body is handed over mutable): the
/// tape's length.
#[wasm_bindgen]
pub fn simd_json_tape(body: &mut [u8]) -> i32 {
    simd_json::to_tape(body).map_or(-1, |tape| tape.0.len() as i32)
}

/// Nothing: what the glue alone costs (the body copied in).
#[wasm_bindgen]
pub fn glue_only(body: &[u8]) -> i32 {
    body.len() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &[u8] = br#"{"id":1,"admin_graphql_api_id":"gid://shopify/Order/1","updated_at":"2026-01-01T00:00:00Z","line_items":[{"id":2,"variant_id":3,"quantity":4,"price":"1.50","properties":[{"name":"x","value":"y\n"}]}],"total_price":"6.00"}"#;

    fn passes(body: &[u8]) -> [i32; 3] {
        [
            strip(body),
            serde_validate(body),
            simd_json_tape(&mut body.to_vec()),
        ]
    }

    #[test]
    fn every_pass_reads_a_whole_order() {
        let [stripped, validated, tape] = passes(ORDER);
        assert!(
            stripped > 0 && (stripped as usize) < ORDER.len(),
            "{stripped}"
        );
        assert_eq!(validated as usize, ORDER.len());
        assert!(tape > 10, "{tape}");
        assert_eq!(glue_only(ORDER) as usize, ORDER.len());
    }

    #[test]
    fn every_pass_rejects_an_order_broken_past_its_kept_fields() {
        let broken = String::from_utf8(ORDER.to_vec())
            .unwrap()
            .replace(r#""6.00"}"#, r#""6.00",}"#);
        assert_eq!(passes(broken.as_bytes()), [-1, -1, -1]);
    }
}
