//! Money amounts as Shopify sends them (`"19.99"`), kept as decimal text and cast to
//! `numeric` in SQL: never a float.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A decimal amount, validated as `-?digits[.digits]` so the SQL cast to `numeric` cannot
/// fail (a failed cast would be a database error, retried for nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Money(String);

impl Money {
    /// Validates `s` as a plain decimal.
    fn parse(s: &str) -> Option<Money> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let (int, frac) = match digits.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (digits, None),
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        (all_digits(int) && frac.is_none_or(all_digits)).then(|| Money(s.to_owned()))
    }

    /// The decimal text, for a `::numeric` cast.
    pub fn into_text(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        struct MoneyVisitor;
        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal amount such as \"19.99\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                Money::parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                Ok(Money(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                Ok(Money(v.to_string()))
            }
            // serde_json has already rounded a JSON number with a fraction to f64; Shopify
            // sends amounts as strings, so this only accepts hand-written payloads.
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                let text = v.to_string();
                Money::parse(&text).ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }
        d.deserialize_any(MoneyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(json: &str) -> Result<String, String> {
        serde_json::from_str::<Money>(json)
            .map(Money::into_text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn shopify_amount_strings_are_kept_verbatim() {
        assert_eq!(money("\"19.99\"").unwrap(), "19.99");
        assert_eq!(money("\"-0.10\"").unwrap(), "-0.10");
        assert_eq!(
            money("\"12345678901234567890.123\"").unwrap(),
            "12345678901234567890.123"
        );
        assert_eq!(money("7").unwrap(), "7");
    }

    #[test]
    fn non_decimal_amounts_are_rejected_with_the_value() {
        for bad in [
            "\"\"", "\"1.\"", "\".5\"", "\"1e3\"", "\"NaN\"", "\"1,00\"", "true",
        ] {
            let err = money(bad).unwrap_err();
            assert!(err.contains("decimal amount"), "{bad}: {err}");
        }
    }
}
