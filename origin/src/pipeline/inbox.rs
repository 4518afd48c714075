//! The inbox table: deduplicated intake, claims with leases, completion and retry scheduling.
//!
//! Every statement that moves a row between states lives here, so the state machine is in one
//! place:
//!
//! ```text
//! intake ─▶ pending ─claim─▶ processing ─apply ok─▶ done
//!   │          ▲                 │ transient error: attempts < max → pending (run_at = backoff)
//!   │          │                 │ attempts ≥ max, or permanent error → dead
//!   │          └── lease expiry, shutdown release, operator replay (from dead)
//!   └─▶ quarantined (payload not JSON)        └─▶ dead (from the edge's dead-letter queue)
//! ```

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use time::OffsetDateTime;

use wholesail_webhook::delete_shape::is_delete_topic;
use wholesail_webhook::ShopDomain;

use crate::handlers::InboxEvent;
use crate::pipeline::body_guard;

/// The NOTIFY channel intake signals after inserting due rows.
pub const CHANNEL: &str = "wholesail_inbox";

/// An inbox row's status (the `inbox.status` text column and its CHECK constraint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum InboxStatus {
    /// Waiting for a worker (due at `run_at`).
    Pending,
    /// Claimed under a lease.
    Processing,
    /// Applied (or found stale or ignored).
    Done,
    /// Failed for good, or came from the edge's dead-letter queue: replayable.
    Dead,
    /// Could not be stored as JSON: kept raw with the reason, replayable after a fix.
    Quarantined,
}

/// Where an event entered origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `POST /internal/webhooks` from the edge.
    Edge,
    /// `POST /webhooks/shopify`, direct mode.
    Direct,
    /// `POST /internal/dead-letters`: the edge gave up delivering it.
    EdgeDeadLetter,
    /// A reconciliation run found the change missing here ([`crate::reconcile`]).
    Reconcile,
}

impl Source {
    /// The `source` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Edge => "edge",
            Source::Direct => "direct",
            Source::EdgeDeadLetter => "edge_dlq",
            Source::Reconcile => "reconcile",
        }
    }
}

/// The body of a new inbox row.
#[derive(Debug)]
pub enum Body {
    /// A (stripped) JSON document, as text.
    Json(String),
    /// A body that is not JSON, kept whole and quarantined with the reason.
    Malformed {
        /// The body's bytes.
        bytes: Vec<u8>,
        /// Why it is not usable.
        reason: String,
    },
}

/// One event to insert.
#[derive(Debug)]
pub struct NewEvent {
    /// Shopify's per-delivery id (the dedup key).
    pub webhook_id: String,
    /// Shopify's per-action id.
    pub event_id: Option<String>,
    /// Shop domain.
    pub shop: ShopDomain,
    /// Topic.
    pub topic: String,
    /// Admin API version of the payload.
    pub api_version: String,
    /// When Shopify triggered it, when the header parsed.
    pub triggered_at: Option<OffsetDateTime>,
    /// When the edge (or origin, in direct mode) received it.
    pub received_at: OffsetDateTime,
    /// How the payload was reduced (`allowlist`, `unknown_topic`).
    pub stripping: String,
    /// Size of the body Shopify sent.
    pub original_bytes: i64,
    /// SHA-256 of the body Shopify sent (see [`crate::pipeline::body_guard`] for what is hashed).
    pub body_sha256: [u8; 32],
    /// The payload.
    pub body: Body,
}

/// Where an inserted event ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// New row, due for processing.
    Pending,
    /// New row, quarantined (payload not JSON).
    Quarantined,
    /// New row, stored as a dead letter (from the edge's DLQ).
    Dead,
    /// A row with this webhook id already exists; nothing written.
    Duplicate,
}

/// The reason stored on rows that arrive through the edge's dead-letter queue.
pub const EDGE_DLQ_REASON: &str =
    "received from the edge dead-letter queue: origin did not accept it within the edge's retries";

/// Inserts `events` with one statement, deduplicated on the webhook id. Returns one
/// [`Stored`] per event, in order (the second of two events with the same id in one call is a
/// duplicate). The caller wakes the workers when one was stored [`Stored::Pending`]
/// ([`super::wake::Wake`], or [`notify`]).
///
/// A body replayed for another shop or as a delete ([`crate::pipeline::body_guard`]) is stored
/// quarantined with the reason. When PostgreSQL refuses the statement for a value it cannot
/// store (a payload `jsonb` rejects: a lone surrogate escape, a number beyond `numeric`,
/// nesting beyond its stack), the rows are inserted one by one in one transaction and the
/// refused ones are stored quarantined with PostgreSQL's reason, so their batch-mates are
/// still stored.
pub async fn insert(
    pool: &PgPool,
    source: Source,
    events: &[NewEvent],
) -> Result<Vec<Stored>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.acquire().await?;
    let mut rows: Vec<Row<'_>> = events.iter().map(|e| Row::new(e, source)).collect();
    let inserted = match insert_in_rounds(&mut conn, source, &rows).await {
        Ok(inserted) => inserted,
        Err(e) if refused_value(&e).is_some() => {
            // One by one, in order: each statement sees the rows before it (the body guard).
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let mut inserted = Vec::with_capacity(rows.len());
            for row in rows.iter_mut() {
                match insert_in_savepoint(&mut tx, source, &*row).await? {
                    Ok(new) => inserted.extend(new),
                    Err(reason) => {
                        row.quarantine_refused(reason);
                        inserted.extend(insert_rows(&mut tx, source, &[&*row]).await?);
                    }
                }
            }
            tx.commit().await?;
            inserted
        }
        Err(e) => return Err(e),
    };

    let mut fresh: HashMap<&str, InboxStatus> = inserted
        .iter()
        .map(|(id, status)| (id.as_str(), *status))
        .collect();
    Ok(rows
        .iter()
        .map(|row| match fresh.remove(row.event.webhook_id.as_str()) {
            None => Stored::Duplicate,
            Some(InboxStatus::Pending) => Stored::Pending,
            Some(InboxStatus::Dead) => Stored::Dead,
            Some(_) => Stored::Quarantined,
        })
        .collect())
}

/// Inserts `rows` in the rounds of [`body_guard::rounds`]: one autocommit statement in the
/// common case (no two rows share a body digest), else one statement per round in one
/// transaction, so that each round's guard sees the rows of the rounds before it.
async fn insert_in_rounds(
    conn: &mut PgConnection,
    source: Source,
    rows: &[Row<'_>],
) -> Result<Vec<(String, InboxStatus)>, sqlx::Error> {
    let rounds = body_guard::rounds(rows.iter().map(|r| &r.event.body_sha256));
    if let [round] = rounds.as_slice() {
        let round: Vec<&Row<'_>> = round.iter().map(|&i| &rows[i]).collect();
        return insert_rows(conn, source, &round).await;
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut inserted = Vec::with_capacity(rows.len());
    for round in rounds {
        let round: Vec<&Row<'_>> = round.iter().map(|&i| &rows[i]).collect();
        inserted.extend(insert_rows(&mut tx, source, &round).await?);
    }
    tx.commit().await?;
    Ok(inserted)
}

/// PostgreSQL's reason when it refused a value it cannot store (a data exception or a
/// program limit such as the stack depth).
fn refused_value(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(e)
            if e.code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("54")) =>
        {
            Some(e.message().to_owned())
        }
        _ => None,
    }
}

/// One row to insert: the event and how it is stored, unless the statement's body guard
/// finds it a replay ([`body_guard`]) and stores it quarantined instead.
struct Row<'a> {
    event: &'a NewEvent,
    payload: Option<&'a str>,
    raw: Option<std::borrow::Cow<'a, [u8]>>,
    status: InboxStatus,
    error: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> Row<'a> {
    fn new(event: &'a NewEvent, source: Source) -> Self {
        match (&event.body, source) {
            (Body::Json(json), Source::EdgeDeadLetter) => Row {
                event,
                payload: Some(json),
                raw: None,
                status: InboxStatus::Dead,
                error: Some(EDGE_DLQ_REASON.into()),
            },
            (Body::Json(json), _) => Row {
                event,
                payload: Some(json),
                raw: None,
                status: InboxStatus::Pending,
                error: None,
            },
            (Body::Malformed { bytes, reason }, _) => Row {
                event,
                payload: None,
                raw: Some(bytes.as_slice().into()),
                status: InboxStatus::Quarantined,
                error: Some(reason.as_str().into()),
            },
        }
    }

    /// Turns a row PostgreSQL refused into a quarantined one carrying the refusal.
    fn quarantine_refused(&mut self, reason: String) {
        if let Some(json) = self.payload.take() {
            self.raw = Some(json.as_bytes().into());
        }
        self.status = InboxStatus::Quarantined;
        self.error = Some(format!("PostgreSQL cannot store this payload: {reason}").into());
    }
}

/// [`insert_rows`] of one row in a savepoint: `Ok(Err(reason))` when PostgreSQL refused a
/// value ([`refused_value`]), rolled back to the savepoint.
async fn insert_in_savepoint(
    tx: &mut Transaction<'_, Postgres>,
    source: Source,
    row: &Row<'_>,
) -> Result<Result<Vec<(String, InboxStatus)>, String>, sqlx::Error> {
    let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
    match insert_rows(&mut savepoint, source, &[row]).await {
        Ok(new) => {
            savepoint.commit().await?;
            Ok(Ok(new))
        }
        Err(e) => match refused_value(&e) {
            Some(reason) => {
                savepoint.rollback().await?;
                Ok(Err(reason))
            }
            None => Err(e),
        },
    }
}

/// The inbox insert of [`insert_rows`] on `$conn` around `$rows`, the `FROM` item that names
/// the rows `u(w, e, s, t, v, tr, r, st, b, p, raw, status, err, h, del)` from parameters
/// `$1`–`$13`, `$15` and `$16` (`$14` is the source): one statement text for both the one-row
/// and the many-row form. Evaluates to the new rows' webhook ids and statuses (`?` on error).
macro_rules! insert_inbox {
    ($conn:expr, $rows:literal, $($arg:expr),+ $(,)?) => {
        sqlx::query!(
            r#"INSERT INTO inbox (webhook_id, event_id, shop, topic, api_version, triggered_at,
                                    received_at, stripping, original_bytes, payload, raw_body,
                                    status, last_error, source, body_sha256)
                 SELECT w, e, s, t, v, tr, r, st, b,
                        CASE WHEN replay.reason IS NULL THEN p::jsonb END,
                        CASE WHEN replay.reason IS NULL THEN raw ELSE convert_to(p, 'UTF8') END,
                        CASE WHEN replay.reason IS NULL THEN status ELSE 'quarantined' END,
                        COALESCE(replay.reason, err), $14, h
                 FROM "# + $rows + r#"
                 -- The body guard: an accepted row with this body that makes this one a
                 -- replay, another shop's first. Only JSON bodies are judged; a redelivery is
                 -- not one.
                 LEFT JOIN LATERAL (
                     SELECT CASE WHEN i.shop <> u.s
                         THEN format('body already accepted for shop %s (webhook %s); a genuine '
                                     'Shopify body never belongs to two shops', i.shop, i.webhook_id)
                         ELSE format('body already accepted under %s (webhook %s); a genuine %s '
                                     'body is never another topic''s body', i.topic, i.webhook_id, u.t)
                         END AS reason
                     FROM inbox i
                     WHERE u.p IS NOT NULL AND i.body_sha256 = u.h AND i.status <> 'quarantined'
                       AND i.webhook_id <> u.w AND (i.shop <> u.s OR (u.del AND i.topic <> u.t))
                     ORDER BY i.shop = u.s, i.id
                     LIMIT 1
                 ) replay ON true
                 -- Rows go in webhook id order: two batches sharing ids then wait on each
                 -- other's uncommitted keys in the same order instead of deadlocking.
                 ORDER BY w
                 ON CONFLICT (shop, webhook_id) DO NOTHING
                 RETURNING webhook_id, status AS "status: InboxStatus""#,
            $($arg),+
        )
        .fetch_all($conn)
        .await?
        .into_iter()
        .map(|row| (row.webhook_id, row.status))
        .collect()
    };
}

/// Inserts `rows` with one statement; returns the rows that were new, with the status they
/// were stored in. It wakes no worker: the caller does once it has committed
/// ([`super::wake`]). The statement is also the body guard ([`body_guard`]): a JSON row whose
/// body an accepted row of another shop (or, for a delete topic, of another topic) already
/// has is stored quarantined with the reason. It reads committed rows and the transaction's
/// own, not the statement's: [`body_guard::rounds`] keeps rows sharing a digest in separate
/// statements.
///
/// One row (a direct-mode webhook, a queue batch of one when traffic is light, a replay one
/// by one) binds scalars in a `VALUES` row; more bind arrays to `UNNEST`. The forms differ
/// for the planner: the array form's generic plan assumes 10 rows, so PostgreSQL re-planned
/// it on every call (0.32 ms of planning against 0.28 ms of execution for one row,
/// `BENCHMARKS.md`), while the one-row form is planned once per connection.
async fn insert_rows(
    conn: &mut PgConnection,
    source: Source,
    rows: &[&Row<'_>],
) -> Result<Vec<(String, InboxStatus)>, sqlx::Error> {
    if let [row] = rows {
        let e = row.event;
        return Ok(insert_inbox!(
            conn,
            "(VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::timestamptz,
                      $7::timestamptz, $8::text, $9::int8, $10::text, $11::bytea, $12::text,
                      $13::text, $15::bytea, $16::bool))
                  AS u(w, e, s, t, v, tr, r, st, b, p, raw, status, err, h, del)",
            e.webhook_id.as_str(),
            e.event_id.as_deref(),
            e.shop.as_str(),
            e.topic.as_str(),
            e.api_version.as_str(),
            e.triggered_at,
            e.received_at,
            e.stripping.as_str(),
            e.original_bytes,
            row.payload,
            row.raw.as_deref(),
            row.status as InboxStatus,
            row.error.as_deref(),
            source.as_str(),
            &e.body_sha256[..],
            is_delete_topic(&e.topic),
        ));
    }
    let n = rows.len();
    let mut webhook_ids = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut shops = Vec::with_capacity(n);
    let mut topics = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut triggered = Vec::with_capacity(n);
    let mut received = Vec::with_capacity(n);
    let mut strippings = Vec::with_capacity(n);
    let mut sizes = Vec::with_capacity(n);
    let mut payloads: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut raws: Vec<Option<&[u8]>> = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut errors: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut digests: Vec<&[u8]> = Vec::with_capacity(n);
    let mut deletes = Vec::with_capacity(n);
    for r in rows {
        let e = r.event;
        webhook_ids.push(e.webhook_id.as_str());
        event_ids.push(e.event_id.as_deref());
        shops.push(e.shop.as_str());
        topics.push(e.topic.as_str());
        versions.push(e.api_version.as_str());
        triggered.push(e.triggered_at);
        received.push(e.received_at);
        strippings.push(e.stripping.as_str());
        sizes.push(e.original_bytes);
        payloads.push(r.payload);
        raws.push(r.raw.as_deref());
        statuses.push(r.status);
        errors.push(r.error.as_deref());
        digests.push(&e.body_sha256[..]);
        deletes.push(is_delete_topic(&e.topic));
    }
    Ok(insert_inbox!(
        conn,
        "UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                $7::timestamptz[], $8::text[], $9::int8[], $10::text[], $11::bytea[],
                $12::text[], $13::text[], $15::bytea[], $16::bool[])
              AS u(w, e, s, t, v, tr, r, st, b, p, raw, status, err, h, del)",
        &webhook_ids as &[&str],
        &event_ids as &[Option<&str>],
        &shops as &[&str],
        &topics as &[&str],
        &versions as &[&str],
        &triggered as _,
        &received as _,
        &strippings as &[&str],
        &sizes as &[i64],
        &payloads as &[Option<&str>],
        &raws as _,
        &statuses as _,
        &errors as &[Option<&str>],
        source.as_str(),
        &digests as &[&[u8]],
        &deletes as &[bool],
    ))
}

/// Signals waiting workers; delivered when the transaction of `conn` commits (at once on a
/// pool).
pub(crate) async fn notify<'c>(conn: impl sqlx::PgExecutor<'c>) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_notify($1, '') AS sent", CHANNEL)
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// A claimed row, with what the worker needs besides the event.
#[derive(Debug)]
pub struct Claimed {
    /// The event for the handler.
    pub event: InboxEvent,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// The payload's size as Shopify sent it (`original_bytes`), what a claim's byte budget counts.
    pub bytes: i64,
}

/// A claimed row as the claim statement returns it.
struct ClaimRow {
    id: i64,
    webhook_id: String,
    event_id: Option<String>,
    shop: ShopDomain,
    topic: String,
    payload: String,
    attempts: i32,
    original_bytes: i64,
    /// The resource the event writes: topic's resource and the payload's key.
    resource: String,
}

/// Claims up to `batch` due rows for `worker`, round-robin by shop starting after
/// `after_shop` (fairness): shops are enumerated with a loose index scan, each contributes at
/// most `max(per_shop, ceil(batch / shops found))` rows, oldest `run_at` first.
/// Rows locked by another claimer are skipped (`FOR UPDATE SKIP LOCKED`).
///
/// The claim also stops once it holds `max_bytes` of payload as Shopify sent it
/// (`original_bytes`; always at least one row): a batch commits as one, so its events are
/// applied only when its last one is, and a few heavy orders must not wait behind fifty.
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    batch: i64,
    per_shop: i64,
    after_shop: &str,
    lease: Duration,
    max_bytes: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let mut rows = sqlx::query_as!(
        ClaimRow,
        r#"WITH RECURSIVE shops(shop, n) AS (
             (SELECT shop, 1 FROM inbox
              WHERE status = 'pending' AND run_at <= now() AND shop > $2
              ORDER BY shop LIMIT 1)
             UNION ALL
             SELECT (SELECT i.shop FROM inbox i
                     WHERE i.status = 'pending' AND i.run_at <= now() AND i.shop > s.shop
                     ORDER BY i.shop LIMIT 1),
                    s.n + 1
             FROM shops s
             WHERE s.shop IS NOT NULL AND s.n < $1::int8
         ),
         found AS (SELECT shop FROM shops WHERE shop IS NOT NULL),
         share AS (
             SELECT greatest($3::int8, ceil($1::float8 / greatest(count(*), 1)))::int8 AS per
             FROM found
         ),
         picked AS (
             SELECT f.shop, c.id, c.original_bytes, c.run_at FROM found f CROSS JOIN LATERAL (
                 SELECT i.id, i.original_bytes, i.run_at FROM inbox i
                 WHERE i.status = 'pending' AND i.shop = f.shop AND i.run_at <= now()
                 ORDER BY i.run_at, i.id
                 LIMIT (SELECT per FROM share)
                 FOR UPDATE SKIP LOCKED
             ) c
             LIMIT $1
         ),
         within AS (
             SELECT shop, id FROM (
                 SELECT shop, id,
                        (sum(original_bytes) OVER (ORDER BY shop, run_at, id))::int8
                            - original_bytes AS before
                 FROM picked
             ) p
             WHERE before < $6::int8
         )
         UPDATE inbox SET status = 'processing', locked_by = $4,
                          locked_until = now() + $5 * interval '1 millisecond',
                          attempts = inbox.attempts + 1,
                          subject = coalesce(inbox.subject, wholesail_inbox_subject(inbox.topic, inbox.payload))
         FROM within AS picked WHERE inbox.shop = picked.shop AND inbox.id = picked.id
         RETURNING inbox.id, inbox.webhook_id, inbox.event_id,
                   inbox.shop AS "shop: ShopDomain", inbox.topic,
                   inbox.payload::text AS "payload!", inbox.attempts, inbox.original_bytes,
                   split_part(inbox.topic, '/', 1) || ' ' || coalesce(
                       inbox.payload->>'id',
                       (inbox.payload->>'inventory_item_id') || '/' ||
                           (inbox.payload->>'location_id'),
                       inbox.payload->>'admin_graphql_api_id',
                       '') AS "resource!""#,
        batch,
        after_shop,
        per_shop,
        worker,
        lease.as_millis() as f64,
        max_bytes,
    )
    .fetch_all(pool)
    .await?;
    // Apply in one global order, shop then resource then age: two batches touching the same
    // orders lock their rows in the same order and wait for each other instead of
    // deadlocking. Events of one resource keep their inbox order.
    rows.sort_by(|a, b| (&a.shop, &a.resource, a.id).cmp(&(&b.shop, &b.resource, b.id)));
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            event: InboxEvent {
                id: r.id,
                webhook_id: r.webhook_id,
                event_id: r.event_id,
                shop: r.shop,
                topic: r.topic,
                payload: r.payload,
            },
            attempts: r.attempts,
            bytes: r.original_bytes,
        })
        .collect())
}

/// Inbox rows by primary key, bound as two parallel arrays (`UNNEST($n::text[], $m::int8[])`).
#[derive(Debug, Default)]
pub struct Keys<'a> {
    shops: Vec<&'a str>,
    ids: Vec<i64>,
}

impl<'a> Keys<'a> {
    /// The keys of `events`.
    pub fn of(events: impl IntoIterator<Item = &'a InboxEvent>) -> Self {
        let mut keys = Keys::default();
        for e in events {
            keys.push(e);
        }
        keys
    }

    /// Adds one event's key.
    pub fn push(&mut self, event: &'a InboxEvent) {
        self.shops.push(event.shop.as_str());
        self.ids.push(event.id);
    }
}

/// Locks the rows of `keys` that `worker` still holds, at the start of a completion
/// transaction, so no one can reclaim them while their effect is being applied. Returns their
/// ids.
pub async fn lock_held(
    tx: &mut Transaction<'_, Postgres>,
    worker: &str,
    keys: &Keys<'_>,
) -> Result<HashSet<i64>, sqlx::Error> {
    let held = sqlx::query_scalar!(
        "SELECT id FROM inbox
         WHERE (shop, id) IN (SELECT * FROM UNNEST($1::text[], $2::int8[]))
           AND locked_by = $3 AND status = 'processing'
         FOR UPDATE",
        &keys.shops as &[&str],
        &keys.ids,
        worker,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(held.into_iter().collect())
}

/// The lags of a row marked done, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct DoneLag {
    /// Inbox insert → done.
    pub lag: f64,
    /// Shopify's `triggered_at` → done, for an applied event that carries it.
    pub since_triggered: Option<f64>,
}

/// Marks `keys` done in the completion transaction with each event's outcome (`outcomes[i]`
/// is [`crate::handlers::Outcome::as_str`] of `keys`' i-th event, `reasons[i]` its reason); returns
/// the lags of each row.
pub async fn mark_done(
    tx: &mut Transaction<'_, Postgres>,
    keys: &Keys<'_>,
    outcomes: &[&str],
    reasons: &[Option<String>],
) -> Result<Vec<DoneLag>, sqlx::Error> {
    sqlx::query_as!(
        DoneLag,
        r#"UPDATE inbox SET status = 'done', processed_at = clock_timestamp(),
                          processed_count = processed_count + 1,
                          locked_by = NULL, locked_until = NULL, last_error = NULL,
                          outcome = d.outcome, outcome_reason = d.reason
         FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[]) AS d(shop, id, outcome, reason)
         WHERE inbox.shop = d.shop AND inbox.id = d.id
         RETURNING extract(epoch FROM clock_timestamp() - inserted_at)::float8 AS "lag!",
                   CASE WHEN d.outcome = 'applied' THEN
                       extract(epoch FROM clock_timestamp() - triggered_at)::float8
                   END AS since_triggered"#,
        &keys.shops as &[&str],
        &keys.ids,
        outcomes as &[&str],
        reasons as &[Option<String>],
    )
    .fetch_all(&mut **tx)
    .await
}

/// A failed attempt to record.
#[derive(Debug)]
pub struct Failure<'a> {
    /// The row's shop.
    pub shop: &'a ShopDomain,
    /// The row.
    pub id: i64,
    /// The error, stored as `last_error`.
    pub error: String,
    /// `None`: permanent, dead now. `Some(delay)`: retry after the delay unless attempts are
    /// used up, in which case it is dead.
    pub retry_after: Option<Duration>,
}

/// Records failed attempts of rows `worker` holds: back to `pending` with `run_at` pushed back
/// (durable backoff), or `dead` when permanent or out of attempts. Rows no longer held (for
/// instance already done) are left alone. Returns how many became dead letters.
pub async fn record_failures(
    conn: &mut PgConnection,
    worker: &str,
    failures: &[Failure<'_>],
    max_attempts: i32,
) -> Result<u64, sqlx::Error> {
    if failures.is_empty() {
        return Ok(0);
    }
    let shops: Vec<&str> = failures.iter().map(|f| f.shop.as_str()).collect();
    let ids: Vec<i64> = failures.iter().map(|f| f.id).collect();
    let errors: Vec<&str> = failures.iter().map(|f| f.error.as_str()).collect();
    let delays: Vec<Option<f64>> = failures
        .iter()
        .map(|f| f.retry_after.map(|d| d.as_millis() as f64))
        .collect();
    let dead = sqlx::query_scalar!(
        r#"WITH f AS (
             SELECT * FROM UNNEST($6::text[], $1::int8[], $2::text[], $3::float8[])
                 AS f(shop, id, err, delay_ms)
         ), u AS (
             UPDATE inbox SET
                 status = CASE WHEN f.delay_ms IS NULL OR inbox.attempts >= $4
                               THEN 'dead' ELSE 'pending' END,
                 run_at = CASE WHEN f.delay_ms IS NULL OR inbox.attempts >= $4 THEN inbox.run_at
                               ELSE now() + f.delay_ms * interval '1 millisecond' END,
                 last_error = f.err, locked_by = NULL, locked_until = NULL
             FROM f WHERE inbox.shop = f.shop AND inbox.id = f.id AND inbox.status = 'processing' AND inbox.locked_by = $5
             RETURNING inbox.status
         )
         SELECT count(*) FILTER (WHERE status = 'dead') AS "dead!" FROM u"#,
        &ids,
        &errors as &[&str],
        &delays as &[Option<f64>],
        max_attempts,
        worker,
        &shops as &[&str],
    )
    .fetch_one(conn)
    .await?;
    Ok(dead as u64)
}

/// Returns expired leases (crashed or hung workers) to `pending`, or to `dead` when their
/// claims used up `max_attempts`. Rows a live worker is committing are skipped.
/// Returns (reclaimed, dead).
pub async fn reclaim_expired(pool: &PgPool, max_attempts: i32) -> Result<(i64, i64), sqlx::Error> {
    let r = sqlx::query!(
        r#"WITH u AS (
             UPDATE inbox SET
                 status = CASE WHEN attempts >= $1 THEN 'dead' ELSE 'pending' END,
                 last_error = 'lease of ' || locked_by || ' expired (worker crashed or hung)',
                 locked_by = NULL, locked_until = NULL, run_at = now()
             WHERE id IN (SELECT id FROM inbox
                          WHERE status = 'processing' AND locked_until < now()
                          FOR UPDATE SKIP LOCKED)
             RETURNING status
         )
         SELECT count(*) FILTER (WHERE status = 'pending') AS "reclaimed!",
                count(*) FILTER (WHERE status = 'dead') AS "dead!"
         FROM u"#,
        max_attempts,
    )
    .fetch_one(pool)
    .await?;
    Ok((r.reclaimed, r.dead))
}

/// Gives back the rows `worker` still holds (graceful shutdown): pending again, due now, and
/// the unfinished claim not counted as an attempt. Rows still locked by an aborted completion
/// are left to lease expiry.
pub async fn release(pool: &PgPool, worker: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE inbox SET status = 'pending', locked_by = NULL, locked_until = NULL,
                          attempts = greatest(attempts - 1, 0), run_at = now()
         WHERE id IN (SELECT id FROM inbox WHERE locked_by = $1 AND status = 'processing'
                      FOR UPDATE SKIP LOCKED)",
        worker,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Inbox depth by status and the age of the oldest due pending row, for metrics and readiness.
#[derive(Debug, Default)]
pub struct Depth {
    /// (status, rows) for the statuses that are not `done`.
    pub by_status: Vec<(String, i64)>,
    /// Seconds the oldest due pending row has waited (0 when none).
    pub lag_secs: f64,
}

/// Reads [`Depth`]. `done` rows are not counted (they only grow; see the done counter).
/// Each status is a literal so that its count uses that status's partial index (a status
/// given as a parameter matches none of them: four sequential scans of the whole inbox).
pub async fn depth(pool: &PgPool) -> Result<Depth, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM inbox WHERE status = 'pending') AS "pending!",
                  (SELECT count(*) FROM inbox WHERE status = 'processing') AS "processing!",
                  (SELECT count(*) FROM inbox WHERE status = 'dead') AS "dead!",
                  (SELECT count(*) FROM inbox WHERE status = 'quarantined') AS "quarantined!""#,
    )
    .fetch_one(pool)
    .await?;
    let by_status = [
        ("pending", row.pending),
        ("processing", row.processing),
        ("dead", row.dead),
        ("quarantined", row.quarantined),
    ];
    Ok(Depth {
        by_status: by_status
            .into_iter()
            .map(|(status, rows)| (status.to_owned(), rows))
            .collect(),
        lag_secs: lag_secs(pool).await?,
    })
}

/// Seconds the oldest due pending row has waited (0 when none).
pub async fn lag_secs(pool: &PgPool) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 AS "lag!"
         FROM inbox WHERE status = 'pending' AND run_at <= now()"#,
    )
    .fetch_one(pool)
    .await
}
