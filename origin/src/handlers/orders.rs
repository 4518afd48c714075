//! `orders/*`: the order row and its lines.
//!
//! Two statements per event, whatever the number of lines: the guarded order upsert, and —
//! only when it wins — the lines replaced as a set in one statement (lines missing from the
//! payload deleted, the rest upserted from `UNNEST`ed arrays, unchanged lines left untouched;
//! for an order seen for the first time, a plain `INSERT … SELECT FROM unnest`, which costs
//! about a third less on 500 lines).
//! An order or customer already redacted keeps its personal fields (email, shipping zip and
//! city) NULL whatever version arrives later. `orders/delete` writes a final tombstone and
//! removes the lines.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::Deserialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use super::money::Money;
use super::tombstone::{self, Children};
use super::version::{self, Key, Version, NEWER};
use super::{invalid, parse, Address, HandlerError, InboxEvent, Verdict};

#[derive(Deserialize)]
struct Order {
    id: i64,
    admin_graphql_api_id: Option<String>,
    #[serde(with = "super::timestamp")]
    updated_at: OffsetDateTime,
    name: Option<String>,
    order_number: Option<i64>,
    email: Option<String>,
    #[serde(default, with = "super::timestamp::option")]
    created_at: Option<OffsetDateTime>,
    #[serde(default, with = "super::timestamp::option")]
    processed_at: Option<OffsetDateTime>,
    #[serde(default, with = "super::timestamp::option")]
    cancelled_at: Option<OffsetDateTime>,
    cancel_reason: Option<String>,
    #[serde(default, with = "super::timestamp::option")]
    closed_at: Option<OffsetDateTime>,
    financial_status: Option<String>,
    fulfillment_status: Option<String>,
    currency: Option<String>,
    total_price: Option<Money>,
    subtotal_price: Option<Money>,
    total_tax: Option<Money>,
    total_discounts: Option<Money>,
    taxes_included: Option<bool>,
    tags: Option<String>,
    po_number: Option<String>,
    source_name: Option<String>,
    test: Option<bool>,
    customer: Option<CustomerRef>,
    company: Option<CompanyRef>,
    shipping_address: Option<Address>,
    #[serde(default)]
    shipping_lines: Vec<ShippingLine>,
    line_items: Vec<LineItem>,
}

#[derive(Deserialize)]
struct CustomerRef {
    id: i64,
}

#[derive(Deserialize)]
struct CompanyRef {
    id: Option<i64>,
    location_id: Option<i64>,
}

#[derive(Deserialize)]
struct ShippingLine {
    price: Money,
}

#[derive(Deserialize)]
struct LineItem {
    id: i64,
    variant_id: Option<i64>,
    product_id: Option<i64>,
    sku: Option<String>,
    quantity: i32,
    current_quantity: Option<i32>,
    price: Money,
    total_discount: Option<Money>,
}

/// The lines as column arrays, for `UNNEST`.
#[derive(Default)]
pub(super) struct Lines {
    pub id: Vec<i64>,
    pub variant_id: Vec<Option<i64>>,
    pub product_id: Vec<Option<i64>>,
    pub sku: Vec<Option<String>>,
    pub quantity: Vec<i32>,
    pub current_quantity: Vec<Option<i32>>,
    pub price: Vec<String>,
    pub total_discount: Vec<Option<String>>,
}

impl Lines {
    fn from_items(event: &InboxEvent, items: Vec<LineItem>) -> Result<Lines, HandlerError> {
        let mut lines = Lines::default();
        let mut seen = HashSet::with_capacity(items.len());
        for item in items {
            // A repeated id would make the upsert touch one row twice (a database error that
            // retrying cannot fix).
            if !seen.insert(item.id) {
                return Err(invalid(
                    event,
                    format!("line item id {} appears twice", item.id),
                ));
            }
            lines.id.push(item.id);
            lines.variant_id.push(item.variant_id);
            lines.product_id.push(item.product_id);
            lines.sku.push(item.sku);
            lines.quantity.push(item.quantity);
            lines.current_quantity.push(item.current_quantity);
            lines.price.push(item.price.into_text());
            lines
                .total_discount
                .push(item.total_discount.map(Money::into_text));
        }
        Ok(lines)
    }
}

/// The columns an order upsert writes, in the order both upserts select them.
pub(super) const COLUMNS: &str = "shop, id, admin_graphql_api_id, name, order_number, email,
    customer_id, company_id, company_location_id, created_at, processed_at, cancelled_at,
    cancel_reason, closed_at, financial_status, fulfillment_status, currency, total_price,
    subtotal_price, total_tax, total_discounts, shipping_price, taxes_included, tags, po_number,
    source_name, test, shipping_country_code, shipping_province_code, shipping_zip, shipping_city,
    line_count, source_updated_at, source_digest, written_by";

/// The guarded update of a stored order by a newer version, shared by the per-event upsert and
/// the batch's (`orders_batch`): never over a tombstone, never by an older or the same version,
/// an order or customer already redacted keeping its personal fields NULL.
pub(super) static ON_CONFLICT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "ON CONFLICT (shop, id) DO UPDATE SET
             admin_graphql_api_id = EXCLUDED.admin_graphql_api_id,
             name = EXCLUDED.name,
             order_number = EXCLUDED.order_number,
             email = CASE WHEN t.redacted_at IS NULL THEN EXCLUDED.email END,
             customer_id = EXCLUDED.customer_id,
             company_id = EXCLUDED.company_id,
             company_location_id = EXCLUDED.company_location_id,
             created_at = EXCLUDED.created_at,
             processed_at = EXCLUDED.processed_at,
             cancelled_at = EXCLUDED.cancelled_at,
             cancel_reason = EXCLUDED.cancel_reason,
             closed_at = EXCLUDED.closed_at,
             financial_status = EXCLUDED.financial_status,
             fulfillment_status = EXCLUDED.fulfillment_status,
             currency = EXCLUDED.currency,
             total_price = EXCLUDED.total_price,
             subtotal_price = EXCLUDED.subtotal_price,
             total_tax = EXCLUDED.total_tax,
             total_discounts = EXCLUDED.total_discounts,
             shipping_price = EXCLUDED.shipping_price,
             taxes_included = EXCLUDED.taxes_included,
             tags = EXCLUDED.tags,
             po_number = EXCLUDED.po_number,
             source_name = EXCLUDED.source_name,
             test = EXCLUDED.test,
             shipping_country_code = EXCLUDED.shipping_country_code,
             shipping_province_code = EXCLUDED.shipping_province_code,
             shipping_zip = CASE WHEN t.redacted_at IS NULL THEN EXCLUDED.shipping_zip END,
             shipping_city = CASE WHEN t.redacted_at IS NULL THEN EXCLUDED.shipping_city END,
             line_count = EXCLUDED.line_count,
             source_updated_at = EXCLUDED.source_updated_at,
             source_digest = EXCLUDED.source_digest,
             written_by = EXCLUDED.written_by,
             applied_at = now()
         WHERE t.deleted_at IS NULL AND {NEWER}"
    )
});

/// The guarded order upsert. Returns NULL when this version lost; otherwise whether the row
/// was inserted (a new order) or updated, holding the row lock either way.
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let on_conflict = ON_CONFLICT.as_str();
    format!(
        "WITH redacted AS (
         SELECT EXISTS (SELECT 1 FROM customers c
                        WHERE c.shop = $1 AND c.id = $7 AND c.redacted_at IS NOT NULL) AS yes
     ),
     o AS (
         INSERT INTO orders AS t ({COLUMNS})
         SELECT $1, $2, $3, $4, $5, CASE WHEN r.yes THEN NULL ELSE $6 END, $7,
             $8, $9, $10, $11, $12,
             $13, $14, $15, $16, $17,
             $18::numeric, $19::numeric, $20::numeric, $21::numeric,
             (SELECT sum(p::numeric) FROM unnest($22::text[]) p),
             $23, $24, $25, $26, $27, $28,
             $29, CASE WHEN r.yes THEN NULL ELSE $30 END, CASE WHEN r.yes THEN NULL ELSE $31 END,
             $34,
             $32, $33, $35
         FROM redacted r
         {on_conflict}
         RETURNING (t.xmax = 0) AS inserted
     )
     SELECT (SELECT inserted FROM o)"
    )
});

/// An order event's payload, parsed and validated, in the shape the upsert binds: what the
/// per-event upsert and the batch's set-based one (`orders_batch`) both write.
pub(super) struct OrderRow {
    pub id: i64,
    pub admin_graphql_api_id: Option<String>,
    pub name: Option<String>,
    pub order_number: Option<i64>,
    pub email: Option<String>,
    pub customer_id: Option<i64>,
    pub company_id: Option<i64>,
    pub company_location_id: Option<i64>,
    pub created_at: Option<OffsetDateTime>,
    pub processed_at: Option<OffsetDateTime>,
    pub cancelled_at: Option<OffsetDateTime>,
    pub cancel_reason: Option<String>,
    pub closed_at: Option<OffsetDateTime>,
    pub financial_status: Option<String>,
    pub fulfillment_status: Option<String>,
    pub currency: Option<String>,
    pub total_price: Option<String>,
    pub subtotal_price: Option<String>,
    pub total_tax: Option<String>,
    pub total_discounts: Option<String>,
    /// The shipping lines' prices (their sum is `shipping_price`).
    pub shipping: Vec<String>,
    pub taxes_included: Option<bool>,
    pub tags: Option<String>,
    pub po_number: Option<String>,
    pub source_name: Option<String>,
    pub test: Option<bool>,
    pub address: Address,
    pub line_count: i32,
    pub version: Version,
    pub lines: Lines,
}

impl OrderRow {
    /// Parses `event`'s payload; `InvalidPayload` when a field is missing or malformed, or a
    /// line item id appears twice.
    pub fn parse(event: &InboxEvent) -> Result<OrderRow, HandlerError> {
        let order: Order = parse(event)?;
        let version = Version::of(order.updated_at, &event.payload);
        let lines = Lines::from_items(event, order.line_items)?;
        let line_count = i32::try_from(lines.id.len())
            .map_err(|_| invalid(event, "more line items than fit in an i32"))?;
        let company = order.company;
        Ok(OrderRow {
            id: order.id,
            admin_graphql_api_id: order.admin_graphql_api_id,
            name: order.name,
            order_number: order.order_number,
            email: order.email,
            customer_id: order.customer.map(|c| c.id),
            company_id: company.as_ref().and_then(|c| c.id),
            company_location_id: company.as_ref().and_then(|c| c.location_id),
            created_at: order.created_at,
            processed_at: order.processed_at,
            cancelled_at: order.cancelled_at,
            cancel_reason: order.cancel_reason,
            closed_at: order.closed_at,
            financial_status: order.financial_status,
            fulfillment_status: order.fulfillment_status,
            currency: order.currency,
            total_price: order.total_price.map(Money::into_text),
            subtotal_price: order.subtotal_price.map(Money::into_text),
            total_tax: order.total_tax.map(Money::into_text),
            total_discounts: order.total_discounts.map(Money::into_text),
            shipping: order
                .shipping_lines
                .into_iter()
                .map(|s| s.price.into_text())
                .collect(),
            taxes_included: order.taxes_included,
            tags: order.tags,
            po_number: order.po_number,
            source_name: order.source_name,
            test: order.test,
            address: order.shipping_address.unwrap_or_default(),
            line_count,
            version,
            lines,
        })
    }
}

/// Upserts the order and, when its version wins, replaces its lines.
pub(super) async fn upsert(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let order = OrderRow::parse(event)?;
    let version = order.version;
    let order_id = order.id;
    let won: Option<bool> = sqlx::query_scalar(UPSERT.as_str())
        .bind(&event.shop)
        .bind(order.id)
        .bind(order.admin_graphql_api_id)
        .bind(order.name)
        .bind(order.order_number)
        .bind(order.email)
        .bind(order.customer_id)
        .bind(order.company_id)
        .bind(order.company_location_id)
        .bind(order.created_at)
        .bind(order.processed_at)
        .bind(order.cancelled_at)
        .bind(order.cancel_reason)
        .bind(order.closed_at)
        .bind(order.financial_status)
        .bind(order.fulfillment_status)
        .bind(order.currency)
        .bind(order.total_price)
        .bind(order.subtotal_price)
        .bind(order.total_tax)
        .bind(order.total_discounts)
        .bind(order.shipping)
        .bind(order.taxes_included)
        .bind(order.tags)
        .bind(order.po_number)
        .bind(order.source_name)
        .bind(order.test)
        .bind(order.address.country_code)
        .bind(order.address.province_code)
        .bind(order.address.zip)
        .bind(order.address.city)
        .bind(version.updated_at)
        .bind(version.digest)
        .bind(order.line_count)
        .bind(event.written_by())
        .fetch_one(&mut *conn)
        .await?;
    let by = event.written_by();
    let lines = &order.lines;
    match won {
        None => {
            let key = Key::Id("orders", order_id);
            return Ok(version::outcome(conn, &event.shop, key, &version, false).await?);
        }
        Some(true) => insert_lines(conn, &event.shop, order_id, lines, &by).await?,
        Some(false) => replace_lines(conn, &event.shop, order_id, lines, &by).await?,
    }
    Ok(Verdict::Applied)
}

/// The lines of a new order: nothing to delete and nothing to conflict with (lines are only
/// ever written after their order row, and removed with it).
async fn insert_lines(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    order_id: i64,
    lines: &Lines,
    written_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO order_lines (shop, order_id, id, position, variant_id, product_id, sku,
                                  quantity, current_quantity, price, total_discount,
                                  written_by)
         SELECT $1, $2, l.id, l.position, l.variant_id, l.product_id, l.sku, l.quantity,
                l.current_quantity, l.price, l.total_discount, $11
         FROM unnest($3::int8[], $4::int8[], $5::int8[], $6::text[], $7::int4[], $8::int4[],
                     $9::text[]::numeric[], $10::text[]::numeric[])
              WITH ORDINALITY
              AS l(id, variant_id, product_id, sku, quantity, current_quantity, price,
                   total_discount, position)",
        shop.as_str(),
        order_id,
        &lines.id,
        &lines.variant_id as _,
        &lines.product_id as _,
        &lines.sku as _,
        &lines.quantity,
        &lines.current_quantity as _,
        &lines.price,
        &lines.total_discount as _,
        written_by,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The line set replacement, run after [`UPSERT`] won: a statement of its own, so its snapshot
/// is taken after the order row lock was granted and sees the lines of a concurrent writer
/// that committed meanwhile (one statement would miss them and leave their extra lines).
async fn replace_lines(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    order_id: i64,
    lines: &Lines,
    written_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH input AS (
             SELECT * FROM unnest($3::int8[], $4::int8[], $5::int8[], $6::text[], $7::int4[],
                                  $8::int4[], $9::text[]::numeric[], $10::text[]::numeric[])
                      WITH ORDINALITY
                      AS l(id, variant_id, product_id, sku, quantity, current_quantity, price,
                           total_discount, position)
         ),
         gone AS (
             DELETE FROM order_lines d
             WHERE d.shop = $1 AND d.order_id = $2 AND d.id <> ALL($3::int8[])
         )
         INSERT INTO order_lines AS t (shop, order_id, id, position, variant_id, product_id, sku,
                                       quantity, current_quantity, price, total_discount,
                                       written_by)
         SELECT $1, $2, l.id, l.position, l.variant_id, l.product_id, l.sku, l.quantity,
                l.current_quantity, l.price, l.total_discount, $11
         FROM input l
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
        shop.as_str(),
        order_id,
        &lines.id,
        &lines.variant_id as _,
        &lines.product_id as _,
        &lines.sku as _,
        &lines.quantity,
        &lines.current_quantity as _,
        &lines.price,
        &lines.total_discount as _,
        written_by,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// `orders/delete`: a final tombstone; the lines are removed.
pub(super) async fn delete(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let lines = Children {
        table: "order_lines",
        parent_column: "order_id",
    };
    tombstone::write(conn, event, "orders", Some(lines)).await
}
