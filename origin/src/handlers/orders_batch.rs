//! `orders/*` upserts of one worker batch, applied as sets: a statement per step for all the
//! batch's orders instead of per event, with the per-event path's results.
//!
//! The events are applied in *rounds*: round k holds the k-th event of each order (batch order),
//! so every round touches an order once and the guarded upsert of [`orders::ON_CONFLICT`] judges
//! each event against what the previous round left. The outcome is the sequential one: two
//! versions of an order in one batch end with the newest whatever their order, an older one is
//! `Stale` with the same reason, a replay of the stored version writes nothing. Per round:
//!
//! 1. one upsert of the round's orders, in batch order (shop, then resource), so its row locks
//!    are taken in the order every worker takes them: round 1 locks every order of the run, and
//!    later rounds only touch rows already held;
//! 2. the stored versions of the orders whose event lost, read in a statement of its own (after
//!    the locks, as the per-event path reads them), only when one lost;
//! 3. the lines of the orders whose event won, replaced as sets in one statement, after the
//!    upsert so that its snapshot follows the row locks (see `orders::replace_lines`).
//!
//! A payload that does not parse is that event's `InvalidPayload`; it writes nothing and the
//! others are applied.

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::orders::{self, OrderRow};
use super::version::why_stale;
use super::{HandlerError, InboxEvent, Verdict};

/// One event's result: its verdict, or why its payload was refused (nothing written).
pub(super) type EventResult = Result<Verdict, HandlerError>;

/// Upserts the orders of `events` (all `orders/*` upsert topics of shops the caller's batch
/// holds clear) and replaces the lines of those whose version won. Returns one result per
/// event, in order; `Err` is a database error, after which the transaction must be rolled back.
pub(super) async fn upsert(
    conn: &mut PgConnection,
    events: &[&InboxEvent],
) -> Result<Vec<EventResult>, sqlx::Error> {
    let mut results: Vec<Option<EventResult>> = events.iter().map(|_| None).collect();
    let mut rounds: Vec<Vec<(usize, OrderRow)>> = Vec::new();
    let mut seen: HashMap<(&str, i64), usize> = HashMap::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        match OrderRow::parse(event) {
            Ok(row) => {
                let k = seen.entry((event.shop.as_str(), row.id)).or_insert(0);
                if rounds.len() == *k {
                    rounds.push(Vec::new());
                }
                rounds[*k].push((i, row));
                *k += 1;
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    for round in &rounds {
        let won = upsert_round(conn, events, round).await?;
        let lost: Vec<&(usize, OrderRow)> = round
            .iter()
            .zip(&won)
            .filter_map(|(r, w)| w.is_none().then_some(r))
            .collect();
        let reasons = stale_reasons(conn, events, &lost).await?;
        for (&&(i, _), why) in lost.iter().zip(reasons) {
            results[i] = Some(Ok(Verdict::Stale(why)));
        }
        let winners: Vec<(&(usize, OrderRow), bool)> = round
            .iter()
            .zip(&won)
            .filter_map(|(r, w)| w.map(|inserted| (r, inserted)))
            .collect();
        replace_lines(conn, events, &winners).await?;
        for ((i, _), _) in winners {
            results[*i] = Some(Ok(Verdict::Applied));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every event is parsed or refused, then judged in its round"))
        .collect())
}

/// The set upsert of one round: `NULL` for an order whose event lost, otherwise whether the
/// row was inserted. Rows go in `n` order (batch order), locking the orders in that order.
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let (columns, on_conflict) = (orders::COLUMNS, orders::ON_CONFLICT.as_str());
    format!(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[],
                                  $6::text[], $7::int8[], $8::int8[], $9::int8[],
                                  $10::timestamptz[], $11::timestamptz[], $12::timestamptz[],
                                  $13::text[], $14::timestamptz[], $15::text[], $16::text[],
                                  $17::text[], $18::text[], $19::text[], $20::text[], $21::text[],
                                  $22::bool[], $23::text[], $24::text[], $25::text[], $26::bool[],
                                  $27::text[], $28::text[], $29::text[], $30::text[], $31::int4[],
                                  $32::timestamptz[], $33::int8[], $34::text[])
                 WITH ORDINALITY
                 AS u(shop, id, admin_graphql_api_id, name, order_number, email, customer_id,
                      company_id, company_location_id, created_at, processed_at, cancelled_at,
                      cancel_reason, closed_at, financial_status, fulfillment_status, currency,
                      total_price, subtotal_price, total_tax, total_discounts, taxes_included,
                      tags, po_number, source_name, test, country_code, province_code, zip, city,
                      line_count, source_updated_at, source_digest, written_by, n)
         ),
         shipping AS (
             SELECT s.n, sum(s.price::numeric) AS price
             FROM unnest($35::int8[], $36::text[]) AS s(n, price)
             GROUP BY s.n
         ),
         o AS (
             INSERT INTO orders AS t ({columns})
             SELECT u.shop, u.id, u.admin_graphql_api_id, u.name, u.order_number,
                    CASE WHEN c.id IS NULL THEN u.email END, u.customer_id, u.company_id,
                    u.company_location_id, u.created_at, u.processed_at, u.cancelled_at,
                    u.cancel_reason, u.closed_at, u.financial_status, u.fulfillment_status,
                    u.currency, u.total_price::numeric, u.subtotal_price::numeric,
                    u.total_tax::numeric, u.total_discounts::numeric, s.price,
                    u.taxes_included, u.tags, u.po_number, u.source_name, u.test,
                    u.country_code, u.province_code,
                    CASE WHEN c.id IS NULL THEN u.zip END, CASE WHEN c.id IS NULL THEN u.city END,
                    u.line_count, u.source_updated_at, u.source_digest, u.written_by
             FROM input u
             -- A redacted customer's new orders are stored without the personal fields.
             LEFT JOIN customers c
                    ON c.shop = u.shop AND c.id = u.customer_id AND c.redacted_at IS NOT NULL
             LEFT JOIN shipping s ON s.n = u.n
             ORDER BY u.n
             {on_conflict}
             RETURNING t.shop, t.id, (t.xmax = 0) AS inserted
         )
         SELECT o.inserted FROM input u LEFT JOIN o ON o.shop = u.shop AND o.id = u.id
         ORDER BY u.n"
    )
});

/// Runs [`UPSERT`] for `round`; one entry per row: `None` when its event lost, otherwise
/// whether the order was inserted.
async fn upsert_round(
    conn: &mut PgConnection,
    events: &[&InboxEvent],
    round: &[(usize, OrderRow)],
) -> Result<Vec<Option<bool>>, sqlx::Error> {
    let n = round.len();
    let mut c = OrderColumns::with_capacity(n);
    for (k, (i, row)) in round.iter().enumerate() {
        c.push(events[*i], row, k as i64 + 1);
    }
    sqlx::query_scalar(UPSERT.as_str())
        .bind(c.shop)
        .bind(c.id)
        .bind(c.admin_graphql_api_id)
        .bind(c.name)
        .bind(c.order_number)
        .bind(c.email)
        .bind(c.customer_id)
        .bind(c.company_id)
        .bind(c.company_location_id)
        .bind(c.created_at)
        .bind(c.processed_at)
        .bind(c.cancelled_at)
        .bind(c.cancel_reason)
        .bind(c.closed_at)
        .bind(c.financial_status)
        .bind(c.fulfillment_status)
        .bind(c.currency)
        .bind(c.total_price)
        .bind(c.subtotal_price)
        .bind(c.total_tax)
        .bind(c.total_discounts)
        .bind(c.taxes_included)
        .bind(c.tags)
        .bind(c.po_number)
        .bind(c.source_name)
        .bind(c.test)
        .bind(c.country_code)
        .bind(c.province_code)
        .bind(c.zip)
        .bind(c.city)
        .bind(c.line_count)
        .bind(c.updated_at)
        .bind(c.digest)
        .bind(c.written_by)
        .bind(c.shipping_n)
        .bind(c.shipping_price)
        .fetch_all(conn)
        .await
}

/// A round's orders as column arrays, for [`UPSERT`]'s `unnest`.
#[derive(Default)]
struct OrderColumns<'a> {
    shop: Vec<&'a str>,
    id: Vec<i64>,
    admin_graphql_api_id: Vec<Option<&'a str>>,
    name: Vec<Option<&'a str>>,
    order_number: Vec<Option<i64>>,
    email: Vec<Option<&'a str>>,
    customer_id: Vec<Option<i64>>,
    company_id: Vec<Option<i64>>,
    company_location_id: Vec<Option<i64>>,
    created_at: Vec<Option<OffsetDateTime>>,
    processed_at: Vec<Option<OffsetDateTime>>,
    cancelled_at: Vec<Option<OffsetDateTime>>,
    cancel_reason: Vec<Option<&'a str>>,
    closed_at: Vec<Option<OffsetDateTime>>,
    financial_status: Vec<Option<&'a str>>,
    fulfillment_status: Vec<Option<&'a str>>,
    currency: Vec<Option<&'a str>>,
    total_price: Vec<Option<&'a str>>,
    subtotal_price: Vec<Option<&'a str>>,
    total_tax: Vec<Option<&'a str>>,
    total_discounts: Vec<Option<&'a str>>,
    taxes_included: Vec<Option<bool>>,
    tags: Vec<Option<&'a str>>,
    po_number: Vec<Option<&'a str>>,
    source_name: Vec<Option<&'a str>>,
    test: Vec<Option<bool>>,
    country_code: Vec<Option<&'a str>>,
    province_code: Vec<Option<&'a str>>,
    zip: Vec<Option<&'a str>>,
    city: Vec<Option<&'a str>>,
    line_count: Vec<i32>,
    updated_at: Vec<OffsetDateTime>,
    digest: Vec<i64>,
    written_by: Vec<String>,
    /// The shipping lines, flat: the row number (`n`, from 1) of each price's order.
    shipping_n: Vec<i64>,
    shipping_price: Vec<&'a str>,
}

impl<'a> OrderColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        OrderColumns {
            shop: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            written_by: Vec::with_capacity(n),
            ..OrderColumns::default()
        }
    }

    /// Appends `row`, `event`'s order, as row number `n`.
    fn push(&mut self, event: &'a InboxEvent, row: &'a OrderRow, n: i64) {
        self.shop.push(event.shop.as_str());
        self.id.push(row.id);
        self.admin_graphql_api_id
            .push(row.admin_graphql_api_id.as_deref());
        self.name.push(row.name.as_deref());
        self.order_number.push(row.order_number);
        self.email.push(row.email.as_deref());
        self.customer_id.push(row.customer_id);
        self.company_id.push(row.company_id);
        self.company_location_id.push(row.company_location_id);
        self.created_at.push(row.created_at);
        self.processed_at.push(row.processed_at);
        self.cancelled_at.push(row.cancelled_at);
        self.cancel_reason.push(row.cancel_reason.as_deref());
        self.closed_at.push(row.closed_at);
        self.financial_status.push(row.financial_status.as_deref());
        self.fulfillment_status
            .push(row.fulfillment_status.as_deref());
        self.currency.push(row.currency.as_deref());
        self.total_price.push(row.total_price.as_deref());
        self.subtotal_price.push(row.subtotal_price.as_deref());
        self.total_tax.push(row.total_tax.as_deref());
        self.total_discounts.push(row.total_discounts.as_deref());
        self.taxes_included.push(row.taxes_included);
        self.tags.push(row.tags.as_deref());
        self.po_number.push(row.po_number.as_deref());
        self.source_name.push(row.source_name.as_deref());
        self.test.push(row.test);
        self.country_code.push(row.address.country_code.as_deref());
        self.province_code
            .push(row.address.province_code.as_deref());
        self.zip.push(row.address.zip.as_deref());
        self.city.push(row.address.city.as_deref());
        self.line_count.push(row.line_count);
        self.updated_at.push(row.version.updated_at);
        self.digest.push(row.version.digest);
        self.written_by.push(event.written_by());
        for price in &row.shipping {
            self.shipping_n.push(n);
            self.shipping_price.push(price);
        }
    }
}

/// Why each of `lost` lost, from the stored row read now (after the round's locks).
async fn stale_reasons(
    conn: &mut PgConnection,
    events: &[&InboxEvent],
    lost: &[&(usize, OrderRow)],
) -> Result<Vec<String>, sqlx::Error> {
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let shops: Vec<&str> = lost.iter().map(|(i, _)| events[*i].shop.as_str()).collect();
    let ids: Vec<i64> = lost.iter().map(|(_, row)| row.id).collect();
    let stored = sqlx::query!(
        r#"SELECT o.id IS NOT NULL AS "found!", o.source_updated_at AS "updated_at?",
                  o.source_digest AS "digest?", o.deleted_at AS "deleted_at?"
           FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS u(shop, id, n)
           LEFT JOIN orders o ON o.shop = u.shop AND o.id = u.id
           ORDER BY u.n"#,
        &shops as &[&str],
        &ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(lost
        .iter()
        .zip(stored)
        .map(|((_, row), s)| {
            let stored = s.found.then_some((s.updated_at, s.digest, s.deleted_at));
            why_stale(&row.version, stored)
        })
        .collect())
}

/// Replaces the lines of the orders whose event won (`(row, inserted)`): for an order updated,
/// its lines missing from the payload are deleted and the others upserted (unchanged lines left
/// untouched); a new order's lines are inserted (it has none).
async fn replace_lines(
    conn: &mut PgConnection,
    events: &[&InboxEvent],
    winners: &[(&(usize, OrderRow), bool)],
) -> Result<(), sqlx::Error> {
    if winners.is_empty() {
        return Ok(());
    }
    let mut shops = Vec::with_capacity(winners.len());
    let mut order_ids = Vec::with_capacity(winners.len());
    let mut written_by = Vec::with_capacity(winners.len());
    let mut inserted = Vec::with_capacity(winners.len());
    let mut l = FlatLines::default();
    for (k, ((i, row), new)) in winners.iter().enumerate() {
        shops.push(events[*i].shop.as_str());
        order_ids.push(row.id);
        written_by.push(events[*i].written_by());
        inserted.push(*new);
        l.push(k as i64 + 1, &row.lines);
    }
    sqlx::query!(
        "WITH won AS (
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::bool[])
                 WITH ORDINALITY AS w(shop, order_id, written_by, inserted, n)
         ),
         input AS (
             SELECT w.shop, w.order_id, w.written_by, w.inserted, l.*
             FROM unnest($5::int8[], $6::int4[], $7::int8[], $8::int8[], $9::int8[],
                         $10::text[], $11::int4[], $12::int4[], $13::text[]::numeric[],
                         $14::text[]::numeric[])
                  AS l(o, position, id, variant_id, product_id, sku, quantity,
                       current_quantity, price, total_discount)
             JOIN won w ON w.n = l.o
         ),
         gone AS (
             DELETE FROM order_lines d USING won w
             WHERE NOT w.inserted AND d.shop = w.shop AND d.order_id = w.order_id
               AND NOT EXISTS (SELECT 1 FROM input l
                               WHERE l.shop = d.shop AND l.order_id = d.order_id
                                 AND l.id = d.id)
         ),
         fresh AS (
             INSERT INTO order_lines (shop, order_id, id, position, variant_id, product_id,
                                      sku, quantity, current_quantity, price, total_discount,
                                      written_by)
             SELECT l.shop, l.order_id, l.id, l.position, l.variant_id, l.product_id, l.sku,
                    l.quantity, l.current_quantity, l.price, l.total_discount, l.written_by
             FROM input l WHERE l.inserted
         )
         INSERT INTO order_lines AS t (shop, order_id, id, position, variant_id, product_id, sku,
                                       quantity, current_quantity, price, total_discount,
                                       written_by)
         SELECT l.shop, l.order_id, l.id, l.position, l.variant_id, l.product_id, l.sku,
                l.quantity, l.current_quantity, l.price, l.total_discount, l.written_by
         FROM input l WHERE NOT l.inserted
         ON CONFLICT (shop, order_id, id) DO UPDATE SET
             position = EXCLUDED.position,
             variant_id = EXCLUDED.variant_id,
             product_id = EXCLUDED.product_id,
             sku = EXCLUDED.sku,
             quantity = EXCLUDED.quantity,
             current_quantity = EXCLUDED.current_quantity,
             price = EXCLUDED.price,
             total_discount = EXCLUDED.total_discount,
             written_by = EXCLUDED.written_by
         WHERE (t.position, t.variant_id, t.product_id, t.sku, t.quantity, t.current_quantity,
                t.price, t.total_discount)
               IS DISTINCT FROM
               (EXCLUDED.position, EXCLUDED.variant_id, EXCLUDED.product_id, EXCLUDED.sku,
                EXCLUDED.quantity, EXCLUDED.current_quantity, EXCLUDED.price,
                EXCLUDED.total_discount)",
        &shops as &[&str],
        &order_ids,
        &written_by,
        &inserted,
        &l.order,
        &l.position,
        &l.id,
        &l.variant_id as _,
        &l.product_id as _,
        &l.sku as _,
        &l.quantity,
        &l.current_quantity as _,
        &l.price as _,
        &l.total_discount as _,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The lines of several orders as flat column arrays; `order` is each line's order's number
/// (from 1) in the statement's list of orders, `position` its place in its order (from 1).
#[derive(Default)]
struct FlatLines<'a> {
    order: Vec<i64>,
    position: Vec<i32>,
    id: Vec<i64>,
    variant_id: Vec<Option<i64>>,
    product_id: Vec<Option<i64>>,
    sku: Vec<Option<&'a str>>,
    quantity: Vec<i32>,
    current_quantity: Vec<Option<i32>>,
    price: Vec<&'a str>,
    total_discount: Vec<Option<&'a str>>,
}

impl<'a> FlatLines<'a> {
    /// Appends the lines of order number `order`.
    fn push(&mut self, order: i64, lines: &'a orders::Lines) {
        for (p, id) in lines.id.iter().enumerate() {
            self.order.push(order);
            // `line_count` fits in an i32 (`OrderRow::parse`), so every position does.
            self.position.push(p as i32 + 1);
            self.id.push(*id);
        }
        self.variant_id.extend_from_slice(&lines.variant_id);
        self.product_id.extend_from_slice(&lines.product_id);
        self.sku.extend(lines.sku.iter().map(Option::as_deref));
        self.quantity.extend_from_slice(&lines.quantity);
        self.current_quantity
            .extend_from_slice(&lines.current_quantity);
        self.price.extend(lines.price.iter().map(String::as_str));
        self.total_discount
            .extend(lines.total_discount.iter().map(Option::as_deref));
    }
}
