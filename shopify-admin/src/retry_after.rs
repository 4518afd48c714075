//! The one `Retry-After` parser: every place that honours the header reads it here.
//!
//! Only the delay-seconds form is used: a non-negative decimal number of seconds. Shopify
//! writes it as an integer (`2`) or with a fraction (`2.0`); a fraction rounds up to the next
//! whole second. The HTTP-date form is ignored (the usual backoff applies): Shopify does not
//! send it, and a date would depend on clock agreement. Anything else — negative, `NaN`,
//! exponents, text — is ignored too, and a huge value is clamped to [`MAX_RETRY_AFTER`], so
//! no header can panic or stall a retry loop.

use std::time::Duration;

/// The longest wait a `Retry-After` header can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The delay `value` asks for, clamped to [`MAX_RETRY_AFTER`]; `None` when it is not a
/// non-negative number of seconds.
pub fn parse(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let max = MAX_RETRY_AFTER.as_secs();
    // More digits than the cap has can only be above it.
    let secs = if whole.len() > 20 {
        max
    } else {
        whole.parse::<u64>().unwrap_or(u64::MAX)
    };
    let round_up = u64::from(fraction.bytes().any(|b| b != b'0'));
    Some(Duration::from_secs(secs.saturating_add(round_up).min(max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_fractional_seconds_are_read_and_rounded_up() {
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse(" 2.0 "), Some(Duration::from_secs(2)));
        assert_eq!(parse("1.5"), Some(Duration::from_secs(2)));
        assert_eq!(parse("7."), Some(Duration::from_secs(7)));
    }

    #[test]
    fn huge_values_are_clamped() {
        for huge in [
            "61",
            "3600",
            "18446744073709551615",
            "99999999999999999999999999999",
        ] {
            assert_eq!(parse(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
    }

    #[test]
    fn anything_else_is_ignored() {
        for bad in [
            "",
            "-1",
            "-0.5",
            "NaN",
            "nan",
            "inf",
            "1e30",
            "+3",
            ".5",
            "1.2.3",
            "2 s",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
