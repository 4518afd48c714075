//! Structured log lines: one JSON object per line on the console, which Workers Logs indexes.
//! They carry identifiers, sizes and outcomes — never secrets or payload bodies.

use serde::Serialize;

/// How serious a log line is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Normal operation.
    #[default]
    Info,
    /// Something to look at, nothing lost.
    Warn,
    /// An event that needs a person (parked envelope, unusable configuration).
    Error,
}

/// One log line. Empty fields are left out.
#[derive(Debug, Default, Serialize)]
pub struct LogLine<'a> {
    /// Severity.
    pub level: Level,
    /// What happened, e.g. `webhook`, `forward`, `park`.
    pub event: &'a str,
    /// The outcome, e.g. `queued`, `stored_r2`, `unauthorized`, `acked`, `retry`.
    pub outcome: &'a str,
    /// HTTP status answered or received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The topic (only once the HMAC checked out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<&'a str>,
    /// The shop (only once the HMAC checked out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shop: Option<&'a str>,
    /// The webhook id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<&'a str>,
    /// Bytes received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<usize>,
    /// Bytes sent on (envelope or batch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<usize>,
    /// Number of messages concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Delivery attempt of a queue message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Seconds until the next delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_secs: Option<u32>,
    /// Why (a refusal, a failure); never payload text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

impl LogLine<'_> {
    /// The line as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("log lines always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_is_one_json_object_without_empty_fields() {
        let line = LogLine {
            level: Level::Info,
            event: "webhook",
            outcome: "queued",
            status: Some(200),
            topic: Some("orders/create"),
            webhook_id: Some("w\"1"),
            bytes_in: Some(10),
            ..LogLine::default()
        }
        .to_json();
        assert_eq!(
            line,
            r#"{"level":"info","event":"webhook","outcome":"queued","status":200,"topic":"orders/create","webhook_id":"w\"1","bytes_in":10}"#
        );
    }
}
