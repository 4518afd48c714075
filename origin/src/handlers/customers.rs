//! `customers/*`: the customer row.
//!
//! A redacted customer (`customers/redact`) keeps email, names and phone NULL whatever version
//! arrives later; `customers/delete` writes a final tombstone.

use std::sync::LazyLock;

use serde::Deserialize;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::tombstone;
use super::version::{self, Key, Version, NEWER};
use super::{parse, HandlerError, InboxEvent, Verdict};

#[derive(Deserialize)]
struct Customer {
    id: i64,
    admin_graphql_api_id: Option<String>,
    #[serde(with = "super::timestamp")]
    updated_at: OffsetDateTime,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    state: Option<String>,
    tags: Option<String>,
    tax_exempt: Option<bool>,
    #[serde(default, with = "super::timestamp::option")]
    created_at: Option<OffsetDateTime>,
}

static UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO customers AS t (shop, id, admin_graphql_api_id, email, first_name,
                                     last_name, phone, state, tags, tax_exempt, created_at,
                                     source_updated_at, source_digest, written_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (shop, id) DO UPDATE SET
             admin_graphql_api_id = EXCLUDED.admin_graphql_api_id,
             email = CASE WHEN t.redacted_at IS NULL THEN EXCLUDED.email END,
             first_name = CASE WHEN t.redacted_at IS NULL THEN EXCLUDED.first_name END,
             last_name = CASE WHEN t.redacted_at IS NULL THEN EXCLUDED.last_name END,
             phone = CASE WHEN t.redacted_at IS NULL THEN EXCLUDED.phone END,
             state = EXCLUDED.state,
             tags = EXCLUDED.tags,
             tax_exempt = EXCLUDED.tax_exempt,
             created_at = EXCLUDED.created_at,
             source_updated_at = EXCLUDED.source_updated_at,
             source_digest = EXCLUDED.source_digest,
             written_by = EXCLUDED.written_by,
             applied_at = now()
         WHERE t.deleted_at IS NULL AND {NEWER}"
    )
});

/// Upserts the customer when its version is newer.
pub(super) async fn upsert(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let c: Customer = parse(event)?;
    let version = Version::of(c.updated_at, &event.payload);
    let written = sqlx::query(UPSERT.as_str())
        .bind(&event.shop)
        .bind(c.id)
        .bind(c.admin_graphql_api_id)
        .bind(c.email)
        .bind(c.first_name)
        .bind(c.last_name)
        .bind(c.phone)
        .bind(c.state)
        .bind(c.tags)
        .bind(c.tax_exempt)
        .bind(c.created_at)
        .bind(version.updated_at)
        .bind(version.digest)
        .bind(event.written_by())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let key = Key::Id("customers", c.id);
    Ok(version::outcome(conn, &event.shop, key, &version, written > 0).await?)
}

/// `customers/delete`: a final tombstone (the personal data goes with `customers/redact`,
/// which Shopify sends for deleted customers).
pub(super) async fn delete(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    tombstone::write(conn, event, "customers", None).await
}
