//! `companies/*` and `company_locations/*` (B2B). Their webhooks carry no numeric id, so rows
//! are keyed by the GID (`admin_graphql_api_id`). Deletes write final tombstones.

use std::sync::LazyLock;

use serde::Deserialize;
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::version::{self, Key, Version, NEWER};
use super::{parse, Address, DeletedByGid, HandlerError, InboxEvent, Verdict};

#[derive(Deserialize)]
struct Company {
    admin_graphql_api_id: String,
    #[serde(with = "super::timestamp")]
    updated_at: OffsetDateTime,
    name: Option<String>,
    external_id: Option<String>,
    note: Option<String>,
    #[serde(default, with = "super::timestamp::option")]
    customer_since: Option<OffsetDateTime>,
    #[serde(default, with = "super::timestamp::option")]
    created_at: Option<OffsetDateTime>,
    main_contact_admin_graphql_api_id: Option<String>,
}

#[derive(Deserialize)]
struct CompanyLocation {
    admin_graphql_api_id: String,
    #[serde(with = "super::timestamp")]
    updated_at: OffsetDateTime,
    name: Option<String>,
    external_id: Option<String>,
    #[serde(default, with = "super::timestamp::option")]
    created_at: Option<OffsetDateTime>,
    company: Option<CompanyGid>,
    shipping_address: Option<Address>,
}

#[derive(Deserialize)]
struct CompanyGid {
    admin_graphql_api_id: Option<String>,
}

static UPSERT_COMPANY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO companies AS t (shop, admin_graphql_api_id, name, external_id, note,
                                     customer_since, created_at,
                                     main_contact_admin_graphql_api_id, source_updated_at,
                                     source_digest, written_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (shop, admin_graphql_api_id) DO UPDATE SET
             name = EXCLUDED.name,
             external_id = EXCLUDED.external_id,
             note = EXCLUDED.note,
             customer_since = EXCLUDED.customer_since,
             created_at = EXCLUDED.created_at,
             main_contact_admin_graphql_api_id = EXCLUDED.main_contact_admin_graphql_api_id,
             source_updated_at = EXCLUDED.source_updated_at,
             source_digest = EXCLUDED.source_digest,
             written_by = EXCLUDED.written_by,
             applied_at = now()
         WHERE t.deleted_at IS NULL AND {NEWER}"
    )
});

static UPSERT_LOCATION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO company_locations AS t (shop, admin_graphql_api_id,
                                             company_admin_graphql_api_id, name, external_id,
                                             created_at, shipping_country_code,
                                             shipping_province_code, shipping_zip,
                                             shipping_city, source_updated_at, source_digest,
                                             written_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (shop, admin_graphql_api_id) DO UPDATE SET
             company_admin_graphql_api_id = EXCLUDED.company_admin_graphql_api_id,
             name = EXCLUDED.name,
             external_id = EXCLUDED.external_id,
             created_at = EXCLUDED.created_at,
             shipping_country_code = EXCLUDED.shipping_country_code,
             shipping_province_code = EXCLUDED.shipping_province_code,
             shipping_zip = EXCLUDED.shipping_zip,
             shipping_city = EXCLUDED.shipping_city,
             source_updated_at = EXCLUDED.source_updated_at,
             source_digest = EXCLUDED.source_digest,
             written_by = EXCLUDED.written_by,
             applied_at = now()
         WHERE t.deleted_at IS NULL AND {NEWER}"
    )
});

/// Upserts the company when its version is newer.
pub(super) async fn upsert_company(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let c: Company = parse(event)?;
    let version = Version::of(c.updated_at, &event.payload);
    let written = sqlx::query(UPSERT_COMPANY.as_str())
        .bind(&event.shop)
        .bind(&c.admin_graphql_api_id)
        .bind(c.name)
        .bind(c.external_id)
        .bind(c.note)
        .bind(c.customer_since)
        .bind(c.created_at)
        .bind(c.main_contact_admin_graphql_api_id)
        .bind(version.updated_at)
        .bind(version.digest)
        .bind(event.written_by())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let key = Key::Gid("companies", &c.admin_graphql_api_id);
    Ok(version::outcome(conn, &event.shop, key, &version, written > 0).await?)
}

/// Upserts the company location when its version is newer.
pub(super) async fn upsert_location(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    let l: CompanyLocation = parse(event)?;
    let version = Version::of(l.updated_at, &event.payload);
    let address = l.shipping_address.unwrap_or_default();
    let written = sqlx::query(UPSERT_LOCATION.as_str())
        .bind(&event.shop)
        .bind(&l.admin_graphql_api_id)
        .bind(l.company.and_then(|c| c.admin_graphql_api_id))
        .bind(l.name)
        .bind(l.external_id)
        .bind(l.created_at)
        .bind(address.country_code)
        .bind(address.province_code)
        .bind(address.zip)
        .bind(address.city)
        .bind(version.updated_at)
        .bind(version.digest)
        .bind(event.written_by())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let key = Key::Gid("company_locations", &l.admin_graphql_api_id);
    Ok(version::outcome(conn, &event.shop, key, &version, written > 0).await?)
}

/// `companies/delete`: a final tombstone. The company's locations get their own
/// `company_locations/delete` events.
pub(super) async fn delete_company(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    tombstone(conn, event, "companies").await
}

/// `company_locations/delete`: a final tombstone.
pub(super) async fn delete_location(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    tombstone(conn, event, "company_locations").await
}

/// Writes a tombstone into `table` (one of the two GID-keyed tables).
async fn tombstone(
    conn: &mut PgConnection,
    event: &InboxEvent,
    table: &'static str,
) -> Result<Verdict, HandlerError> {
    let deleted: DeletedByGid = parse(event)?;
    let sql = format!(
        "INSERT INTO {table} AS t (shop, admin_graphql_api_id, deleted_at, written_by)
         VALUES ($1, $2, now(), $3)
         ON CONFLICT (shop, admin_graphql_api_id) DO UPDATE SET deleted_at = now(),
                                                                applied_at = now(),
                                                                written_by = $3
         WHERE t.deleted_at IS NULL"
    );
    let written = sqlx::query(&sql)
        .bind(&event.shop)
        .bind(deleted.admin_graphql_api_id)
        .bind(event.written_by())
        .execute(conn)
        .await?
        .rows_affected();
    Ok(Verdict::from_won(written > 0, || "already deleted".into()))
}
