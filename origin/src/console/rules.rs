//! `GET /console/rules`: the rules push per buyer (company location): how many metafields of
//! it origin has pushed and when last, the buyers whose rules do not fit the Function
//! (`rules_push_errors`), and the buyers waiting for the debounced push (`rules_dirty`).
//! Buyers are keyset-paged by (shop, company location): `?shop=&after=`.

use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::session::Session;
use super::{layout, Console, ConsoleError};

/// Buyers per page.
pub const PAGE_ROWS: i64 = 50;

/// A buyer's push status.
#[derive(Debug)]
pub struct BuyerPush {
    /// Shop.
    pub shop: String,
    /// The company location's GID.
    pub owner_id: String,
    /// Metafields pushed.
    pub keys: i64,
    /// Last push.
    pub last_pushed: OffsetDateTime,
    /// Why its rules cannot be pushed now, if they cannot.
    pub error: Option<String>,
}

/// The buyers after `(shop, owner)` (none: from the start), at most `limit`, by shop and GID:
/// a range of `rules_pushed`'s primary key (the first page's bound is `('', '')`).
pub async fn page_of(
    pool: &PgPool,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<BuyerPush>, sqlx::Error> {
    let (shop, owner) = after.unzip();
    sqlx::query_as!(
        BuyerPush,
        r#"SELECT p.shop, p.owner_id, count(*) AS "keys!", max(p.pushed_at) AS "last_pushed!",
                  min(e.error) AS error
           FROM rules_pushed p
           LEFT JOIN rules_push_errors e ON e.shop = p.shop AND e.company_location = p.owner_id
           WHERE (p.shop, p.owner_id) > (coalesce($1::text, ''), coalesce($2::text, ''))
           GROUP BY p.shop, p.owner_id ORDER BY p.shop, p.owner_id LIMIT $3"#,
        shop,
        owner,
        limit
    )
    .fetch_all(pool)
    .await
}

/// `?shop=&after=`: the last buyer of the previous page.
#[derive(Debug, Deserialize, Serialize)]
pub struct PageQuery {
    shop: Option<String>,
    after: Option<String>,
}

/// `GET /console/rules`.
pub async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<PageQuery>,
) -> Result<Markup, ConsoleError> {
    let after = q.shop.as_deref().zip(q.after.as_deref());
    let mut rows = page_of(&console.pool, after, PAGE_ROWS + 1).await?;
    let next = (rows.len() as i64 > PAGE_ROWS).then(|| {
        rows.truncate(PAGE_ROWS as usize);
        let last = rows.last().expect("a full page");
        serde_urlencoded::to_string(PageQuery {
            shop: Some(last.shop.clone()),
            after: Some(last.owner_id.clone()),
        })
        .unwrap_or_default()
    });
    let errors = sqlx::query!(
        "SELECT shop, company_location, error, recorded_at FROM rules_push_errors
         ORDER BY recorded_at DESC LIMIT 100"
    )
    .fetch_all(&console.pool)
    .await?;
    let waiting = sqlx::query!(
        r#"SELECT shop, count(DISTINCT company_location) AS "buyers!", min(marked_at) AS since
           FROM rules_dirty GROUP BY shop ORDER BY shop"#
    )
    .fetch_all(&console.pool)
    .await?;
    let content = html! {
        h2 { "Buyers whose rules cannot be pushed" }
        @if errors.is_empty() { p.ok { "None: every buyer's rules fit the Function." } }
        @else {
            table {
                tr { th { "shop" } th { "company location" } th { "why" } th { "since" } }
                @for e in &errors {
                    tr { td { code { (e.shop) } } td { code { (e.company_location) } }
                         td.bad { (e.error) } td { (layout::at(e.recorded_at)) } }
                }
            }
        }
        h2 { "Waiting for the next push" }
        @if waiting.is_empty() { p.muted { "No buyer is marked for a push." } }
        @else {
            table {
                tr { th { "shop" } th.num { "buyers" } th { "oldest mark" } }
                @for w in &waiting {
                    tr { td { code { (w.shop) } } td.num { (w.buyers) } td { (layout::at_opt(w.since)) } }
                }
            }
        }
        h2 { "Pushed, per buyer" }
        table {
            tr { th { "shop" } th { "company location" } th.num { "metafields" } th { "last push" } th { "state" } }
            @for r in &rows {
                tr {
                    td { code { (r.shop) } }
                    td { code { (r.owner_id) } }
                    td.num { (r.keys) }
                    td { (layout::at(r.last_pushed)) }
                    td { @if let Some(e) = &r.error { span.badge.bad title=(e) { "too large" } }
                         @else { span.badge.ok { "pushed" } } }
                }
            }
        }
        @if rows.is_empty() { p.muted { "Nothing pushed yet." } }
        (layout::pager("/console/rules", next, after.is_none()))
    };
    Ok(layout::page(
        &session,
        "/console/rules",
        "Rules push per buyer",
        None,
        content,
    ))
}
