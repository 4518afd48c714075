//! The rules file importer (CSV and JSON) on any text: it never panics, and every rule it
//! accepts survives the way rules are shown and exported (`Rule::to_row`): written back as a
//! JSON row (and, for a CSV file, as a CSV row) it imports as the same rule.
//!
//! Input: the first byte picks the format (even: CSV, odd: JSON), the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wholesail_origin::rules::file::{self, Format, Rule, COLUMNS};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if pick % 2 == 0 {
        Format::Csv
    } else {
        Format::Json
    };
    let Ok(rules) = file::parse(text, format) else {
        return;
    };
    let rows: Vec<_> = rules.iter().map(Rule::to_row).collect();
    let json = serde_json::to_string(&rows).expect("rows serialise");
    assert_eq!(
        file::parse(&json, Format::Json).as_ref(),
        Ok(&rules),
        "the JSON rows of the rules import differently: {json}"
    );
    if format == Format::Csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(COLUMNS).expect("in memory");
        for row in &rows {
            w.write_record(COLUMNS.map(|c| row.get(c).map_or("", String::as_str)))
                .expect("in memory");
        }
        let csv =
            String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8 in, UTF-8 out");
        assert_eq!(
            file::parse(&csv, Format::Csv).as_ref(),
            Ok(&rules),
            "the CSV rows of the rules import differently: {csv}"
        );
    }
});
