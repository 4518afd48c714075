//! How `origin` prints listings: an aligned table for people by default, JSON for scripts
//! with `--json` (each command keeps its JSON shape), and a notice when a listing is cut
//! ("showing 100 of 1,416; --limit to see more", on stderr so a pipe gets only rows).

use std::fmt::Write as _;

/// The widest a cell is shown in a table; longer text is cut with `…` (`--json` has it all).
pub const MAX_CELL: usize = 72;

/// A table: a header and rows of text cells, rendered with aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(header: I) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra ones dropped).
    pub fn row<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, cells: I) -> &mut Table {
        let mut row: Vec<String> = cells.into_iter().map(|c| cell(&c.into())).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
        self
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text: columns padded to their widest cell, two spaces apart, no trailing
    /// spaces.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| width(&r[i]))
                    .chain([width(&self.header[i])])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, text) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(text);
                line.push_str(&" ".repeat(widths[i] - width(text)));
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

/// One line of a cell: newlines flattened, cut at [`MAX_CELL`] characters.
fn cell(text: &str) -> String {
    let flat = text.replace(['\n', '\r', '\t'], " ");
    if width(&flat) <= MAX_CELL {
        return flat;
    }
    let mut cut: String = flat.chars().take(MAX_CELL - 1).collect();
    cut.push('…');
    cut
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `1416` → `1,416`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// The notice of a cut listing, or none when everything is shown.
pub fn cut_notice(shown: usize, total: i64) -> Option<String> {
    (total > shown as i64).then(|| {
        format!(
            "showing {} of {}; --limit to see more",
            thousands(shown as i64),
            thousands(total)
        )
    })
}

/// Prints a listing: `json_lines` (one JSON document per line, the shape scripts read) with
/// `--json`, else the table, or "(none)" when empty; then the cut notice on stderr.
pub fn print(json: bool, json_lines: &[String], table: &Table, cut: Option<String>) {
    if json {
        for line in json_lines {
            println!("{line}");
        }
    } else if table.is_empty() {
        println!("(none)");
    } else {
        print!("{}", table.render());
    }
    if let Some(notice) = cut {
        eprintln!("{notice}");
    }
}

/// A table's columns taken from JSON rows: `(title, field)`, the field read at the row's top
/// level (text as is, null blank, anything else as compact JSON).
pub type Columns<'a> = &'a [(&'a str, &'a str)];

/// The table of JSON `rows` (what `--json` prints, so both show the same data).
pub fn table_of(rows: &[serde_json::Value], columns: Columns<'_>) -> Table {
    let mut table = Table::new(columns.iter().map(|(title, _)| *title));
    for row in rows {
        table.row(columns.iter().map(|(_, field)| text(&row[*field])));
    }
    table
}

/// A JSON value as a table cell.
pub fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Prints a listing whose `--json` shape is one document (`{"runs": [...]}`): the document
/// with `--json`, else the table of `rows` taken from it.
pub fn print_document(
    json: bool,
    document: &serde_json::Value,
    rows: &serde_json::Value,
    columns: Columns<'_>,
    cut: Option<String>,
) {
    let rows = rows.as_array().map(Vec::as_slice).unwrap_or_default();
    let lines = [document.to_string()];
    print(json, &lines, &table_of(rows, columns), cut);
}

/// A time as `2026-12-03 15:04:05` (UTC, seconds), for tables.
pub fn when(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell_without_trailing_spaces() {
        let mut t = Table::new(["ID", "TOPIC", "ERROR"]);
        t.row(["7", "orders/create", "boom"]);
        t.row(["1234", "products/update", ""]);
        assert_eq!(
            t.render(),
            "ID    TOPIC            ERROR\n\
             7     orders/create    boom\n\
             1234  products/update\n"
        );
    }

    #[test]
    fn a_table_of_json_rows_shows_text_plainly_and_null_blank() {
        let rows = [serde_json::json!({"id": 1, "name": "a", "error": null, "n": {"x": 1}})];
        let t = table_of(
            &rows,
            &[
                ("ID", "id"),
                ("NAME", "name"),
                ("ERROR", "error"),
                ("N", "n"),
            ],
        );
        assert_eq!(
            t.render(),
            "ID  NAME  ERROR  N\n1   a            {\"x\":1}\n"
        );
    }

    #[test]
    fn long_and_multiline_cells_are_cut_to_one_line() {
        let mut t = Table::new(["A"]);
        t.row(["x".repeat(200)]);
        t.row(["two\nlines"]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1].chars().count(), MAX_CELL);
        assert!(lines[1].ends_with('…'));
        assert_eq!(lines[2], "two lines");
    }

    #[test]
    fn the_cut_notice_counts_with_thousands_separators_and_only_when_cut() {
        assert_eq!(
            cut_notice(100, 1416).as_deref(),
            Some("showing 100 of 1,416; --limit to see more")
        );
        assert_eq!(cut_notice(3, 3), None);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(-1000), "-1,000");
    }
}
