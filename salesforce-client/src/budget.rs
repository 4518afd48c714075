//! The org's daily API budget as Salesforce reports it on every answer
//! (`Sforce-Limit-Info: api-usage=n/m`), shared by every user of the org's client.

use std::sync::Mutex;

use time::OffsetDateTime;

/// The header Salesforce reports API usage in.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";

/// API requests used and allowed in the current window, as last reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Requests used.
    pub used: u64,
    /// Requests allowed.
    pub max: u64,
    /// When the answer carrying these numbers arrived.
    pub updated_at: OffsetDateTime,
}

impl Usage {
    /// Requests left (0 when spent).
    pub fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }
}

/// The latest reported usage of one org.
#[derive(Debug, Default)]
pub struct Budget {
    usage: Mutex<Option<Usage>>,
}

impl Budget {
    /// The latest usage, once any answer has reported it.
    pub fn usage(&self) -> Option<Usage> {
        *self.usage.lock().expect("budget lock")
    }

    /// Records the `Sforce-Limit-Info` header value, if it carries `api-usage`.
    pub(crate) fn observe(&self, header: &str) {
        if let Some((used, max)) = parse_api_usage(header) {
            *self.usage.lock().expect("budget lock") = Some(Usage {
                used,
                max,
                updated_at: OffsetDateTime::now_utc(),
            });
        }
    }
}

/// `(used, max)` from `api-usage=18/5000` (other entries, such as
/// `per-app-api-usage=17/250(appName=…)`, are ignored).
pub fn parse_api_usage(header: &str) -> Option<(u64, u64)> {
    header.split([';', ',']).find_map(|part| {
        let (used, max) = part.trim().strip_prefix("api-usage=")?.split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_usage_is_read_among_other_entries() {
        assert_eq!(parse_api_usage("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            parse_api_usage("per-app-api-usage=17/250(appName=x); api-usage=25/15000"),
            Some((25, 15000))
        );
        assert_eq!(parse_api_usage("per-app-api-usage=17/250"), None);
        assert_eq!(parse_api_usage("api-usage=x/1"), None);
    }
}
