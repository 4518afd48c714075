//! Finding the records a query names, with what their timelines are built from.
//!
//! Every operational key leads with the shop, so a lookup without a shop first lists the
//! table's shops with a loose index scan (one index probe per shop) and then reads each
//! shop's rows by key: no statement scans a table.

use sqlx::PgPool;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use super::query::{GidKind, Query};

/// The most records one lookup returns.
const MAX_RECORDS: i64 = 20;

/// A record found, with the keys its timeline is read by.
#[derive(Debug)]
pub(super) struct Found {
    pub shop: String,
    pub kind: String,
    pub gid: String,
    pub label: Option<String>,
    pub written_by: Option<String>,
    pub applied_at: Option<OffsetDateTime>,
    pub source_updated_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
    /// The `inbox.subject`s of the events about it.
    pub subjects: Vec<String>,
    /// Its Salesforce outbox rows' object and record key.
    pub outbox_object: Option<String>,
    pub outbox_key: Option<String>,
    /// The buyers (company location GIDs) whose rules push concerns it.
    pub buyers: Vec<String>,
    /// The reconciliation scope and `reconcile_findings.record` values about it, and a
    /// `record LIKE` pattern (stock findings: `SKU@location`).
    pub finding_scope: Option<String>,
    pub findings: Vec<String>,
    pub finding_pattern: Option<String>,
}

/// The records `query` names in `shop` (or every shop), at most [`MAX_RECORDS`].
pub(super) async fn find(
    pool: &PgPool,
    shop: Option<&ShopDomain>,
    query: &Query,
) -> Result<Vec<Found>, sqlx::Error> {
    let shop = shop.map(ShopDomain::as_str);
    match query {
        Query::Gid { kind, gid, id } => match kind {
            GidKind::Order => orders(pool, shop, Some(*id), None).await,
            GidKind::Customer => customers(pool, shop, Some(*id), None).await,
            GidKind::Product => products(pool, shop, *id).await,
            GidKind::ProductVariant => variants(pool, shop, Some(*id), None).await,
            GidKind::Company => companies(pool, shop, gid).await,
            GidKind::CompanyLocation => locations(pool, shop, gid).await,
        },
        Query::OrderName { name } => orders(pool, shop, None, Some(name)).await,
        Query::Email { email } => customers(pool, shop, None, Some(email)).await,
        Query::Sku { sku } => variants(pool, shop, None, Some(sku)).await,
    }
}

async fn orders(
    pool: &PgPool,
    shop: Option<&str>,
    id: Option<i64>,
    name: Option<&str>,
) -> Result<Vec<Found>, sqlx::Error> {
    sqlx::query_as!(
        Found,
        r#"WITH RECURSIVE s(shop) AS (
             (SELECT shop FROM orders WHERE $1::text IS NULL ORDER BY shop LIMIT 1)
             UNION ALL
             SELECT (SELECT o.shop FROM orders o WHERE o.shop > s.shop ORDER BY o.shop LIMIT 1)
             FROM s WHERE s.shop IS NOT NULL
         ),
         shops AS (SELECT shop FROM s WHERE shop IS NOT NULL
                   UNION ALL SELECT $1::text WHERE $1::text IS NOT NULL)
         SELECT o.shop AS "shop!", 'order' AS "kind!",
                'gid://shopify/Order/' || o.id AS "gid!", o.name AS label, o.written_by,
                o.applied_at AS "applied_at?", o.source_updated_at, o.deleted_at,
                ARRAY['gid://shopify/Order/' || o.id] AS "subjects!",
                'order' AS outbox_object, o.id::text AS outbox_key,
                CASE WHEN o.company_location_id IS NULL THEN '{}'::text[]
                     ELSE ARRAY['gid://shopify/CompanyLocation/' || o.company_location_id]
                END AS "buyers!",
                'orders' AS finding_scope, ARRAY[o.id::text] AS "findings!",
                NULL::text AS finding_pattern
         FROM orders o
         WHERE o.shop IN (SELECT shop FROM shops) AND (o.id = $2 OR o.name = $3)
         ORDER BY o.shop, o.id LIMIT $4"#,
        shop,
        id,
        name,
        MAX_RECORDS,
    )
    .fetch_all(pool)
    .await
}

async fn customers(
    pool: &PgPool,
    shop: Option<&str>,
    id: Option<i64>,
    email: Option<&str>,
) -> Result<Vec<Found>, sqlx::Error> {
    sqlx::query_as!(
        Found,
        r#"WITH RECURSIVE s(shop) AS (
             (SELECT shop FROM customers WHERE $1::text IS NULL ORDER BY shop LIMIT 1)
             UNION ALL
             SELECT (SELECT c.shop FROM customers c WHERE c.shop > s.shop
                     ORDER BY c.shop LIMIT 1)
             FROM s WHERE s.shop IS NOT NULL
         ),
         shops AS (SELECT shop FROM s WHERE shop IS NOT NULL
                   UNION ALL SELECT $1::text WHERE $1::text IS NOT NULL)
         SELECT c.shop AS "shop!", 'customer' AS "kind!",
                'gid://shopify/Customer/' || c.id AS "gid!", c.email AS label, c.written_by,
                c.applied_at AS "applied_at?", c.source_updated_at, c.deleted_at,
                ARRAY['gid://shopify/Customer/' || c.id] AS "subjects!",
                'contact' AS outbox_object, c.id::text AS outbox_key,
                '{}'::text[] AS "buyers!",
                NULL::text AS finding_scope, '{}'::text[] AS "findings!",
                NULL::text AS finding_pattern
         FROM customers c
         WHERE c.shop IN (SELECT shop FROM shops) AND (c.id = $2 OR lower(c.email) = $3)
         ORDER BY c.shop, c.id LIMIT $4"#,
        shop,
        id,
        email,
        MAX_RECORDS,
    )
    .fetch_all(pool)
    .await
}

async fn products(pool: &PgPool, shop: Option<&str>, id: i64) -> Result<Vec<Found>, sqlx::Error> {
    sqlx::query_as!(
        Found,
        r#"WITH RECURSIVE s(shop) AS (
             (SELECT shop FROM products WHERE $1::text IS NULL ORDER BY shop LIMIT 1)
             UNION ALL
             SELECT (SELECT p.shop FROM products p WHERE p.shop > s.shop
                     ORDER BY p.shop LIMIT 1)
             FROM s WHERE s.shop IS NOT NULL
         ),
         shops AS (SELECT shop FROM s WHERE shop IS NOT NULL
                   UNION ALL SELECT $1::text WHERE $1::text IS NOT NULL)
         SELECT p.shop AS "shop!", 'product' AS "kind!",
                'gid://shopify/Product/' || p.id AS "gid!", p.title AS label, p.written_by,
                p.applied_at AS "applied_at?", p.source_updated_at, p.deleted_at,
                ARRAY['gid://shopify/Product/' || p.id] AS "subjects!",
                'product' AS outbox_object, p.id::text AS outbox_key,
                '{}'::text[] AS "buyers!",
                'catalog' AS finding_scope, ARRAY[p.id::text] AS "findings!",
                NULL::text AS finding_pattern
         FROM products p
         WHERE p.shop IN (SELECT shop FROM shops) AND p.id = $2
         ORDER BY p.shop LIMIT $3"#,
        shop,
        id,
        MAX_RECORDS,
    )
    .fetch_all(pool)
    .await
}

/// Variants by id or SKU; their events are their product's and their inventory item's, their
/// stock findings `SKU@location`.
async fn variants(
    pool: &PgPool,
    shop: Option<&str>,
    id: Option<i64>,
    sku: Option<&str>,
) -> Result<Vec<Found>, sqlx::Error> {
    sqlx::query_as!(
        Found,
        r#"WITH RECURSIVE s(shop) AS (
             (SELECT shop FROM variants WHERE $1::text IS NULL ORDER BY shop LIMIT 1)
             UNION ALL
             SELECT (SELECT v.shop FROM variants v WHERE v.shop > s.shop
                     ORDER BY v.shop LIMIT 1)
             FROM s WHERE s.shop IS NOT NULL
         ),
         shops AS (SELECT shop FROM s WHERE shop IS NOT NULL
                   UNION ALL SELECT $1::text WHERE $1::text IS NOT NULL)
         SELECT v.shop AS "shop!", 'variant' AS "kind!",
                'gid://shopify/ProductVariant/' || v.id AS "gid!", v.sku AS label,
                v.written_by, p.applied_at AS "applied_at?", v.source_updated_at,
                p.deleted_at AS "deleted_at?",
                array_remove(ARRAY['gid://shopify/Product/' || v.product_id,
                                   'gid://shopify/InventoryItem/' || v.inventory_item_id],
                             NULL) AS "subjects!",
                'product' AS outbox_object, v.product_id::text AS outbox_key,
                '{}'::text[] AS "buyers!",
                'catalog' AS finding_scope,
                ARRAY[v.id::text, v.product_id::text] AS "findings!",
                replace(replace(replace(v.sku, '\', '\\'), '%', '\%'), '_', '\_') || '@%'
                    AS finding_pattern
         FROM variants v
         LEFT JOIN products p ON p.shop = v.shop AND p.id = v.product_id
         WHERE v.shop IN (SELECT shop FROM shops) AND (v.id = $2 OR v.sku = $3)
         ORDER BY v.shop, v.id LIMIT $4"#,
        shop,
        id,
        sku,
        MAX_RECORDS,
    )
    .fetch_all(pool)
    .await
}

/// A company; its buyers are its locations.
async fn companies(
    pool: &PgPool,
    shop: Option<&str>,
    gid: &str,
) -> Result<Vec<Found>, sqlx::Error> {
    sqlx::query_as!(
        Found,
        r#"WITH RECURSIVE s(shop) AS (
             (SELECT shop FROM companies WHERE $1::text IS NULL ORDER BY shop LIMIT 1)
             UNION ALL
             SELECT (SELECT c.shop FROM companies c WHERE c.shop > s.shop
                     ORDER BY c.shop LIMIT 1)
             FROM s WHERE s.shop IS NOT NULL
         ),
         shops AS (SELECT shop FROM s WHERE shop IS NOT NULL
                   UNION ALL SELECT $1::text WHERE $1::text IS NOT NULL)
         SELECT c.shop AS "shop!", 'company' AS "kind!", c.admin_graphql_api_id AS "gid!",
                c.name AS label, c.written_by, c.applied_at AS "applied_at?",
                c.source_updated_at, c.deleted_at,
                ARRAY[c.admin_graphql_api_id] AS "subjects!",
                'account' AS outbox_object, c.admin_graphql_api_id AS outbox_key,
                ARRAY(SELECT l.admin_graphql_api_id FROM company_locations l
                      WHERE l.shop = c.shop
                        AND l.company_admin_graphql_api_id = c.admin_graphql_api_id
                      ORDER BY 1 LIMIT 100) AS "buyers!",
                NULL::text AS finding_scope, '{}'::text[] AS "findings!",
                NULL::text AS finding_pattern
         FROM companies c
         WHERE c.shop IN (SELECT shop FROM shops) AND c.admin_graphql_api_id = $2
         ORDER BY c.shop LIMIT $3"#,
        shop,
        gid,
        MAX_RECORDS,
    )
    .fetch_all(pool)
    .await
}

/// A company location: the buyer itself; its Salesforce record is its company's Account.
async fn locations(
    pool: &PgPool,
    shop: Option<&str>,
    gid: &str,
) -> Result<Vec<Found>, sqlx::Error> {
    sqlx::query_as!(
        Found,
        r#"WITH RECURSIVE s(shop) AS (
             (SELECT shop FROM company_locations WHERE $1::text IS NULL ORDER BY shop LIMIT 1)
             UNION ALL
             SELECT (SELECT l.shop FROM company_locations l WHERE l.shop > s.shop
                     ORDER BY l.shop LIMIT 1)
             FROM s WHERE s.shop IS NOT NULL
         ),
         shops AS (SELECT shop FROM s WHERE shop IS NOT NULL
                   UNION ALL SELECT $1::text WHERE $1::text IS NOT NULL)
         SELECT l.shop AS "shop!", 'company_location' AS "kind!",
                l.admin_graphql_api_id AS "gid!", l.name AS label, l.written_by,
                l.applied_at AS "applied_at?", l.source_updated_at, l.deleted_at,
                ARRAY[l.admin_graphql_api_id] AS "subjects!",
                'account' AS outbox_object, l.company_admin_graphql_api_id AS outbox_key,
                ARRAY[l.admin_graphql_api_id] AS "buyers!",
                NULL::text AS finding_scope, '{}'::text[] AS "findings!",
                NULL::text AS finding_pattern
         FROM company_locations l
         WHERE l.shop IN (SELECT shop FROM shops) AND l.admin_graphql_api_id = $2
         ORDER BY l.shop LIMIT $3"#,
        shop,
        gid,
        MAX_RECORDS,
    )
    .fetch_all(pool)
    .await
}
