//! The `salesforce_outbox` table: every statement on it.
//!
//! [`enqueue`] runs inside the handler's transaction (see `handlers::apply`), so a change and
//! the promise to send it commit together. One pending row per record: a newer change of a
//! pending record only moves `changed_at`, and the sync sends the record as it is when it is
//! sent. Claims take due pending rows under a lease (`FOR UPDATE SKIP LOCKED`), like the
//! inbox's; rows whose lease expired are reclaimed.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_webhook::{Family, KnownTopic, ShopDomain};

use crate::handlers::InboxEvent;

/// The NOTIFY channel that wakes the sync when rows are enqueued.
pub const CHANNEL: &str = "salesforce_outbox";

/// What a row sends: the Salesforce object family, parents before children in [`Object::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Object {
    /// A company → Account.
    Account,
    /// A B2B customer → Contact (under its company's Account).
    Contact,
    /// A product's variants → Product2 (+ standard PricebookEntry).
    Product,
    /// An order → Order + OrderItems.
    Order,
}

impl Object {
    /// Every object, parents first: the order a batch is sent in.
    pub const ALL: [Object; 4] = [
        Object::Account,
        Object::Contact,
        Object::Product,
        Object::Order,
    ];

    /// The object a topic's change is sent as (deletes are not sent).
    fn of(topic: KnownTopic) -> Option<Object> {
        use KnownTopic as T;
        match (topic.family(), topic) {
            // A location's shipping address is on its company's Account.
            (
                _,
                T::CompaniesCreate
                | T::CompaniesUpdate
                | T::CompanyLocationsCreate
                | T::CompanyLocationsUpdate,
            ) => Some(Object::Account),
            (_, T::CustomersCreate | T::CustomersUpdate) => Some(Object::Contact),
            (_, T::ProductsCreate | T::ProductsUpdate) => Some(Object::Product),
            (Family::Order, t) if t != T::OrdersDelete => Some(Object::Order),
            _ => None,
        }
    }
}

/// The fields that key a record in a payload (the rest is skipped, not parsed).
#[derive(Deserialize)]
struct RecordKey {
    id: Option<i64>,
    admin_graphql_api_id: Option<String>,
    /// A company location's company.
    company: Option<CompanyKey>,
}

#[derive(Deserialize)]
struct CompanyKey {
    admin_graphql_api_id: Option<String>,
}

impl RecordKey {
    /// The record key of `object` in `payload`: a company's GID (a location's company's),
    /// otherwise the numeric id.
    fn of(payload: &str, object: Object) -> Option<String> {
        let key: RecordKey = serde_json::from_str(payload).ok()?;
        match (object, key.company) {
            (Object::Account, Some(company)) => company.admin_graphql_api_id,
            (Object::Account, None) => key.admin_graphql_api_id,
            _ => key.id.map(|id| id.to_string()),
        }
    }
}

/// Enqueues the record `event` changed, when its shop is connected to Salesforce and the topic
/// maps to an object (deletes are not sent). Runs in the handler's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    event: &InboxEvent,
    topic: KnownTopic,
) -> Result<(), sqlx::Error> {
    if Object::of(topic).is_none() {
        return Ok(());
    }
    // One indexed lookup decides whether anything else happens: a shop without an org pays
    // only this (no payload parse, no outbox statements).
    if !is_connected(conn, &event.shop).await? {
        return Ok(());
    }
    enqueue_connected(conn, event, topic).await
}

/// [`enqueue`] for an event whose shop is known to be connected ([`connected_shops`]).
pub(crate) async fn enqueue_connected(
    conn: &mut PgConnection,
    event: &InboxEvent,
    topic: KnownTopic,
) -> Result<(), sqlx::Error> {
    let Some(object) = Object::of(topic) else {
        return Ok(());
    };
    let Some(key) = RecordKey::of(&event.payload, object) else {
        return Ok(());
    };
    if object == Object::Order {
        // Enqueued before the order, so claimed with it or before it.
        enqueue_line_products(conn, &event.shop, &key).await?;
    }
    enqueue_record(conn, &event.shop, object, &key, Some(event.id)).await
}

/// Enqueues the catalog products of order `order`'s lines that never had an outbox row (the
/// catalog resync writes products without enqueueing them), when `shop` is connected.
pub(crate) async fn enqueue_line_products(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    order: &str,
) -> Result<(), sqlx::Error> {
    let Ok(order) = order.parse::<i64>() else {
        return Ok(());
    };
    sqlx::query!(
        "INSERT INTO salesforce_outbox (shop, object, record_key)
         SELECT DISTINCT l.shop, 'product', l.product_id::text
         FROM order_lines l
         JOIN products p ON p.shop = l.shop AND p.id = l.product_id AND p.deleted_at IS NULL
         WHERE l.shop = $1 AND l.order_id = $2
           AND NOT EXISTS (SELECT 1 FROM salesforce_outbox o
                           WHERE o.shop = l.shop AND o.object = 'product'
                             AND o.record_key = l.product_id::text)
         ON CONFLICT (shop, object, record_key) WHERE status = 'pending' DO NOTHING",
        shop.as_str(),
        order,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows by unfinished status (`pending`, `processing`, `dead`), and the seconds the oldest
/// pending change has waited, for `/metrics`.
pub async fn depth(pool: &PgPool) -> Result<(Vec<(String, i64)>, f64), sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT s AS "status!",
                  (SELECT count(*) FROM salesforce_outbox WHERE status = s) AS "rows!"
         FROM unnest(ARRAY['pending', 'processing', 'dead']) AS s"#,
    )
    .fetch_all(pool)
    .await?;
    let oldest = sqlx::query_scalar!(
        r#"SELECT coalesce(extract(epoch FROM now() - min(first_changed_at)), 0)::float8 AS "age!"
         FROM salesforce_outbox WHERE status = 'pending'"#,
    )
    .fetch_one(pool)
    .await?;
    Ok((
        rows.into_iter().map(|r| (r.status, r.rows)).collect(),
        oldest,
    ))
}

/// Enqueues `object` `key` of `shop` in the caller's transaction: a new pending row, or a
/// newer change of a pending one (only `changed_at` moves). Lag is measured from Shopify's
/// trigger time of inbox event `inbox_id` when there is one (a webhook), else from now (a
/// drift restore).
pub async fn enqueue_record(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    object: Object,
    key: &str,
    inbox_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO salesforce_outbox (shop, object, record_key, first_changed_at)
         SELECT $1, $2, $3,
                coalesce((SELECT coalesce(triggered_at, received_at) FROM inbox
                          WHERE shop = $1 AND id = $4), now())
         ON CONFLICT (shop, object, record_key) WHERE status = 'pending'
             DO UPDATE SET changed_at = now()",
        shop.as_str(),
        object as Object,
        key,
        inbox_id,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("SELECT pg_notify($1, '') AS sent", CHANNEL)
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// The Shopify record whose outbox row wrote Salesforce record `salesforce_id`, if one did.
pub async fn written_record(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    object: Object,
    salesforce_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT record_key FROM salesforce_outbox
         WHERE shop = $1 AND object = $2 AND salesforce_id = $3
         LIMIT 1",
        shop.as_str(),
        object as Object,
        salesforce_id,
    )
    .fetch_optional(conn)
    .await
}

/// What [`backfill`] enqueued.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Backfilled {
    /// Companies (Accounts).
    pub companies: u64,
    /// Customers (Contacts).
    pub customers: u64,
    /// The catalog products the orders' lines need and that never had a row.
    pub products: u64,
    /// B2B orders (Orders and OrderItems).
    pub orders: u64,
    /// The backfill's rows are the shop's backfill rows after this id ([`backfill_progress`]).
    pub after_id: i64,
}

/// How far a backfill got.
#[derive(Debug, serde::Serialize)]
pub struct BackfillProgress {
    /// Its rows.
    pub rows: i64,
    /// Sent.
    pub done: i64,
    /// Refused by Salesforce (see the dead letters).
    pub dead: i64,
}

impl BackfillProgress {
    /// Whether every row was sent or refused.
    pub fn finished(&self) -> bool {
        self.done + self.dead >= self.rows
    }
}

/// Enqueues every company, customer and B2B order of `shop` (orders created at or after
/// `since` when given; and the products their lines need) in lane `backfill`, one pending row
/// per record; records already pending are left alone. `None` when the shop is not connected.
pub async fn backfill(
    pool: &PgPool,
    shop: &ShopDomain,
    since: Option<OffsetDateTime>,
) -> Result<Option<Backfilled>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !is_connected(&mut tx, shop).await? {
        return Ok(None);
    }
    let shop = shop.as_str();
    let after_id = sqlx::query_scalar!(
        r#"SELECT coalesce(max(id), 0) AS "id!" FROM salesforce_outbox WHERE shop = $1"#,
        shop
    )
    .fetch_one(&mut *tx)
    .await?;
    // Parents first: rows are claimed in id order.
    let companies = sqlx::query!(
        "INSERT INTO salesforce_outbox (shop, object, record_key, lane)
         SELECT shop, 'account', admin_graphql_api_id, 'backfill' FROM companies
         WHERE shop = $1 AND deleted_at IS NULL ORDER BY created_at NULLS FIRST
         ON CONFLICT (shop, object, record_key) WHERE status = 'pending' DO NOTHING",
        shop
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let customers = sqlx::query!(
        "INSERT INTO salesforce_outbox (shop, object, record_key, lane)
         SELECT shop, 'contact', id::text, 'backfill' FROM customers
         WHERE shop = $1 AND deleted_at IS NULL AND redacted_at IS NULL ORDER BY id
         ON CONFLICT (shop, object, record_key) WHERE status = 'pending' DO NOTHING",
        shop
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let products = sqlx::query!(
        "INSERT INTO salesforce_outbox (shop, object, record_key, lane)
         SELECT DISTINCT l.shop, 'product', l.product_id::text, 'backfill'
         FROM orders o
         JOIN order_lines l ON l.shop = o.shop AND l.order_id = o.id
         JOIN products p ON p.shop = l.shop AND p.id = l.product_id AND p.deleted_at IS NULL
         WHERE o.shop = $1 AND o.company_id IS NOT NULL AND o.deleted_at IS NULL
           AND ($2::timestamptz IS NULL OR o.created_at >= $2)
           AND NOT EXISTS (SELECT 1 FROM salesforce_outbox x
                           WHERE x.shop = l.shop AND x.object = 'product'
                             AND x.record_key = l.product_id::text)
         ON CONFLICT (shop, object, record_key) WHERE status = 'pending' DO NOTHING",
        shop,
        since,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let orders = sqlx::query!(
        "INSERT INTO salesforce_outbox (shop, object, record_key, lane)
         SELECT shop, 'order', id::text, 'backfill' FROM orders
         WHERE shop = $1 AND company_id IS NOT NULL AND deleted_at IS NULL
           AND ($2::timestamptz IS NULL OR created_at >= $2)
         ORDER BY created_at NULLS FIRST, id
         ON CONFLICT (shop, object, record_key) WHERE status = 'pending' DO NOTHING",
        shop,
        since,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query!("SELECT pg_notify($1, '') AS sent", CHANNEL)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(Backfilled {
        companies,
        customers,
        products,
        orders,
        after_id,
    }))
}

/// Where the backfill whose rows come after row `after_id` of `shop` stands.
pub async fn backfill_progress(
    pool: &PgPool,
    shop: &ShopDomain,
    after_id: i64,
) -> Result<BackfillProgress, sqlx::Error> {
    sqlx::query_as!(
        BackfillProgress,
        r#"SELECT count(*) AS "rows!",
                  count(*) FILTER (WHERE status = 'done') AS "done!",
                  count(*) FILTER (WHERE status = 'dead') AS "dead!"
         FROM salesforce_outbox WHERE shop = $1 AND id > $2 AND lane = 'backfill'"#,
        shop.as_str(),
        after_id,
    )
    .fetch_one(pool)
    .await
}

/// Whether `shop` is connected to a Salesforce org.
pub(crate) async fn is_connected(
    conn: &mut PgConnection,
    shop: &ShopDomain,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM salesforce_orgs WHERE shop = $1) AS "connected!""#,
        shop.as_str()
    )
    .fetch_one(conn)
    .await
}

/// Which of `shops` are connected to Salesforce: one lookup for a worker batch's shops.
pub(crate) async fn connected_shops(
    conn: &mut PgConnection,
    shops: &[&str],
) -> Result<HashSet<String>, sqlx::Error> {
    let connected = sqlx::query_scalar!(
        "SELECT shop FROM salesforce_orgs WHERE shop = ANY($1)",
        shops as &[&str]
    )
    .fetch_all(conn)
    .await?;
    Ok(connected.into_iter().collect())
}

/// Connects `shop` to Salesforce: its changes are enqueued from now on.
pub async fn connect(pool: &PgPool, shop: &ShopDomain) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO salesforce_orgs (shop) VALUES ($1) ON CONFLICT (shop) DO NOTHING",
        shop.as_str()
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The shop.
    pub shop: ShopDomain,
    /// The row.
    pub id: i64,
    /// What it sends.
    pub object: Object,
    /// Shopify's id of the record.
    pub record_key: String,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// When Shopify triggered the first change it carries.
    pub first_changed_at: OffsetDateTime,
}

/// Which rows a claim takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lanes {
    /// Live and backfill rows.
    All,
    /// Live rows only (the API budget reached its reserve: backfill rows wait).
    LiveOnly,
    /// Backfill rows only (a backlog sent through Bulk API 2.0).
    BackfillOnly,
}

/// Claims up to `batch` due pending rows of `shop` in `lanes` for `worker` (oldest first),
/// under a lease.
pub async fn claim(
    pool: &PgPool,
    shop: &ShopDomain,
    worker: &str,
    batch: i64,
    lease: Duration,
    lanes: Lanes,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        r#"UPDATE salesforce_outbox o
         SET status = 'processing', locked_by = $2,
             locked_until = now() + $3::float8 * interval '1 millisecond',
             attempts = o.attempts + 1
         FROM (SELECT shop, id FROM salesforce_outbox
               WHERE shop = $1 AND status = 'pending' AND run_at <= now()
                 AND ($5 OR lane = 'live') AND ($6 OR lane = 'backfill')
               ORDER BY run_at, id LIMIT $4
               FOR UPDATE SKIP LOCKED) due
         WHERE o.shop = due.shop AND o.id = due.id
         RETURNING o.shop AS "shop: ShopDomain", o.id, o.object AS "object: Object",
                   o.record_key, o.attempts, o.first_changed_at"#,
        shop.as_str(),
        worker,
        lease.as_millis() as f64,
        batch,
        lanes != Lanes::LiveOnly,
        lanes != Lanes::BackfillOnly,
    )
    .fetch_all(pool)
    .await
}

/// How many backfill rows of `shop` are due, counted up to `limit` (enough to decide
/// whether the backlog takes Bulk API 2.0 without counting a million rows).
pub async fn backfill_backlog(
    pool: &PgPool,
    shop: &ShopDomain,
    limit: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM (
             SELECT 1 FROM salesforce_outbox
             WHERE shop = $1 AND status = 'pending' AND run_at <= now() AND lane = 'backfill'
             LIMIT $2) due"#,
        shop.as_str(),
        limit,
    )
    .fetch_one(pool)
    .await
}

/// The shops with due pending rows.
pub async fn due_shops(pool: &PgPool) -> Result<Vec<ShopDomain>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT DISTINCT shop AS "shop!: ShopDomain" FROM salesforce_outbox
         WHERE status = 'pending' AND run_at <= now()"#
    )
    .fetch_all(pool)
    .await
}

/// The lags of an outbox row marked done, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct DoneLag {
    /// Shopify's first change it carries → now.
    pub lag: f64,
    /// Enqueued (the change applied) → now, for a live row.
    pub since_applied: Option<f64>,
}

/// Marks rows `(id, Salesforce id written)` of `shop` done, those `worker` still holds, in
/// one statement. Returns each one's lags.
pub async fn mark_done(
    pool: &PgPool,
    shop: &ShopDomain,
    worker: &str,
    done: &[(i64, String)],
) -> Result<Vec<DoneLag>, sqlx::Error> {
    let (ids, written): (Vec<i64>, Vec<String>) = done.iter().cloned().unzip();
    sqlx::query_as!(
        DoneLag,
        r#"UPDATE salesforce_outbox o
         SET status = 'done', done_at = now(), salesforce_id = d.written, locked_by = NULL,
             locked_until = NULL, last_error = NULL
         FROM unnest($3::bigint[], $4::text[]) AS d(id, written)
         WHERE o.shop = $1 AND o.id = d.id AND o.locked_by = $2 AND o.status = 'processing'
         RETURNING extract(epoch FROM now() - o.first_changed_at)::float8 AS "lag!",
                   CASE WHEN o.lane = 'live' THEN
                       extract(epoch FROM now() - o.enqueued_at)::float8
                   END AS since_applied"#,
        shop.as_str(),
        worker,
        &ids,
        &written,
    )
    .fetch_all(pool)
    .await
}

/// Records a failed attempt on `row`: back to pending after `retry_after`, or dead (with
/// Salesforce's message) when permanent (`retry_after` is `None`) or out of `max_attempts`.
/// A claim that sent nothing (`attempted` false) gives its attempt back and never makes a row
/// dead. Returns whether it is dead.
pub async fn record_failure(
    pool: &PgPool,
    row: &Claimed,
    worker: &str,
    error: &str,
    retry_after: Option<Duration>,
    attempted: bool,
    max_attempts: i32,
) -> Result<bool, sqlx::Error> {
    let dead = sqlx::query_scalar!(
        r#"UPDATE salesforce_outbox SET
             status = CASE WHEN $5::float8 IS NULL OR ($7 AND attempts >= $6) THEN 'dead'
                           ELSE 'pending' END,
             run_at = CASE WHEN $5::float8 IS NULL OR ($7 AND attempts >= $6) THEN run_at
                           ELSE now() + $5::float8 * interval '1 millisecond' END,
             attempts = CASE WHEN $7 THEN attempts ELSE attempts - 1 END,
             last_error = $4, locked_by = NULL, locked_until = NULL
         WHERE shop = $1 AND id = $2 AND locked_by = $3 AND status = 'processing'
         RETURNING status = 'dead' AS "dead!""#,
        row.shop.as_str(),
        row.id,
        worker,
        error,
        retry_after.map(|d| d.as_millis() as f64),
        max_attempts,
        attempted,
    )
    .fetch_optional(pool)
    .await?;
    Ok(dead.unwrap_or(false))
}

/// Returns expired leases to pending (a crashed sync). Returns how many.
pub async fn reclaim_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE salesforce_outbox SET status = 'pending', locked_by = NULL, locked_until = NULL,
                                      run_at = now()
         WHERE (shop, id) IN (SELECT shop, id FROM salesforce_outbox
                              WHERE status = 'processing' AND locked_until < now()
                              FOR UPDATE SKIP LOCKED)"
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Gives back what `worker` holds (graceful shutdown). Returns how many rows.
pub async fn release(pool: &PgPool, worker: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE salesforce_outbox SET status = 'pending', locked_by = NULL, locked_until = NULL,
                                      attempts = greatest(attempts - 1, 0), run_at = now()
         WHERE (shop, id) IN (SELECT shop, id FROM salesforce_outbox
                              WHERE locked_by = $1 AND status = 'processing'
                              FOR UPDATE SKIP LOCKED)",
        worker
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Outbox rows by object and status, the oldest pending row's age and the match decisions, of
/// `shop` or of every shop (`origin salesforce status`).
pub async fn status(pool: &PgPool, shop: Option<&ShopDomain>) -> Result<Value, sqlx::Error> {
    let shop = shop.map(ShopDomain::as_str);
    let rows = sqlx::query!(
        r#"SELECT object, status, count(*) AS "rows!",
                  extract(epoch FROM now() - min(first_changed_at)
                          FILTER (WHERE status = 'pending'))::float8 AS oldest_pending_secs
         FROM salesforce_outbox WHERE ($1::text IS NULL OR shop = $1)
         GROUP BY object, status ORDER BY object, status"#,
        shop,
    )
    .fetch_all(pool)
    .await?;
    let decisions = sqlx::query!(
        r#"SELECT decision, count(*) AS "rows!" FROM salesforce_links
         WHERE ($1::text IS NULL OR shop = $1) GROUP BY decision ORDER BY decision"#,
        shop,
    )
    .fetch_all(pool)
    .await?;
    let inbound = sqlx::query!(
        r#"SELECT
             (SELECT max(committed_at) FROM salesforce_replay
              WHERE $1::text IS NULL OR shop = $1) AS last_change,
             (SELECT count(*) FROM salesforce_quotes
              WHERE ($1::text IS NULL OR shop = $1) AND written_at IS NULL) AS "quotes_unwritten!",
             (SELECT string_agg(quote_id || ': ' || last_error, '; ') FROM salesforce_quotes
              WHERE ($1::text IS NULL OR shop = $1) AND written_at IS NULL
                AND last_error IS NOT NULL) AS quote_errors,
             (SELECT count(*) FROM salesforce_quotes
              WHERE ($1::text IS NULL OR shop = $1) AND written_at IS NOT NULL) AS "quotes_written!",
             (SELECT count(*) FROM salesforce_drift
              WHERE ($1::text IS NULL OR shop = $1)) AS "drift!",
             (SELECT count(*) FROM salesforce_catchups
              WHERE ($1::text IS NULL OR shop = $1)) AS "catchups!""#,
        shop,
    )
    .fetch_one(pool)
    .await?;
    Ok(json!({
        "outbox": rows.iter().map(|r| json!({"object": r.object, "status": r.status,
            "rows": r.rows, "oldest_pending_secs": r.oldest_pending_secs})).collect::<Vec<_>>(),
        "matches": decisions.iter().map(|d| (d.decision.clone(), json!(d.rows)))
            .collect::<serde_json::Map<_, _>>(),
        "inbound": {
            "last_change_applied": inbound.last_change.and_then(|t| t.format(&Rfc3339).ok()),
            "quotes_written": inbound.quotes_written,
            "quotes_unwritten": inbound.quotes_unwritten,
            "quote_errors": inbound.quote_errors,
            "drift_reports": inbound.drift,
            "catch_ups": inbound.catchups,
        },
    }))
}

/// Companies waiting for review, oldest first, with their candidates.
pub async fn reviews(pool: &PgPool, shop: Option<&ShopDomain>) -> Result<Vec<Value>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT l.shop, l.company, l.candidates, l.decided_at, c.name
         FROM salesforce_links l
         LEFT JOIN companies c ON c.shop = l.shop AND c.admin_graphql_api_id = l.company
         WHERE l.decision = 'review' AND ($1::text IS NULL OR l.shop = $1)
         ORDER BY l.decided_at",
        shop.map(ShopDomain::as_str),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            json!({"shop": r.shop, "company": r.company, "name": r.name,
                   "since": r.decided_at.to_string(), "candidates": r.candidates})
        })
        .collect())
}

/// Records an operator's decision on a company in review: link to `account`, or create a new
/// Account (`None`). `false` when the company is not in review.
pub async fn decide_review(
    pool: &PgPool,
    shop: &ShopDomain,
    company: &str,
    account: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let decided = sqlx::query!(
        "UPDATE salesforce_links
         SET decision = CASE WHEN $3::text IS NULL THEN 'created' ELSE 'linked' END,
             account_id = $3, account_written = $3::text IS NULL,
             decided_at = now(), decided_by = 'cli'
         WHERE shop = $1 AND company = $2 AND decision = 'review'",
        shop.as_str(),
        company,
        account,
    )
    .execute(pool)
    .await?;
    Ok(decided.rows_affected() > 0)
}

/// Dead rows with the reason, newest first (at most 500).
pub async fn dead(pool: &PgPool, shop: Option<&ShopDomain>) -> Result<Vec<Value>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT shop, id, object AS "object: Object", record_key, attempts, last_error,
                  changed_at
         FROM salesforce_outbox
         WHERE status = 'dead' AND ($1::text IS NULL OR shop = $1)
         ORDER BY changed_at DESC LIMIT 500"#,
        shop.map(ShopDomain::as_str),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            json!({"shop": r.shop, "id": r.id, "object": format!("{:?}", r.object),
                   "record": r.record_key, "attempts": r.attempts, "error": r.last_error,
                   "changed_at": r.changed_at.to_string()})
        })
        .collect())
}

/// How many dead rows there are (of `shop`, when given).
pub async fn dead_count(pool: &PgPool, shop: Option<&ShopDomain>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM salesforce_outbox
           WHERE status = 'dead' AND ($1::text IS NULL OR shop = $1)"#,
        shop.map(ShopDomain::as_str),
    )
    .fetch_one(pool)
    .await
}

/// Puts dead rows back to pending (of `shop`, of one `record` key, of the row `ids`: each
/// filter only when given), unless the record already has a pending row; wakes the sync.
/// Returns how many.
pub async fn replay_dead(
    pool: &PgPool,
    shop: Option<&ShopDomain>,
    record: Option<&str>,
    ids: Option<&[i64]>,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let replayed = sqlx::query!(
        "UPDATE salesforce_outbox o
         SET status = 'pending', attempts = 0, run_at = now(), last_error = NULL
         WHERE o.status = 'dead' AND ($1::text IS NULL OR o.shop = $1)
           AND ($2::text IS NULL OR o.record_key = $2)
           AND ($3::bigint[] IS NULL OR o.id = ANY($3))
           AND NOT EXISTS (SELECT 1 FROM salesforce_outbox p
                           WHERE p.shop = o.shop AND p.object = o.object
                             AND p.record_key = o.record_key AND p.status = 'pending')",
        shop.map(ShopDomain::as_str),
        record,
        ids,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query!("SELECT pg_notify($1, '') AS sent", CHANNEL)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(replayed)
}
