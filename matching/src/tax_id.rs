//! Tax ids (VAT numbers, EINs, …) reduced to a comparable form: separators gone, upper case,
//! and the EU-style two-letter country prefix taken off and kept as the id's country.

use std::fmt;

use crate::country::Country;

/// A normalised tax id: `DE 123 456 789`, `de123456789` and `123456789` of a German company
/// are the same id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaxId {
    country: Option<Country>,
    number: String,
}

impl TaxId {
    /// Normalises `raw`; `country` is the record's country, used when the id has no prefix.
    /// `None` for placeholders: fewer than 4 characters, no digit, or one repeated digit
    /// (`N/A`, `-`, `000000000`).
    pub fn parse(raw: &str, country: Option<Country>) -> Option<TaxId> {
        let s: String = raw
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let (country, number) = match s.as_bytes() {
            [a, b, rest @ ..]
                if VAT_PREFIXES.contains(&[*a, *b])
                    && rest.len() >= 2
                    && rest.iter().any(u8::is_ascii_digit) =>
            {
                (Some(Country::alias([*a, *b])), &s[2..])
            }
            _ => (country, s.as_str()),
        };
        let digits: Vec<u8> = number.bytes().filter(u8::is_ascii_digit).collect();
        let placeholder = number.len() < 4
            || digits.is_empty()
            || (digits.len() == number.len() && digits.iter().all(|d| *d == digits[0]));
        (!placeholder).then(|| TaxId {
            country,
            number: number.to_owned(),
        })
    }

    /// The number without country prefix, the value stored in and queried from Salesforce.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// Whether both are the same id: equal numbers, and countries equal where both are known
    /// (a US EIN `12-3456789` is not the German `DE123456789`).
    pub fn same_as(&self, other: &TaxId) -> bool {
        self.number == other.number
            && match (self.country, other.country) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for TaxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = self.country {
            write!(f, "{c}")?;
        }
        f.write_str(&self.number)
    }
}

/// Country prefixes of EU VAT numbers (Greece's is `EL`), plus the United Kingdom's, Northern
/// Ireland's (`XI`), Switzerland's and Norway's, which follow the same style.
const VAT_PREFIXES: &[[u8; 2]] = &[
    *b"AT", *b"BE", *b"BG", *b"CY", *b"CZ", *b"DE", *b"DK", *b"EE", *b"EL", *b"ES", *b"FI", *b"FR",
    *b"HR", *b"HU", *b"IE", *b"IT", *b"LT", *b"LU", *b"LV", *b"MT", *b"NL", *b"PL", *b"PT", *b"RO",
    *b"SE", *b"SI", *b"SK", *b"GB", *b"XI", *b"CH", *b"NO",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn de() -> Option<Country> {
        Country::parse("DE")
    }

    #[test]
    fn separators_case_and_prefix_do_not_matter() {
        let a = TaxId::parse("DE 123 456 789", None).unwrap();
        let b = TaxId::parse("de123456789", None).unwrap();
        let c = TaxId::parse("123456789", de()).unwrap();
        let d = TaxId::parse("DE-123.456.789", de()).unwrap();
        for other in [&b, &c, &d] {
            assert!(a.same_as(other), "{a} vs {other}");
        }
        assert_eq!(a.number(), "123456789");
        assert_eq!(a.to_string(), "DE123456789");
    }

    #[test]
    fn prefix_without_country_matches_a_number_without_country() {
        let a = TaxId::parse("FR 40 303 265 045", None).unwrap();
        assert!(a.same_as(&TaxId::parse("40303265045", None).unwrap()));
        assert!(a.same_as(&TaxId::parse("FR40303265045", Country::parse("France")).unwrap()));
    }

    #[test]
    fn same_digits_in_other_countries_are_different_ids() {
        let de = TaxId::parse("DE123456789", None).unwrap();
        let us = TaxId::parse("12-3456789", Country::parse("US")).unwrap();
        let at = TaxId::parse("123456789", Country::parse("AT")).unwrap();
        assert!(!de.same_as(&us));
        assert!(!de.same_as(&at));
    }

    #[test]
    fn letters_inside_the_number_stay() {
        let nl = TaxId::parse("NL 8575.14.814.B01", None).unwrap();
        assert_eq!(nl.number(), "857514814B01");
        let greek = TaxId::parse("EL 094 259 216", None).unwrap();
        assert!(greek.same_as(&TaxId::parse("094259216", Country::parse("Greece")).unwrap()));
    }

    #[test]
    fn placeholders_are_no_tax_id() {
        for raw in [
            "",
            "-",
            "N/A",
            "none",
            "123",
            "000000000",
            "DE 000 000 000",
            "TBD",
        ] {
            assert_eq!(TaxId::parse(raw, de()), None, "{raw}");
        }
    }
}
