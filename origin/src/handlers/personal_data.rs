//! Where personal data lives besides the operational rows, and how the compliance handlers
//! erase it: the inbox (payloads of processed events, dead letters, quarantined raw bodies,
//! error texts), draft-order jobs (the quote as submitted, error texts), catalog metafield
//! values and company notes.
//!
//! `customers/redact` finds the customer's inbox rows of the shop by `customer.id`, by
//! `email` (indexes `inbox_customer`, `inbox_email`), by id on the `customers/*` topics
//! (`inbox_shop_topic`) and, among dead and quarantined rows, by the email's text; it removes
//! the personal keys from their payloads (`wholesail_scrub_personal`), replaces any remaining
//! occurrence of the email or phone by `[redacted]`, and replaces a quarantined raw body (bytes
//! that may not even be text) by a marker. `shop/redact` deletes the shop's inbox rows (except
//! its own and rows a worker holds, which the retention task removes later), draft-order jobs
//! and catalog metafields.

use serde_json::{json, Value};
use sqlx::PgConnection;

use wholesail_webhook::{Family, KnownTopic};

use super::InboxEvent;

/// The `customers/*` topics: the customer family and the customer compliance requests.
fn customer_topics() -> Vec<&'static str> {
    KnownTopic::names_of(Family::Customer)
        .chain([
            KnownTopic::CustomersDataRequest.as_str(),
            KnownTopic::CustomersRedact.as_str(),
        ])
        .collect()
}

/// Free-text columns (table, column) of a shop's rows where a person's email could have been
/// typed; occurrences are replaced. (Each is a scan of the shop's rows of that table, so the
/// big per-order tables are not in this list.)
const TEXT_COLUMNS: [(&str, &str); 4] = [
    ("companies", "note"),
    ("catalog_metafields", "value"),
    ("draft_order_jobs", "error"),
    ("draft_order_jobs", "callback_error"),
];

/// jsonb columns (table, column) of a shop's rows that hold submitted documents.
const JSON_COLUMNS: [(&str, &str); 2] = [
    ("draft_order_jobs", "request"),
    ("draft_order_jobs", "violations"),
];

/// The quarantined raw body of a row that named the customer.
const ERASED_BODY: &str = "[body erased by customers/redact]";

/// Erases customer `customer_id`'s personal data outside `customers` and `orders` for
/// `event`'s shop. `emails` and `phone` are what the request and our rows say about the
/// customer. Returns counts for the audit record.
pub(super) async fn erase_customer(
    conn: &mut PgConnection,
    event: &InboxEvent,
    customer_id: i64,
    emails: &[String],
    phone: Option<&str>,
) -> Result<Value, sqlx::Error> {
    let mut raw_needles: Vec<Vec<u8>> = emails
        .iter()
        .flat_map(|e| [e.trim().to_owned(), e.trim().to_lowercase()])
        .filter(|e| !e.is_empty())
        .map(String::into_bytes)
        .collect();
    raw_needles.sort();
    raw_needles.dedup();
    let mut emails: Vec<String> = emails
        .iter()
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
        .collect();
    emails.sort();
    emails.dedup();
    let mut needles = emails.clone();
    needles.extend(phone.map(str::to_owned).filter(|p| !p.trim().is_empty()));
    let patterns: Vec<String> = emails
        .iter()
        .map(|e| format!("%{}%", like_escape(e)))
        .collect();

    let inbox_rows = sqlx::query!(
        "WITH targets AS (
             SELECT id FROM inbox
             WHERE shop = $1 AND payload ? 'customer'
               AND payload -> 'customer' ->> 'id' = $2::int8::text
             UNION
             SELECT id FROM inbox
             WHERE shop = $1 AND payload ? 'email' AND lower(payload ->> 'email') = ANY($3)
             UNION
             SELECT id FROM inbox
             WHERE shop = $1 AND topic = ANY($4) AND payload ->> 'id' = $2::int8::text
             UNION
             SELECT id FROM inbox
             WHERE shop = $1 AND status IN ('dead', 'quarantined')
               AND (payload::text ILIKE ANY($5) OR last_error ILIKE ANY($5)
                    OR EXISTS (SELECT 1 FROM unnest($6::bytea[]) AS n(b)
                               WHERE position(n.b IN raw_body) > 0))
             UNION
             SELECT id FROM inbox WHERE id = $7 AND shop = $1
         )
         UPDATE inbox SET
             payload = wholesail_erase_needles(wholesail_scrub_personal(payload)::text,
                                               $8)::jsonb,
             raw_body = CASE WHEN raw_body IS NOT NULL THEN convert_to($9, 'UTF8') END,
             last_error = wholesail_erase_needles(last_error, $8)
         FROM targets WHERE inbox.shop = $1 AND inbox.id = targets.id",
        event.shop.as_str(),
        customer_id,
        emails as _,
        customer_topics() as _,
        patterns as _,
        raw_needles as _,
        event.id,
        needles as _,
        ERASED_BODY,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();

    let mut other_rows = 0;
    if !patterns.is_empty() {
        for (table, column) in TEXT_COLUMNS {
            other_rows += sqlx::query(&format!(
                "UPDATE {table} SET {column} = wholesail_erase_needles({column}, $2)
                 WHERE shop = $1 AND {column} ILIKE ANY($3)"
            ))
            .bind(&event.shop)
            .bind(&needles)
            .bind(&patterns)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
        for (table, column) in JSON_COLUMNS {
            other_rows += sqlx::query(&format!(
                "UPDATE {table} SET {column} =
                     wholesail_erase_needles({column}::text, $2)::jsonb
                 WHERE shop = $1 AND {column}::text ILIKE ANY($3)"
            ))
            .bind(&event.shop)
            .bind(&needles)
            .bind(&patterns)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
    }
    Ok(json!({"inbox_rows_scrubbed": inbox_rows, "other_rows_scrubbed": other_rows}))
}

/// Deletes `event`'s shop's inbox rows (but `event`'s own, and rows a worker holds, which the
/// retention task removes once done), draft-order jobs and catalog metafields. Returns counts.
pub(super) async fn erase_shop(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Value, sqlx::Error> {
    let inbox = sqlx::query!(
        "DELETE FROM inbox WHERE shop = $1 AND id IN (
             SELECT id FROM inbox
             WHERE shop = $1 AND id <> $2 AND status IN ('done', 'dead', 'quarantined')
             FOR UPDATE SKIP LOCKED)",
        event.shop.as_str(),
        event.id,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let parts = sqlx::query!(
        "DELETE FROM draft_order_parts WHERE shop = $1",
        event.shop.as_str()
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let jobs = sqlx::query!(
        "DELETE FROM draft_order_jobs WHERE shop = $1",
        event.shop.as_str()
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let metafields = sqlx::query!(
        "DELETE FROM catalog_metafields WHERE shop = $1",
        event.shop.as_str()
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(json!({
        "inbox": inbox,
        "draft_order_parts": parts,
        "draft_order_jobs": jobs,
        "catalog_metafields": metafields,
    }))
}

/// Removes the personal keys from `event`'s own inbox row when it is about a customer already
/// redacted (an order or customer event arriving after `customers/redact`).
pub(super) async fn scrub_if_customer_redacted(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE inbox SET payload = wholesail_scrub_personal(payload)
         WHERE id = $1 AND shop = $2
           AND EXISTS (SELECT 1 FROM customers c
                       WHERE c.shop = $2 AND c.redacted_at IS NOT NULL
                         AND c.id = coalesce(inbox.payload -> 'customer' ->> 'id',
                                             CASE WHEN inbox.topic LIKE 'customers/%'
                                                  THEN inbox.payload ->> 'id' END)::int8)",
        event.id,
        event.shop.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// [`scrub_if_customer_redacted`] for several events of the caller's transaction at once (a
/// worker batch's order events).
pub(super) async fn scrub_all_if_customer_redacted(
    conn: &mut PgConnection,
    events: &[&InboxEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let shops: Vec<&str> = events.iter().map(|e| e.shop.as_str()).collect();
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    sqlx::query!(
        "UPDATE inbox SET payload = wholesail_scrub_personal(payload)
         FROM unnest($1::text[], $2::int8[]) AS e(shop, id)
         WHERE inbox.shop = e.shop AND inbox.id = e.id
           AND EXISTS (SELECT 1 FROM customers c
                       WHERE c.shop = inbox.shop AND c.redacted_at IS NOT NULL
                         AND c.id = coalesce(inbox.payload -> 'customer' ->> 'id',
                                             CASE WHEN inbox.topic LIKE 'customers/%'
                                                  THEN inbox.payload ->> 'id' END)::int8)",
        &shops as &[&str],
        &ids,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
