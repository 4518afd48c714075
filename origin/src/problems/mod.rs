//! Problems (#16): one model over everything that needs a person.
//!
//! The view `problem_items` (migration `0070_problems.sql`) has one row per affected record:
//! inbox dead letters and quarantined rows, rules push errors, failed catalog runs (until a
//! later run of the shop completes), failed draft-order jobs, dead Salesforce outbox rows,
//! companies waiting for a Salesforce review, and unhealed findings of the latest
//! reconciliation run of each shop and scope. A [`Problem`] groups the items of one kind, shop
//! and reason, with their count, first and last seen and a few affected records; its
//! [`Action`]s resolve it.
//!
//! - [`list`] and [`items`] read, by keyset ([`Cursor`]), never by offset;
//! - [`actions::perform`] replays, retries, links or dismisses, and writes the audit log with
//!   the token that acted;
//! - [`open_counts`] feeds the `wholesail_problems_open{kind}` gauge at scrape time;
//! - [`api`] is `/admin/problems…`, [`cli`] is `origin problems …`.
//!
//! A dismissal (`problem_dismissals`) hides a problem until one of its items is seen after it.

pub mod actions;
pub mod api;
pub mod cli;
mod query;

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

pub use actions::{perform, Outcome, Request};
pub use query::{items, list, open_counts, open_counts_beside_inbox, problem, OpenCounts};

/// What kind of failure a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Kind {
    /// An inbox row that failed for good (`status = 'dead'`).
    DeadLetter,
    /// An inbox body that could not be stored as JSON or was refused at intake.
    Quarantined,
    /// A buyer whose rules could not be pushed (`rules_push_errors`).
    RulesPushError,
    /// A catalog run that failed, with no later completed run of its shop.
    CatalogRunFailed,
    /// A draft-order job that failed for good.
    DraftOrderFailed,
    /// A Salesforce outbox row Salesforce refused for good.
    SalesforceDead,
    /// A company whose Salesforce Account match is ambiguous.
    SalesforceReview,
    /// A reconciliation finding that is not healed.
    ReconcileFinding,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::DeadLetter,
        Kind::Quarantined,
        Kind::RulesPushError,
        Kind::CatalogRunFailed,
        Kind::DraftOrderFailed,
        Kind::SalesforceDead,
        Kind::SalesforceReview,
        Kind::ReconcileFinding,
    ];

    /// The name stored in `problem_items.kind` and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeadLetter => "dead_letter",
            Kind::Quarantined => "quarantined",
            Kind::RulesPushError => "rules_push_error",
            Kind::CatalogRunFailed => "catalog_run_failed",
            Kind::DraftOrderFailed => "draft_order_failed",
            Kind::SalesforceDead => "salesforce_dead",
            Kind::SalesforceReview => "salesforce_review",
            Kind::ReconcileFinding => "reconcile_finding",
        }
    }

    /// The actions that resolve a problem of this kind (dismiss resolves every kind).
    pub fn actions(self) -> &'static [Action] {
        match self {
            Kind::DeadLetter | Kind::Quarantined | Kind::SalesforceDead => {
                &[Action::Replay, Action::Dismiss]
            }
            Kind::RulesPushError | Kind::CatalogRunFailed | Kind::DraftOrderFailed => {
                &[Action::Retry, Action::Dismiss]
            }
            Kind::SalesforceReview => &[Action::Link, Action::Create, Action::Dismiss],
            Kind::ReconcileFinding => &[Action::Dismiss],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ProblemError;

    fn from_str(s: &str) -> Result<Kind, ProblemError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ProblemError::BadRequest(format!("unknown problem kind {s:?}")))
    }
}

/// What an operator can do about a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Dead letters back to pending; quarantined bodies re-parsed with today's allowlist;
    /// dead Salesforce rows back to pending.
    Replay,
    /// A failed catalog run: a new resync of the shop; a failed draft-order job: processed
    /// again; a rules push error: the buyer marked dirty so the push runs again.
    Retry,
    /// A company in Salesforce review: link it to one of its candidate Accounts.
    Link,
    /// A company in Salesforce review: create a new Account for it.
    Create,
    /// Hide the problem, with a reason, until it recurs.
    Dismiss,
}

impl Action {
    /// The name shown and used in routes (`/admin/problems/{id}/replay`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replay => "replay",
            Action::Retry => "retry",
            Action::Link => "link",
            Action::Create => "create",
            Action::Dismiss => "dismiss",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem's reference: `kind:shop:hash`, where `hash` is the first 16 hex digits of the
/// MD5 of its reason. Stable while the reason is the same, so it survives new items.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProblemId {
    /// The kind.
    pub kind: Kind,
    /// The shop.
    pub shop: ShopDomain,
    /// The reason's hash.
    pub reason_hash: String,
}

impl fmt::Display for ProblemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.shop, self.reason_hash)
    }
}

impl FromStr for ProblemId {
    type Err = ProblemError;

    fn from_str(s: &str) -> Result<ProblemId, ProblemError> {
        let bad = || {
            ProblemError::BadRequest(format!(
                "{s:?} is not a problem id (kind:shop:hash, as `origin problems list` shows)"
            ))
        };
        let mut parts = s.splitn(3, ':');
        let (Some(kind), Some(shop), Some(hash)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let hash_ok =
            hash.len() == 16 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hash_ok {
            return Err(bad());
        }
        Ok(ProblemId {
            kind: kind.parse()?,
            shop: shop.parse().map_err(|_| bad())?,
            reason_hash: hash.to_owned(),
        })
    }
}

impl Serialize for ProblemId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProblemId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An operator's dismissal of a problem.
#[derive(Clone, Debug, Serialize)]
pub struct Dismissal {
    /// Why it was dismissed.
    pub reason: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The token's name, or `cli`.
    pub by: String,
}

/// One problem: the items of one kind, shop and reason.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// Its reference (for [`items`] and the actions).
    pub id: ProblemId,
    /// The kind.
    pub kind: Kind,
    /// The shop.
    pub shop: String,
    /// Why these items failed.
    pub reason: String,
    /// How many items.
    pub count: i64,
    /// The oldest item's time.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// The newest item's time.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// A few affected records (topic and webhook id, gid, run), for recognition.
    pub sample: Vec<String>,
    /// What resolves it.
    pub actions: Vec<Action>,
    /// The latest dismissal, also one the problem has recurred since.
    pub dismissal: Option<Dismissal>,
    /// Whether it is hidden from the open list (dismissed and not seen since).
    pub dismissed: bool,
}

/// One affected record of a problem.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    /// What an action on this item addresses: an inbox or outbox row id, a company location
    /// or company gid, a run or job id, a finding id.
    pub item: String,
    /// What an operator recognises (topic and webhook id, gid, run).
    pub record: String,
    /// When it was last seen failing.
    #[serde(with = "time::serde::rfc3339")]
    pub seen_at: OffsetDateTime,
}

/// Which problems to list.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Filter {
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only this shop.
    pub shop: Option<ShopDomain>,
    /// Also the dismissed ones (they never disappear, only leave the open list).
    #[serde(default)]
    pub include_dismissed: bool,
}

/// A position in a keyset-paginated listing: the sort key of the last row shown. Opaque to
/// callers (base64url of `micros:key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The last row's time (its `last_seen` or `seen_at`), in microseconds.
    pub micros: i64,
    /// The last row's key (problem id or item).
    pub key: String,
}

impl Cursor {
    fn after(at: OffsetDateTime, key: &str) -> Cursor {
        Cursor {
            micros: (at.unix_timestamp_nanos() / 1000) as i64,
            key: key.to_owned(),
        }
    }

    fn at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.micros) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = format!("{}:{}", self.micros, self.key);
        f.write_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    }
}

impl FromStr for Cursor {
    type Err = ProblemError;

    fn from_str(s: &str) -> Result<Cursor, ProblemError> {
        let bad = || ProblemError::BadRequest(format!("{s:?} is not a cursor from a listing"));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (micros, key) = raw.split_once(':').ok_or_else(bad)?;
        Ok(Cursor {
            micros: micros.parse().map_err(|_| bad())?,
            key: key.to_owned(),
        })
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One page of a listing, newest first.
#[derive(Clone, Debug, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// How many rows the listing has in all (every page).
    pub total: i64,
    /// Pass it back for the next page; none on the last page.
    pub next: Option<String>,
}

/// The most rows a page holds.
pub const MAX_PAGE: i64 = 1000;

/// Why a problems request failed.
#[derive(Debug, Error)]
pub enum ProblemError {
    /// No such problem or item (any more).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    BadRequest(String),
    /// The database failed.
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_id_round_trips_and_bad_ones_say_what_is_expected() {
        let id: ProblemId = "dead_letter:a.myshopify.com:0123456789abcdef"
            .parse()
            .unwrap();
        assert_eq!(id.kind, Kind::DeadLetter);
        assert_eq!(
            id.to_string(),
            "dead_letter:a.myshopify.com:0123456789abcdef"
        );
        let e = "dead_letter:a.myshopify.com:xyz"
            .parse::<ProblemId>()
            .unwrap_err();
        assert!(e.to_string().contains("origin problems list"), "{e}");
        assert!("nope:a.myshopify.com:0123456789abcdef"
            .parse::<ProblemId>()
            .is_err());
    }

    #[test]
    fn a_cursor_round_trips_with_colons_in_its_key() {
        let c = Cursor {
            micros: 1_700_000_000_123_456,
            key: "dead_letter:a.myshopify.com:0123456789abcdef".into(),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!("%%%".parse::<Cursor>().is_err());
    }
}
