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
    /// Converts a decimal amount as Shopify's `Decimal` scalar delivers it (an `f64` parsed
    /// from the decimal string) to hundredths, rounding half up; negative or non-finite
    /// amounts give `None`.
    pub fn from_decimal(amount: f64, currency: CurrencyCode) -> Option<Self> {
        // 2^53 / 100: beyond this an f64 no longer holds every hundredth exactly.
        if !amount.is_finite() || !(0.0..=90_071_992_547_409.0).contains(&amount) {
            return None;
        }
        let hundredths = (amount * 100.0 + 0.5) as u64;
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
    fn decimal_amounts_round_to_the_nearest_hundredth() {
        let eur = CurrencyCode::parse("EUR").unwrap();
        for (amount, want) in [(0.0, 0), (19.99, 1999), (0.1 + 0.2, 30), (1234.565, 123457)] {
            assert_eq!(Money::from_decimal(amount, eur).unwrap().hundredths, want);
        }
        assert_eq!(Money::from_decimal(-1.0, eur), None);
        assert_eq!(Money::from_decimal(f64::NAN, eur), None);
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
