//! Shopify's global ids, `gid://shopify/<Kind>/<id>` (an inventory level's id carries a query,
//! `…/InventoryLevel/<location>?inventory_item_id=<item>`): parsed once, the kind checked, the
//! numeric id read without allocating. Every part of Wholesail that reads a gid uses this.

use thiserror::Error;

const PREFIX: &str = "gid://shopify/";

/// A parsed gid, borrowing the text it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gid<'a> {
    kind: &'a str,
    rest: &'a str,
}

/// Why a text is not the gid that was expected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GidError {
    /// Not `gid://shopify/<Kind>/<id>`.
    #[error("{0:?} is not a Shopify gid")]
    NotAGid(String),
    /// A gid of another kind.
    #[error("{gid:?} is not a {kind} gid")]
    WrongKind {
        /// The gid as given.
        gid: String,
        /// The kind expected.
        kind: String,
    },
    /// Its id is not a positive 64-bit integer.
    #[error("{0:?} has no numeric id")]
    NotNumeric(String),
}

impl<'a> Gid<'a> {
    /// Parses `gid://shopify/<Kind>/<rest>` (kind and rest not empty).
    pub fn parse(gid: &'a str) -> Result<Self, GidError> {
        gid.strip_prefix(PREFIX)
            .and_then(|r| r.split_once('/'))
            .filter(|(kind, rest)| !kind.is_empty() && !rest.is_empty())
            .map(|(kind, rest)| Gid { kind, rest })
            .ok_or_else(|| GidError::NotAGid(gid.to_owned()))
    }

    /// The numeric id of `gid`, which must be a gid of `kind`.
    pub fn number_of(gid: &str, kind: &str) -> Result<i64, GidError> {
        let parsed = Gid::parse(gid)?;
        if parsed.kind != kind {
            return Err(GidError::WrongKind {
                gid: gid.to_owned(),
                kind: kind.to_owned(),
            });
        }
        numeric_id(parsed.rest).ok_or_else(|| GidError::NotNumeric(gid.to_owned()))
    }

    /// The resource kind (`Product`, `CompanyLocation`, …).
    pub fn kind(&self) -> &'a str {
        self.kind
    }

    /// Everything after the kind: the id, and a query where Shopify puts one.
    pub fn rest(&self) -> &'a str {
        self.rest
    }
}

/// `digits` as a positive `i64`, as `str::parse` reads it; `None` otherwise. Plain digits (the
/// usual case) skip the general integer parser: 18 digits never overflow an `i64`.
#[inline]
pub fn numeric_id(digits: &str) -> Option<i64> {
    let b = digits.as_bytes();
    if (1..=18).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) {
        let n = b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        if n > 0 {
            return Some(n);
        }
    }
    digits.parse::<i64>().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gid_is_parsed_once_and_its_kind_checked() {
        let g = Gid::parse("gid://shopify/InventoryLevel/600?inventory_item_id=45").unwrap();
        assert_eq!(
            (g.kind(), g.rest()),
            ("InventoryLevel", "600?inventory_item_id=45")
        );
        assert_eq!(
            Gid::number_of("gid://shopify/CompanyLocation/42", "CompanyLocation"),
            Ok(42)
        );
        assert_eq!(
            Gid::number_of("gid://shopify/Company/42", "CompanyLocation")
                .unwrap_err()
                .to_string(),
            "\"gid://shopify/Company/42\" is not a CompanyLocation gid"
        );
        for bad in [
            "",
            "42",
            "gid://shopify/",
            "gid://shopify/Product",
            "gid://shopify//1",
            "gid://other/Product/1",
        ] {
            assert_eq!(
                Gid::parse(bad),
                Err(GidError::NotAGid(bad.to_owned())),
                "{bad}"
            );
        }
        for id in ["0", "-1", "x", "99999999999999999999"] {
            let gid = format!("gid://shopify/Product/{id}");
            assert_eq!(
                Gid::number_of(&gid, "Product"),
                Err(GidError::NotNumeric(gid.clone()))
            );
        }
    }

    #[test]
    fn numeric_ids_read_as_the_integer_parser_reads_them() {
        for digits in [
            "1",
            "007",
            "+5",
            "922337203685477580",
            "9223372036854775807",
            "9223372036854775808",
            "1 ",
            "",
        ] {
            let reference = digits.parse::<i64>().ok().filter(|n| *n > 0);
            assert_eq!(numeric_id(digits), reference, "{digits:?}");
        }
    }
}
