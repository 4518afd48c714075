//! The version of a resource a payload carries, which guards every upsert.
//!
//! Shopify's `updated_at` has one-second precision, so two different changes can share it.
//! A [`Version`] pairs it with a digest of the stripped payload: an upsert wins when its
//! `updated_at` is later, or equal with a different digest (last writer wins inside one
//! second); a redelivery of the same payload (several subscriptions, replays) never writes.
//! The matching SQL predicate is [`NEWER`].

use sqlx::{PgConnection, Row};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use super::Verdict;

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

/// The row a guarded upsert targeted, to say why it lost.
#[derive(Debug, Clone, Copy)]
pub(super) enum Key<'a> {
    /// A table keyed by `(shop, id)`.
    Id(&'static str, i64),
    /// A table keyed by `(shop, admin_graphql_api_id)`.
    Gid(&'static str, &'a str),
    /// `inventory_levels`, keyed by `(shop, inventory_item_id, location_id)`.
    Level(i64, i64),
    /// `shops`, keyed by the shop.
    Shop,
}

/// `Applied` when the guarded upsert of `version` into `key`'s row won; otherwise `Stale`
/// with why, read from the stored row (only on this path, so applying costs nothing more).
pub(super) async fn outcome(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    key: Key<'_>,
    version: &Version,
    won: bool,
) -> Result<Verdict, sqlx::Error> {
    if won {
        return Ok(Verdict::Applied);
    }
    const COLUMNS: &str = "source_updated_at, source_digest";
    let sql = match key {
        Key::Id(table, _) => {
            format!("SELECT {COLUMNS}, deleted_at FROM {table} WHERE shop = $1 AND id = $2")
        }
        Key::Gid(table, _) => format!(
            "SELECT {COLUMNS}, deleted_at FROM {table}
             WHERE shop = $1 AND admin_graphql_api_id = $2"
        ),
        Key::Level(..) => format!(
            "SELECT {COLUMNS}, NULL::timestamptz AS deleted_at FROM inventory_levels
             WHERE shop = $1 AND inventory_item_id = $2 AND location_id = $3"
        ),
        Key::Shop => {
            format!("SELECT {COLUMNS}, NULL::timestamptz AS deleted_at FROM shops WHERE shop = $1")
        }
    };
    let query = sqlx::query(&sql).bind(shop);
    let query = match key {
        Key::Id(_, id) => query.bind(id),
        Key::Gid(_, gid) => query.bind(gid),
        Key::Level(item, location) => query.bind(item).bind(location),
        Key::Shop => query,
    };
    let stored = query.fetch_optional(conn).await?;
    let stored = stored.map(|r| {
        (
            r.get::<Option<OffsetDateTime>, _>(0),
            r.get::<Option<i64>, _>(1),
            r.get::<Option<OffsetDateTime>, _>(2),
        )
    });
    Ok(Verdict::Stale(why_stale(version, stored)))
}

/// Why `version` lost against the stored `(updated_at, digest, deleted_at)`.
pub(super) fn why_stale(
    version: &Version,
    stored: Option<(Option<OffsetDateTime>, Option<i64>, Option<OffsetDateTime>)>,
) -> String {
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string());
    match stored {
        None => "no stored row to compare with (written and removed meanwhile)".into(),
        Some((_, _, Some(deleted))) => format!("the record was deleted at {}", at(deleted)),
        Some((Some(stored), _, None)) if stored > version.updated_at => format!(
            "older than stored updated_at {} (this version: {})",
            at(stored),
            at(version.updated_at)
        ),
        Some((Some(stored), Some(digest), None))
            if stored == version.updated_at && digest == version.digest =>
        {
            format!("same version already applied (updated_at {})", at(stored))
        }
        Some((stored, _, None)) => format!(
            "an equal or newer version is stored (updated_at {})",
            stored.map_or_else(|| "unknown".into(), at)
        ),
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
    fn stale_reasons_name_the_stored_version() {
        let v = Version {
            updated_at: time::macros::datetime!(2026-12-01 10:00 UTC),
            digest: 7,
        };
        let newer = time::macros::datetime!(2026-12-01 10:05 UTC);
        assert_eq!(
            why_stale(&v, Some((Some(newer), Some(1), None))),
            "older than stored updated_at 2026-12-01T10:05:00Z (this version: 2026-12-01T10:00:00Z)"
        );
        assert_eq!(
            why_stale(&v, Some((Some(v.updated_at), Some(7), None))),
            "same version already applied (updated_at 2026-12-01T10:00:00Z)"
        );
        assert_eq!(
            why_stale(&v, Some((Some(newer), None, Some(newer)))),
            "the record was deleted at 2026-12-01T10:05:00Z"
        );
    }

    #[test]
    fn digest_matches_the_fnv1a_reference_vectors() {
        assert_eq!(digest("") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(digest("a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(digest("foobar") as u64, 0x8594_4171_f739_67e8);
    }
}
