//! Every read of the problems: the grouped listing, one problem, its items, the open counts.
//! Listings page by keyset (`last_seen` or `seen_at` descending, then the key), never by
//! offset, so a page costs the same wherever it is.

use sqlx::PgPool;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use super::{Cursor, Dismissal, Filter, Item, Kind, Page, Problem, ProblemError, ProblemId};

struct Row {
    id: String,
    kind: String,
    shop: String,
    reason: String,
    count: i64,
    first_seen: OffsetDateTime,
    last_seen: OffsetDateTime,
    sample: Vec<String>,
    dismissed_reason: Option<String>,
    dismissed_at: Option<OffsetDateTime>,
    dismissed_by: Option<String>,
    total: i64,
}

impl Row {
    fn into_problem(self) -> Result<Problem, ProblemError> {
        let id: ProblemId = self.id.parse()?;
        let kind: Kind = self.kind.parse()?;
        let dismissal = match (self.dismissed_reason, self.dismissed_at, self.dismissed_by) {
            (Some(reason), Some(at), Some(by)) => Some(Dismissal { reason, at, by }),
            _ => None,
        };
        Ok(Problem {
            id,
            kind,
            shop: self.shop,
            reason: self.reason,
            count: self.count,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            sample: self.sample,
            actions: kind.actions().to_vec(),
            dismissed: dismissal.as_ref().is_some_and(|d| d.at >= self.last_seen),
            dismissal,
        })
    }
}

/// The grouped problems: `filter`ed, of one problem when `only` is given, after `cursor`.
async fn select(
    pool: &PgPool,
    filter: &Filter,
    only: Option<&ProblemId>,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<Row>, sqlx::Error> {
    let kind = only.map(|p| p.kind).or(filter.kind).map(Kind::as_str);
    let shop = only.map(|p| &p.shop).or(filter.shop.as_ref());
    // Grouped by the reason itself (the hash only names the group), sorted in the C
    // collation so the keyset comparison and the order agree on every database.
    sqlx::query_as!(
        Row,
        r#"WITH grouped AS (
             SELECT kind, shop, reason, count(*) AS count, min(seen_at) AS first_seen,
                    max(seen_at) AS last_seen, (array_agg(record))[1:5] AS sample
             FROM problem_items
             WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR shop = $2)
             GROUP BY kind, shop, reason
           ), named AS (
             SELECT g.*, (g.kind || ':' || g.shop || ':' || left(md5(g.reason), 16))
                            COLLATE "C" AS id
             FROM grouped g
           ), shown AS (
             SELECT n.*, d.reason AS dismissed_reason, d.dismissed_at, d.actor AS dismissed_by,
                    count(*) OVER () AS total
             FROM named n
             LEFT JOIN problem_dismissals d
               ON d.shop = n.shop AND d.kind = n.kind AND d.reason_hash = right(n.id, 16)
             WHERE ($3::text IS NULL OR n.id = $3)
               AND ($4 OR d.dismissed_at IS NULL OR d.dismissed_at < n.last_seen)
           )
           SELECT id AS "id!", kind AS "kind!", shop AS "shop!", reason AS "reason!",
                  count AS "count!", first_seen AS "first_seen!", last_seen AS "last_seen!",
                  sample AS "sample!", dismissed_reason AS "dismissed_reason?",
                  dismissed_at AS "dismissed_at?", dismissed_by AS "dismissed_by?",
                  total AS "total!"
           FROM shown
           WHERE $5::timestamptz IS NULL OR (last_seen, id) < ($5, $6::text COLLATE "C")
           ORDER BY last_seen DESC, id DESC
           LIMIT $7"#,
        kind,
        shop.map(ShopDomain::as_str),
        only.map(ToString::to_string),
        filter.include_dismissed || only.is_some(),
        cursor.map(Cursor::at),
        cursor.map(|c| c.key.as_str()),
        limit,
    )
    .fetch_all(pool)
    .await
}

/// One page of problems, the most recently seen first: at most `limit` (1 to
/// [`super::MAX_PAGE`]) after `cursor` (the previous page's `next`).
pub async fn list(
    pool: &PgPool,
    filter: &Filter,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Page<Problem>, ProblemError> {
    let limit = limit.clamp(1, super::MAX_PAGE);
    let rows = select(pool, filter, None, cursor, limit).await?;
    let total = rows.first().map_or(0, |r| r.total);
    let problems = rows
        .into_iter()
        .map(Row::into_problem)
        .collect::<Result<Vec<_>, _>>()?;
    let next = (problems.len() as i64 == limit)
        .then(|| problems.last())
        .flatten()
        .map(|p| Cursor::after(p.last_seen, &p.id.to_string()).to_string());
    Ok(Page {
        rows: problems,
        total,
        next,
    })
}

/// One problem, dismissed or not; [`ProblemError::NotFound`] when none of its items is left.
pub async fn problem(pool: &PgPool, id: &ProblemId) -> Result<Problem, ProblemError> {
    let row = select(pool, &Filter::default(), Some(id), None, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ProblemError::NotFound(format!(
                "no problem {id} (resolved, or never seen); `origin problems list` shows them"
            ))
        })?;
    row.into_problem()
}

/// One page of a problem's items, the most recently seen first.
pub async fn items(
    pool: &PgPool,
    id: &ProblemId,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Page<Item>, ProblemError> {
    let limit = limit.clamp(1, super::MAX_PAGE);
    let rows = sqlx::query!(
        r#"SELECT item AS "item!", record AS "record!", seen_at AS "seen_at!",
                  count(*) OVER () AS "total!"
           FROM problem_items
           WHERE kind = $1 AND shop = $2 AND left(md5(reason), 16) = $3
             AND ($4::timestamptz IS NULL
                  OR (seen_at, item COLLATE "C") < ($4, $5::text COLLATE "C"))
           ORDER BY seen_at DESC, item COLLATE "C" DESC
           LIMIT $6"#,
        id.kind.as_str(),
        id.shop.as_str(),
        id.reason_hash,
        cursor.map(Cursor::at),
        cursor.map(|c| c.key.as_str()),
        limit,
    )
    .fetch_all(pool)
    .await?;
    // The window counts the rows after the cursor; the total of every page is the problem's.
    let total = match cursor {
        None => rows.first().map_or(0, |r| r.total),
        Some(_) => problem(pool, id).await.map_or(0, |p| p.count),
    };
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|r| Cursor::after(r.seen_at, &r.item).to_string());
    let rows = rows
        .into_iter()
        .map(|r| Item {
            item: r.item,
            record: r.record,
            seen_at: r.seen_at,
        })
        .collect();
    Ok(Page { rows, total, next })
}

/// The ids of every item of a problem (what an action on the whole problem addresses).
pub(super) async fn item_keys(pool: &PgPool, id: &ProblemId) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT item AS "item!" FROM problem_items
           WHERE kind = $1 AND shop = $2 AND left(md5(reason), 16) = $3
           ORDER BY item"#,
        id.kind.as_str(),
        id.shop.as_str(),
        id.reason_hash,
    )
    .fetch_all(pool)
    .await
}

/// Open items per kind (items of dismissed problems not seen since excluded), every kind
/// present. Cheap: the totals are index-only counts over the partial indexes of the failed
/// rows; the dismissed items are counted per dismissal only.
pub async fn open_counts(pool: &PgPool) -> Result<Vec<(Kind, i64)>, sqlx::Error> {
    let inbox = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE status = 'dead') AS "dead!",
                  count(*) FILTER (WHERE status = 'quarantined') AS "quarantined!"
           FROM inbox WHERE status IN ('dead', 'quarantined')"#
    )
    .fetch_one(pool)
    .await?;
    Ok(open_counts_beside_inbox(pool)
        .await?
        .with_inbox(inbox.dead, inbox.quarantined))
}

/// [`open_counts`] but for the inbox's dead and quarantined rows, for a caller that counts
/// those itself (`/metrics`, with the inbox depth, at the same time): one index pass over the
/// inbox's failed rows per scrape instead of two.
pub async fn open_counts_beside_inbox(pool: &PgPool) -> Result<OpenCounts, sqlx::Error> {
    let totals = sqlx::query!(
        r#"SELECT kind AS "kind!", count(*) AS "items!" FROM problem_items
           WHERE kind NOT IN ('dead_letter', 'quarantined') GROUP BY kind"#
    )
    .fetch_all(pool)
    .await?;
    let hidden = sqlx::query!(
        r#"SELECT d.kind AS "kind!", sum(x.items)::bigint AS "items!"
           FROM problem_dismissals d
           CROSS JOIN LATERAL (
             SELECT count(*) AS items, max(seen_at) AS last_seen FROM problem_items i
             WHERE i.kind = d.kind AND i.shop = d.shop
               AND left(md5(i.reason), 16) = d.reason_hash) x
           WHERE x.last_seen <= d.dismissed_at
           GROUP BY d.kind"#
    )
    .fetch_all(pool)
    .await?;
    Ok(OpenCounts {
        totals: totals.into_iter().map(|r| (r.kind, r.items)).collect(),
        hidden: hidden.into_iter().map(|r| (r.kind, r.items)).collect(),
    })
}

/// Item counts of every kind but the inbox's two ([`open_counts_beside_inbox`]).
#[derive(Debug)]
pub struct OpenCounts {
    totals: Vec<(String, i64)>,
    hidden: Vec<(String, i64)>,
}

impl OpenCounts {
    /// Every kind's open items, given the inbox's `dead` and `quarantined` row counts.
    pub fn with_inbox(mut self, dead: i64, quarantined: i64) -> Vec<(Kind, i64)> {
        self.totals
            .push((Kind::DeadLetter.as_str().to_owned(), dead));
        self.totals
            .push((Kind::Quarantined.as_str().to_owned(), quarantined));
        let sum = |rows: &[(String, i64)], kind: Kind| -> i64 {
            rows.iter()
                .filter(|(k, _)| k == kind.as_str())
                .map(|(_, n)| n)
                .sum()
        };
        Kind::ALL
            .into_iter()
            .map(|kind| {
                let open = sum(&self.totals, kind) - sum(&self.hidden, kind);
                (kind, open.max(0))
            })
            .collect()
    }
}
