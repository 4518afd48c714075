//! `products/*`: the product row and its variants.
//!
//! As for orders: the guarded product upsert and, when it wins, the variants replaced as a set
//! in one more statement (variants missing from the payload deleted, the rest upserted from
//! `UNNEST`ed arrays). `products/delete`
//! writes a final tombstone and removes the variants.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::Deserialize;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::money::Money;
use super::tombstone::{self, Children};
use super::version::{self, Key, Version, NEWER};
use super::{invalid, parse, HandlerError, InboxEvent, Verdict};

#[derive(Deserialize)]
struct Product {
    id: i64,
    admin_graphql_api_id: Option<String>,
    #[serde(with = "super::timestamp")]
    updated_at: OffsetDateTime,
    title: Option<String>,
    handle: Option<String>,
    status: Option<String>,
    vendor: Option<String>,
    product_type: Option<String>,
    tags: Option<String>,
    #[serde(default, with = "super::timestamp::option")]
    created_at: Option<OffsetDateTime>,
    #[serde(default, with = "super::timestamp::option")]
    published_at: Option<OffsetDateTime>,
    // Required: an absent list must not be read as "every variant was removed".
    variants: Vec<Variant>,
}

#[derive(Deserialize)]
struct Variant {
    id: i64,
    sku: Option<String>,
    barcode: Option<String>,
    title: Option<String>,
    price: Option<Money>,
    compare_at_price: Option<Money>,
    position: Option<i32>,
    inventory_quantity: Option<i32>,
    inventory_item_id: Option<i64>,
    #[serde(default, with = "super::timestamp::option")]
    updated_at: Option<OffsetDateTime>,
}

/// The guarded product upsert; returns whether this version won (and took the row lock).
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO products AS t (shop, id, admin_graphql_api_id, title, handle, status,
                                    vendor, product_type, tags, created_at, published_at,
                                    source_updated_at, source_digest, written_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (shop, id) DO UPDATE SET
             admin_graphql_api_id = EXCLUDED.admin_graphql_api_id,
             title = EXCLUDED.title,
             handle = EXCLUDED.handle,
             status = EXCLUDED.status,
             vendor = EXCLUDED.vendor,
             product_type = EXCLUDED.product_type,
             tags = EXCLUDED.tags,
             created_at = EXCLUDED.created_at,
             published_at = EXCLUDED.published_at,
             source_updated_at = EXCLUDED.source_updated_at,
             source_digest = EXCLUDED.source_digest,
             written_by = EXCLUDED.written_by,
             applied_at = now()
         WHERE t.deleted_at IS NULL AND {NEWER}"
    )
});

/// Upserts the product and, when its version wins, replaces its variants.
pub(super) async fn upsert(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let product: Product = parse(event)?;
    let version = Version::of(product.updated_at, &event.payload);
    let n = product.variants.len();
    let mut seen = HashSet::with_capacity(n);
    let (mut id, mut sku, mut barcode, mut title) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut price, mut compare_at, mut position, mut quantity, mut item, mut updated) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for v in product.variants {
        if !seen.insert(v.id) {
            return Err(invalid(event, format!("variant id {} appears twice", v.id)));
        }
        id.push(v.id);
        sku.push(v.sku);
        barcode.push(v.barcode);
        title.push(v.title);
        price.push(v.price.map(Money::into_text));
        compare_at.push(v.compare_at_price.map(Money::into_text));
        position.push(v.position);
        quantity.push(v.inventory_quantity);
        item.push(v.inventory_item_id);
        updated.push(v.updated_at);
    }
    let won = sqlx::query(UPSERT.as_str())
        .bind(&event.shop)
        .bind(product.id)
        .bind(product.admin_graphql_api_id)
        .bind(product.title)
        .bind(product.handle)
        .bind(product.status)
        .bind(product.vendor)
        .bind(product.product_type)
        .bind(product.tags)
        .bind(product.created_at)
        .bind(product.published_at)
        .bind(version.updated_at)
        .bind(version.digest)
        .bind(event.written_by())
        .execute(&mut *conn)
        .await?
        .rows_affected()
        > 0;
    if !won {
        let key = Key::Id("products", product.id);
        return Ok(version::outcome(conn, &event.shop, key, &version, false).await?);
    }
    // The variant set replacement, run after [`UPSERT`] won, in a statement of its own so its
    // snapshot sees the variants of a concurrent writer that committed while this one waited for
    // the product row lock.
    sqlx::query!(
        "WITH input AS (
             SELECT * FROM unnest($3::int8[], $4::text[], $5::text[], $6::text[],
                                  $7::text[]::numeric[], $8::text[]::numeric[], $9::int4[],
                                  $10::int4[], $11::int8[], $12::timestamptz[])
                      AS v(id, sku, barcode, title, price, compare_at_price, position,
                           inventory_quantity, inventory_item_id, source_updated_at)
         ),
         gone AS (
             DELETE FROM variants d
             WHERE d.shop = $1 AND d.product_id = $2 AND d.id <> ALL($3::int8[])
         )
         INSERT INTO variants AS t (shop, id, product_id, sku, barcode, title, price,
                                    compare_at_price, position, inventory_quantity,
                                    inventory_item_id, source_updated_at, written_by)
         SELECT $1, v.id, $2, v.sku, v.barcode, v.title, v.price, v.compare_at_price,
                v.position, v.inventory_quantity, v.inventory_item_id, v.source_updated_at, $13
         FROM input v
         ON CONFLICT (shop, id) DO UPDATE SET
             product_id = EXCLUDED.product_id,
             sku = EXCLUDED.sku,
             barcode = EXCLUDED.barcode,
             title = EXCLUDED.title,
             price = EXCLUDED.price,
             compare_at_price = EXCLUDED.compare_at_price,
             position = EXCLUDED.position,
             inventory_quantity = EXCLUDED.inventory_quantity,
             inventory_item_id = EXCLUDED.inventory_item_id,
             source_updated_at = EXCLUDED.source_updated_at,
             written_by = EXCLUDED.written_by",
        event.shop.as_str(),
        product.id,
        &id as _,
        &sku as _,
        &barcode as _,
        &title as _,
        &price as _,
        &compare_at as _,
        &position as _,
        &quantity as _,
        &item as _,
        &updated as _,
        event.written_by(),
    )
    .execute(conn)
    .await?;
    Ok(Verdict::Applied)
}

/// `products/delete`: a final tombstone; the variants are removed.
pub(super) async fn delete(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let variants = Children {
        table: "variants",
        parent_column: "product_id",
    };
    tombstone::write(conn, event, "products", Some(variants)).await
}
