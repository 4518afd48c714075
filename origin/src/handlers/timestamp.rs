//! Shopify timestamps (RFC 3339, e.g. `2026-11-23T10:00:00-05:00`) for `#[serde(with)]`,
//! with errors that quote the offending value.

use serde::de::{self, Deserializer, Unexpected};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const EXPECTED: &str = "an RFC 3339 timestamp";

fn parse<E: de::Error>(s: &str) -> Result<OffsetDateTime, E> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| E::invalid_value(Unexpected::Str(s), &EXPECTED))
}

/// A required timestamp.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s)
}

/// An optional timestamp (`null` or absent with `#[serde(default)]`).
pub(super) mod option {
    use super::*;

    /// A timestamp or `null`.
    pub(in crate::handlers) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse(&s))
            .transpose()
    }
}
