//! Money as integer hundredths of a currency unit, never floating point.

use std::fmt;

/// An ISO 4217 currency code: three ASCII uppercase letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurrencyCode([u8; 3]);

impl CurrencyCode {
    /// Parses `"EUR"`-style codes; anything but three ASCII uppercase letters is refused.
    pub fn parse(code: &str) -> Option<Self> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Some(Self([a, b, c])),
            _ => None,
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from three ASCII uppercase letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in hundredths of `currency`'s unit (cents for USD/EUR; yen × 100 for JPY, so
/// that no currency table is needed: every amount is "value × 100").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// The amount × 100.
    pub hundredths: u64,
    /// Its currency.
    pub currency: CurrencyCode,
}

impl Money {
    /// Parses a non-negative decimal amount as Shopify's `Decimal` scalar writes it
    /// (`"1234.5"`, `"0.75"`, `"12"`) into hundredths, rounding half up beyond two decimals;
    /// anything else (sign, exponent, empty, overflow) gives `None`. No floating point.
    pub fn parse_decimal(amount: &str, currency: CurrencyCode) -> Option<Self> {
        let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || int.len() > 17 {
            return None;
        }
        let digit = |i: usize| u64::from(frac.as_bytes().get(i).map_or(0, |b| b - b'0'));
        let units = int.bytes().fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
        let hundredths = units * 100 + digit(0) * 10 + digit(1) + u64::from(digit(2) >= 5);
        Some(Self {
            hundredths,
            currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:02} {}",
            self.hundredths / 100,
            self.hundredths % 100,
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_amounts_parse_to_hundredths_rounding_half_up() {
        let eur = CurrencyCode::parse("EUR").unwrap();
        for (amount, want) in [
            ("0", 0),
            ("0.0", 0),
            ("19.99", 1999),
            ("19.9", 1990),
            ("1234.565", 123457),
            ("1234.5649", 123456),
            ("7.", 700),
        ] {
            assert_eq!(
                Money::parse_decimal(amount, eur).unwrap().hundredths,
                want,
                "{amount}"
            );
        }
        for bad in [
            "",
            "-1.00",
            "1e3",
            ".5",
            "1.2.3",
            "12a",
            "999999999999999999",
        ] {
            assert_eq!(Money::parse_decimal(bad, eur), None, "{bad}");
        }
    }

    #[test]
    fn the_largest_accepted_amount_cannot_overflow() {
        let eur = CurrencyCode::parse("EUR").unwrap();
        let max = Money::parse_decimal("99999999999999999.995", eur).unwrap();
        assert_eq!(max.hundredths, 10_000_000_000_000_000_000);
    }

    #[test]
    fn currency_codes_are_three_uppercase_letters() {
        assert!(CurrencyCode::parse("USD").is_some());
        for bad in ["usd", "US", "USDX", "U$D", ""] {
            assert_eq!(CurrencyCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn money_displays_with_two_decimals_and_its_currency() {
        let m = Money {
            hundredths: 25005,
            currency: CurrencyCode::parse("USD").unwrap(),
        };
        assert_eq!(m.to_string(), "250.05 USD");
    }
}
