//! Readings of this process's own metrics (the Prometheus text it would serve at `/metrics`):
//! what only the running loops know, such as the Salesforce API budget and the breakers, and
//! the SLO counters of the metric contract (`wholesail_slo_*`). Values are this process's
//! since it started.

use metrics_exporter_prometheus::PrometheusHandle;

/// One sample: a metric's name, its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric name (`wholesail_…`, with `_bucket`/`_sum`/`_count` for histograms).
    pub name: String,
    /// Its labels, as exported.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, or "".
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The samples of the exposition `text` whose names start with one of `prefixes`.
pub fn parse(text: &str, prefixes: &[&str]) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, Vec::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y"` (values escaped with `\\`, `\"`, `\n`).
fn parse_labels(mut text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim_start_matches(',').to_owned(), value));
        text = rest[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

/// The current samples of `handle` whose names start with one of `prefixes`.
pub fn read(handle: &PrometheusHandle, prefixes: &[&str]) -> Vec<Sample> {
    parse(&handle.render(), prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_labels_and_escapes_are_read_and_others_skipped() {
        let text = "# TYPE wholesail_x gauge\nwholesail_x{org=\"a \\\"b\\\"\",k=\"v\"} 0.25\n\
                    wholesail_y 3\nother_z 1\n";
        let samples = parse(text, &["wholesail_"]);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].name, "wholesail_x");
        assert_eq!(samples[0].label("org"), "a \"b\"");
        assert_eq!(samples[0].label("k"), "v");
        assert_eq!(samples[0].value, 0.25);
        assert_eq!(samples[1].labels, vec![]);
        assert_eq!(samples[1].value, 3.0);
    }
}
