//! Countries as ISO 3166-1 alpha-2 codes, from the codes or the common English and native names
//! found in Salesforce's free-text `BillingCountry`.

use std::fmt;

/// An upper-case ISO 3166-1 alpha-2 code (`GB`, not `UK`; `GR`, not the VAT prefix `EL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Country([u8; 2]);

impl Country {
    /// Reads a two-letter code (any case; `UK` → `GB`, `EL` → `GR`) or a common country name;
    /// `None` for anything else.
    pub fn parse(raw: &str) -> Option<Country> {
        let s = deunicode::deunicode(raw.trim()).to_ascii_lowercase();
        let s = s.trim_end_matches('.');
        if let [a, b] = s.as_bytes() {
            if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() {
                return Some(Country::alias([
                    a.to_ascii_uppercase(),
                    b.to_ascii_uppercase(),
                ]));
            }
        }
        NAMES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, code)| Country(*code))
    }

    /// Maps the codes that stand for another: `UK` → `GB`, `EL` (Greece's VAT prefix) → `GR`.
    pub(crate) fn alias(code: [u8; 2]) -> Country {
        match &code {
            b"UK" => Country(*b"GB"),
            b"EL" => Country(*b"GR"),
            _ => Country(code),
        }
    }

    /// The two-letter code.
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Names seen in free-text billing countries, lower-case and without accents.
const NAMES: &[(&str, [u8; 2])] = &[
    ("united states", *b"US"),
    ("united states of america", *b"US"),
    ("usa", *b"US"),
    ("u.s.a", *b"US"),
    ("america", *b"US"),
    ("united kingdom", *b"GB"),
    ("great britain", *b"GB"),
    ("england", *b"GB"),
    ("scotland", *b"GB"),
    ("wales", *b"GB"),
    ("germany", *b"DE"),
    ("deutschland", *b"DE"),
    ("france", *b"FR"),
    ("spain", *b"ES"),
    ("espana", *b"ES"),
    ("italy", *b"IT"),
    ("italia", *b"IT"),
    ("netherlands", *b"NL"),
    ("the netherlands", *b"NL"),
    ("holland", *b"NL"),
    ("nederland", *b"NL"),
    ("belgium", *b"BE"),
    ("austria", *b"AT"),
    ("osterreich", *b"AT"),
    ("switzerland", *b"CH"),
    ("schweiz", *b"CH"),
    ("suisse", *b"CH"),
    ("sweden", *b"SE"),
    ("sverige", *b"SE"),
    ("norway", *b"NO"),
    ("denmark", *b"DK"),
    ("finland", *b"FI"),
    ("poland", *b"PL"),
    ("polska", *b"PL"),
    ("portugal", *b"PT"),
    ("ireland", *b"IE"),
    ("greece", *b"GR"),
    ("czech republic", *b"CZ"),
    ("czechia", *b"CZ"),
    ("canada", *b"CA"),
    ("australia", *b"AU"),
    ("new zealand", *b"NZ"),
    ("japan", *b"JP"),
    ("china", *b"CN"),
    ("india", *b"IN"),
    ("mexico", *b"MX"),
    ("brazil", *b"BR"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_give_the_same_country() {
        let de = Country::parse("DE");
        assert!(de.is_some());
        for raw in ["de", " De ", "Germany", "Deutschland"] {
            assert_eq!(Country::parse(raw), de, "{raw}");
        }
        assert_eq!(Country::parse("UK"), Country::parse("United Kingdom"));
        assert_eq!(Country::parse("EL"), Country::parse("Greece"));
        assert_eq!(Country::parse("España"), Country::parse("es"));
    }

    #[test]
    fn unknown_text_is_no_country() {
        for raw in ["", "D", "DEU1", "Atlantis", "12"] {
            assert_eq!(Country::parse(raw), None, "{raw}");
        }
    }
}
