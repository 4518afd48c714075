//! The bulk-export JSONL reader, differential: on every line its allocation-free scanner either
//! defers to `serde_json` or reads exactly what `serde_json` reads (same verdict, same values),
//! and routing the line never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wholesail_origin::catalog::jsonl;

fuzz_target!(|data: &[u8]| {
    if let Some(diff) = jsonl::scanner_disagreement(data) {
        panic!("{diff}");
    }
    let _ = jsonl::parse(1, data);
});
