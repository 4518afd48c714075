//! The mandatory compliance topics. Each records what it did in `compliance_audit` (ids and
//! counts only, never the personal data), one row per request: every delivery of the same
//! payload (several subscriptions, replays) after the first reports [`Verdict::Stale`].
//! The payload's `shop_domain`, when present, must be the delivering shop, so a confused
//! payload can never touch another shop's rows.
//!
//! - `customers/data_request`: records what we hold about the customer — whether a customer
//!   row exists, which personal fields in it are set, and the ids of the orders we hold for
//!   the customer or that the request names (`orders_requested`). The merchant answers the
//!   request; we hold nothing Shopify does not.
//! - `customers/redact`: erases the customer's personal data from the inbox (payloads, dead
//!   letters, quarantined bodies), draft-order jobs and free-text columns ([`personal_data`]),
//!   and the email, first and last name and phone in `customers` (a redaction that arrives before the customer writes a tombstone row, so a late
//!   `customers/create` cannot bring the data back), and the email, shipping zip and city of
//!   the customer's orders and of `orders_to_redact`. Redacted rows stay erased whatever
//!   version arrives later (`redacted_at`).
//! - `shop/redact`: deletes all the shop's operational rows (orders, order lines, customers,
//!   companies, company locations, products, variants, inventory levels), keeps the `shops`
//!   row with `redacted_at` set (events for the shop are then no longer applied) and records
//!   the counts. It also deletes the shop's inbox rows (but its own), draft-order jobs and
//!   catalog metafields ([`personal_data`]); the audit table is kept. It runs under the shop's
//!   exclusive lock (`shop_lock`), so no event of the shop commits rows after it.

use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::types::Json;
use sqlx::PgConnection;

use super::personal_data;
use super::version::digest;
use super::{invalid, parse, HandlerError, InboxEvent, Verdict};

#[derive(Deserialize)]
struct CustomerIds {
    id: i64,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Deserialize)]
struct DataRequestId {
    id: i64,
}

#[derive(Deserialize)]
struct DataRequest {
    shop_domain: Option<String>,
    customer: CustomerIds,
    #[serde(default)]
    orders_requested: Vec<i64>,
    data_request: Option<DataRequestId>,
}

#[derive(Deserialize)]
struct CustomerRedact {
    shop_domain: Option<String>,
    customer: CustomerIds,
    #[serde(default)]
    orders_to_redact: Vec<i64>,
}

#[derive(Deserialize)]
struct ShopRedact {
    shop_id: Option<i64>,
    shop_domain: Option<String>,
}

/// The tables `shop/redact` empties for the shop, parents before their children.
const OPERATIONAL_TABLES: [&str; 8] = [
    "orders",
    "order_lines",
    "products",
    "variants",
    "customers",
    "companies",
    "company_locations",
    "inventory_levels",
];

/// Rejects a payload that names another shop than the one that delivered it.
fn check_shop(event: &InboxEvent, shop_domain: Option<&str>) -> Result<(), HandlerError> {
    match shop_domain {
        Some(domain) if domain != event.shop.as_str() => Err(invalid(
            event,
            format!(
                "shop_domain {domain:?} is not the delivering shop {:?}",
                event.shop
            ),
        )),
        _ => Ok(()),
    }
}

/// Inserts the audit row of `event`'s request; false when the request was already recorded.
pub(super) async fn record(
    conn: &mut PgConnection,
    event: &InboxEvent,
    subject: &str,
    details: Value,
) -> Result<bool, HandlerError> {
    let inserted = sqlx::query!(
        "INSERT INTO compliance_audit (shop, topic, subject, request_key, inbox_id, webhook_id,
                                       event_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT ON CONSTRAINT compliance_audit_request DO NOTHING",
        event.shop.as_str(),
        event.topic,
        subject,
        format!("{:016x}", digest(&event.payload)),
        event.id,
        event.webhook_id,
        event.event_id,
        Json(details) as _,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// `customers/data_request`: records what we hold about the customer.
pub(super) async fn data_request(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let req: DataRequest = parse(event)?;
    check_shop(event, req.shop_domain.as_deref())?;
    let held = sqlx::query_scalar!(
        r#"SELECT jsonb_build_object(
             'customer_row', (SELECT jsonb_build_object(
                     'deleted', deleted_at IS NOT NULL,
                     'redacted', redacted_at IS NOT NULL,
                     'personal_fields', to_jsonb(array_remove(ARRAY[
                         CASE WHEN email IS NOT NULL THEN 'email' END,
                         CASE WHEN first_name IS NOT NULL THEN 'first_name' END,
                         CASE WHEN last_name IS NOT NULL THEN 'last_name' END,
                         CASE WHEN phone IS NOT NULL THEN 'phone' END], NULL)))
                 FROM customers WHERE shop = $1 AND id = $2),
             'orders_held', (SELECT coalesce(jsonb_agg(id ORDER BY id), '[]'::jsonb)
                 FROM orders
                 WHERE shop = $1 AND (customer_id = $2 OR id = ANY($3))
                   AND deleted_at IS NULL)) AS "held!: Value""#,
        event.shop.as_str(),
        req.customer.id,
        &req.orders_requested,
    )
    .fetch_one(&mut *conn)
    .await?;
    let details = json!({
        "action": "data_request_recorded",
        "data_request_id": req.data_request.map(|d| d.id),
        "orders_requested": req.orders_requested,
        "held": held,
    });
    let subject = format!("customer:{}", req.customer.id);
    Ok(Verdict::from_won(
        record(conn, event, &subject, details).await?,
        || "this request was already carried out".into(),
    ))
}

/// `customers/redact`: erases the customer's personal data in customers and orders.
pub(super) async fn redact_customer(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let req: CustomerRedact = parse(event)?;
    check_shop(event, req.shop_domain.as_deref())?;
    // Every email we know the customer by, read before the rows below are erased.
    let mut emails = sqlx::query_scalar!(
        r#"SELECT email AS "email!" FROM customers
         WHERE shop = $1 AND id = $2 AND email IS NOT NULL
         UNION
         SELECT email FROM orders
         WHERE shop = $1 AND (customer_id = $2 OR id = ANY($3)) AND email IS NOT NULL"#,
        event.shop.as_str(),
        req.customer.id,
        &req.orders_to_redact,
    )
    .fetch_all(&mut *conn)
    .await?;
    emails.extend(req.customer.email.clone());
    let elsewhere = personal_data::erase_customer(
        conn,
        event,
        req.customer.id,
        &emails,
        req.customer.phone.as_deref(),
    )
    .await?;
    let redacted = sqlx::query!(
        r#"WITH c AS (
             INSERT INTO customers AS t (shop, id, redacted_at, written_by)
             VALUES ($1, $2, now(), $4)
             ON CONFLICT (shop, id) DO UPDATE SET
                 email = NULL, first_name = NULL, last_name = NULL, phone = NULL,
                 redacted_at = now(), applied_at = now(), written_by = $4
             WHERE t.redacted_at IS NULL
             RETURNING 1
         ),
         o AS (
             UPDATE orders SET email = NULL, shipping_zip = NULL, shipping_city = NULL,
                               redacted_at = now(), applied_at = now(), written_by = $4
             WHERE shop = $1 AND (customer_id = $2 OR id = ANY($3)) AND redacted_at IS NULL
             RETURNING id
         )
         SELECT (SELECT count(*) FROM c) AS "customers!",
                (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM o) AS "orders!""#,
        event.shop.as_str(),
        req.customer.id,
        &req.orders_to_redact,
        event.written_by(),
    )
    .fetch_one(&mut *conn)
    .await?;
    let (customers, orders) = (redacted.customers, redacted.orders);
    let details = json!({
        "action": "customer_redacted",
        "customer_rows_erased": customers,
        "orders_erased": orders,
        "orders_to_redact": req.orders_to_redact,
        "elsewhere": elsewhere,
    });
    let subject = format!("customer:{}", req.customer.id);
    Ok(Verdict::from_won(
        record(conn, event, &subject, details).await?,
        || "this request was already carried out".into(),
    ))
}

/// `shop/redact`: deletes the shop's operational data and marks the shop redacted.
pub(super) async fn redact_shop(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let req: ShopRedact = parse(event)?;
    check_shop(event, req.shop_domain.as_deref())?;
    // One statement per table, parents before children: each statement's snapshot is taken
    // after the previous one waited for concurrent writers' row locks, so lines or variants a
    // writer committed meanwhile are seen and deleted with their parent (never left orphaned).
    let mut deleted = serde_json::Map::new();
    // The catalog's deletes are not marked for the next resync (`catalog_dirty`): there is
    // none after a redaction (the shop's marks and digests go too). Off again after, for the
    // batch's next events.
    sqlx::query!("SET LOCAL wholesail.catalog_writer = 'on'")
        .execute(&mut *conn)
        .await?;
    for table in OPERATIONAL_TABLES {
        let rows = sqlx::query(&format!("DELETE FROM {table} WHERE shop = $1"))
            .bind(&event.shop)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        deleted.insert(table.to_owned(), rows.into());
    }
    sqlx::query!(
        "INSERT INTO shops AS t (shop, shopify_id, uninstalled_at, redacted_at, written_by)
         VALUES ($1, $2, now(), now(), $3)
         ON CONFLICT (shop) DO UPDATE SET
             uninstalled_at = coalesce(t.uninstalled_at, now()),
             redacted_at = coalesce(t.redacted_at, now()),
             applied_at = now(), written_by = $3",
        event.shop.as_str(),
        req.shop_id,
        event.written_by(),
    )
    .execute(&mut *conn)
    .await?;
    let elsewhere = personal_data::erase_shop(conn, event).await?;
    sqlx::query!("SET LOCAL wholesail.catalog_writer = 'off'")
        .execute(&mut *conn)
        .await?;
    for table in ["catalog_digests", "catalog_dirty"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE shop = $1"))
            .bind(&event.shop)
            .execute(&mut *conn)
            .await?;
    }
    let details = json!({
        "action": "shop_data_deleted",
        "rows_deleted": deleted,
        "elsewhere": elsewhere,
    });
    let subject = match req.shop_id {
        Some(id) => format!("shop:{id}"),
        None => format!("shop:{}", event.shop),
    };
    Ok(Verdict::from_won(
        record(conn, event, &subject, details).await?,
        || "this request was already carried out".into(),
    ))
}
