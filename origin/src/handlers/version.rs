//! The version of a resource a payload carries, which guards every upsert.
//!
//! Shopify's `updated_at` has one-second precision, so two different changes can share it.
//! A [`Version`] pairs it with a digest of the stripped payload: an upsert wins when its
//! `updated_at` is later, or equal with a different digest (last writer wins inside one
//! second); a redelivery of the same payload (several subscriptions, replays) never writes.
//! The matching SQL predicate is [`NEWER`].

use time::OffsetDateTime;

/// The SQL predicate of an `ON CONFLICT … DO UPDATE … WHERE` that lets a newer version win;
/// the target table must be aliased `t`.
pub(super) const NEWER: &str = "(t.source_updated_at IS NULL
      OR t.source_updated_at < EXCLUDED.source_updated_at
      OR (t.source_updated_at = EXCLUDED.source_updated_at
          AND t.source_digest IS DISTINCT FROM EXCLUDED.source_digest))";

/// A payload's `updated_at` and digest.
#[derive(Debug, Clone, Copy)]
pub(super) struct Version {
    /// The resource's `updated_at`.
    pub updated_at: OffsetDateTime,
    /// [`digest`] of the payload text.
    pub digest: i64,
}

impl Version {
    /// The version of `payload`, whose resource was updated at `updated_at`.
    pub fn of(updated_at: OffsetDateTime, payload: &str) -> Version {
        Version {
            updated_at,
            digest: digest(payload),
        }
    }
}

/// 64-bit FNV-1a of `text`: stable across builds and releases (unlike `std`'s hasher), so
/// digests stored in the tables stay comparable after an upgrade.
pub(super) fn digest(text: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_the_fnv1a_reference_vectors() {
        assert_eq!(digest("") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(digest("a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(digest("foobar") as u64, 0x8594_4171_f739_67e8);
    }
}
