//! The storm's backlog drained twice from the same rows: by origin's workers, and by a raw
//! client with no guards (the reference of #17 part 5).

use std::time::Instant;

use anyhow::Result;
use sqlx::PgPool;

/// Rows a raw loop claims at once: the workers' `worker.batch_size`.
pub const BATCH: i64 = 50;

/// Puts every inbox row back to `pending` as intake left it (no subject, no outcome, no
/// attempts) and empties the tables the order handlers write, so a drain starts from the
/// storm's deliveries with nothing applied yet.
pub async fn reset(pool: &PgPool) -> Result<()> {
    sqlx::query(
        "UPDATE inbox SET status = 'pending', run_at = now(), attempts = 0, locked_by = NULL,
                          locked_until = NULL, processed_at = NULL, processed_count = 0,
                          outcome = NULL, outcome_reason = NULL, subject = NULL,
                          last_error = NULL",
    )
    .execute(pool)
    .await?;
    sqlx::query("TRUNCATE orders, order_lines")
        .execute(pool)
        .await?;
    sqlx::query("VACUUM ANALYZE inbox").execute(pool).await?;
    sqlx::query("VACUUM ANALYZE orders").execute(pool).await?;
    sqlx::query("VACUUM ANALYZE order_lines")
        .execute(pool)
        .await?;
    Ok(())
}

/// The reference: `loops` connections, each repeating one transaction that claims up to
/// [`BATCH`] due rows with `FOR UPDATE SKIP LOCKED`, upserts their orders (the columns the
/// handler writes, newest payload of an order within the batch, no version guard), replaces
/// their lines, and marks the rows done. Returns (rows drained, seconds).
pub async fn raw(pool: &PgPool, loops: usize) -> Result<(u64, f64)> {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..loops {
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut drained = 0u64;
            loop {
                let n = raw_batch(&pool).await?;
                if n == 0 {
                    return Ok::<u64, anyhow::Error>(drained);
                }
                drained += n;
            }
        });
    }
    let mut drained = 0;
    while let Some(n) = tasks.join_next().await {
        drained += n??;
    }
    Ok((drained, t.elapsed().as_secs_f64()))
}

/// One raw transaction; returns the rows it marked done.
async fn raw_batch(pool: &PgPool) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE inbox SET status = 'done', processed_at = clock_timestamp(),
                          processed_count = processed_count + 1, outcome = 'applied'
         WHERE id IN (SELECT id FROM inbox WHERE status = 'pending' AND run_at <= now()
                      ORDER BY run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    // Orders in key order, so two loops lock shared orders in one order.
    sqlx::query(
        "INSERT INTO orders AS t (
             shop, id, admin_graphql_api_id, name, order_number, email, customer_id,
             company_id, company_location_id, created_at, processed_at, cancelled_at,
             cancel_reason, closed_at, financial_status, fulfillment_status, currency,
             total_price, subtotal_price, total_tax, total_discounts, shipping_price,
             taxes_included, tags, po_number, source_name, test, shipping_country_code,
             shipping_province_code, shipping_zip, shipping_city, line_count,
             source_updated_at, source_digest, written_by)
         SELECT shop, (p->>'id')::int8, p->>'admin_graphql_api_id', p->>'name',
                (p->>'order_number')::int8, p->>'email', (p->'customer'->>'id')::int8,
                (p->'company'->>'id')::int8, (p->'company'->>'location_id')::int8,
                (p->>'created_at')::timestamptz, (p->>'processed_at')::timestamptz,
                (p->>'cancelled_at')::timestamptz, p->>'cancel_reason',
                (p->>'closed_at')::timestamptz, p->>'financial_status',
                p->>'fulfillment_status', p->>'currency', (p->>'total_price')::numeric,
                (p->>'subtotal_price')::numeric, (p->>'total_tax')::numeric,
                (p->>'total_discounts')::numeric,
                (SELECT sum((s->>'price')::numeric) FROM jsonb_array_elements(
                     coalesce(p->'shipping_lines', '[]')) s),
                (p->>'taxes_included')::bool, p->>'tags', p->>'po_number', p->>'source_name',
                (p->>'test')::bool, p->'shipping_address'->>'country_code',
                p->'shipping_address'->>'province_code', p->'shipping_address'->>'zip',
                p->'shipping_address'->>'city', jsonb_array_length(p->'line_items'),
                (p->>'updated_at')::timestamptz, 0, 'inbox:' || inbox_id
         FROM (SELECT DISTINCT ON (shop, (payload->>'id')::int8)
                      shop, payload AS p, id AS inbox_id
               FROM inbox WHERE id = ANY($1)
               ORDER BY shop, (payload->>'id')::int8, (payload->>'updated_at')::timestamptz DESC) o
         ORDER BY shop, (p->>'id')::int8
         ON CONFLICT (shop, id) DO UPDATE SET
             admin_graphql_api_id = EXCLUDED.admin_graphql_api_id, name = EXCLUDED.name,
             order_number = EXCLUDED.order_number, email = EXCLUDED.email,
             customer_id = EXCLUDED.customer_id, company_id = EXCLUDED.company_id,
             company_location_id = EXCLUDED.company_location_id,
             created_at = EXCLUDED.created_at, processed_at = EXCLUDED.processed_at,
             cancelled_at = EXCLUDED.cancelled_at, cancel_reason = EXCLUDED.cancel_reason,
             closed_at = EXCLUDED.closed_at, financial_status = EXCLUDED.financial_status,
             fulfillment_status = EXCLUDED.fulfillment_status, currency = EXCLUDED.currency,
             total_price = EXCLUDED.total_price, subtotal_price = EXCLUDED.subtotal_price,
             total_tax = EXCLUDED.total_tax, total_discounts = EXCLUDED.total_discounts,
             shipping_price = EXCLUDED.shipping_price,
             taxes_included = EXCLUDED.taxes_included, tags = EXCLUDED.tags,
             po_number = EXCLUDED.po_number, source_name = EXCLUDED.source_name,
             test = EXCLUDED.test, shipping_country_code = EXCLUDED.shipping_country_code,
             shipping_province_code = EXCLUDED.shipping_province_code,
             shipping_zip = EXCLUDED.shipping_zip, shipping_city = EXCLUDED.shipping_city,
             line_count = EXCLUDED.line_count, source_updated_at = EXCLUDED.source_updated_at,
             written_by = EXCLUDED.written_by, applied_at = now()",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    // The lines as a set: the batch's orders' lines deleted, the newest payload's inserted.
    sqlx::query(
        "DELETE FROM order_lines l USING inbox i
         WHERE i.id = ANY($1) AND l.shop = i.shop AND l.order_id = (i.payload->>'id')::int8",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO order_lines (shop, order_id, id, position, variant_id, product_id, sku,
                                  quantity, current_quantity, price, total_discount, written_by)
         SELECT o.shop, (o.p->>'id')::int8, (l.v->>'id')::int8, l.n, (l.v->>'variant_id')::int8,
                (l.v->>'product_id')::int8, l.v->>'sku', (l.v->>'quantity')::int4,
                (l.v->>'current_quantity')::int4, (l.v->>'price')::numeric,
                (l.v->>'total_discount')::numeric, 'inbox:' || o.inbox_id
         FROM (SELECT DISTINCT ON (shop, (payload->>'id')::int8)
                      shop, payload AS p, id AS inbox_id
               FROM inbox WHERE id = ANY($1)
               ORDER BY shop, (payload->>'id')::int8, (payload->>'updated_at')::timestamptz DESC) o
         CROSS JOIN LATERAL jsonb_array_elements(o.p->'line_items') WITH ORDINALITY AS l(v, n)",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}
