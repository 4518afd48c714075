//! A change made in Salesforce to a record the sync writes, sorted by the ownership map
//! ([`mapping::OWNERSHIP`]).
//!
//! - Salesforce-owned fields (an Account's owner, rating, description…) land in
//!   `salesforce_owned_fields`, so origin knows them without asking.
//! - A Shopify-owned field changed (or the record deleted) by anyone but Wholesail is drift:
//!   reported in `salesforce_drift` and restored by sending the record again through the
//!   outbox (the upsert by external id writes Shopify's values back, or recreates it).
//!
//! A record is the sync's when an outbox row wrote it: `salesforce_outbox.salesforce_id` holds
//! the first record each row saved (an Account, a Contact, a variant's Product2, an Order).

use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use wholesail_salesforce::cdc::{ChangeEvent, ChangeType};
use wholesail_salesforce::Client;
use wholesail_webhook::ShopDomain;

use super::inbound::InboundError;
use super::mapping::{Owner, SObject, OWNERSHIP};
use super::outbox::{self, Object};
use super::quotes;

/// The owner of `field` of `sobject`; a lookup (`AccountId`) has its relationship's owner
/// (`Account`). `None`: a field neither side maps (system fields).
fn owner(sobject: &str, field: &str) -> Option<Owner> {
    let relationship = field.strip_suffix("Id");
    OWNERSHIP
        .iter()
        .find(|(o, f, _)| *o == sobject && (*f == field || Some(*f) == relationship))
        .map(|(_, _, owner)| *owner)
}

/// The outbox object whose rows write records of `sobject`.
fn object_of(sobject: &str) -> Option<Object> {
    Some(match sobject {
        "Account" => Object::Account,
        "Contact" => Object::Contact,
        "Product2" => Object::Product,
        "Order" => Object::Order,
        _ => return None,
    })
}

/// Applies `event` (not one of Wholesail's own writes) in the caller's transaction.
pub async fn apply(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    event: &ChangeEvent,
) -> Result<(), sqlx::Error> {
    let sobject = event.entity.as_str();
    let (owned, drifted): (Vec<&String>, Vec<&String>) = match event.change_type {
        ChangeType::Update => event
            .changed_fields
            .iter()
            .filter(|f| owner(sobject, f).is_some())
            .partition(|f| owner(sobject, f) == Some(Owner::Salesforce)),
        _ => (Vec::new(), Vec::new()),
    };
    let deleted = event.change_type == ChangeType::Delete;
    if owned.is_empty() && drifted.is_empty() && !deleted {
        return Ok(());
    }
    let owned_values: Map<String, Value> = owned
        .iter()
        .map(|f| {
            let value = event.fields.get(f.as_str()).cloned().unwrap_or(Value::Null);
            ((*f).clone(), value)
        })
        .collect();
    for id in &event.record_ids {
        if !owned_values.is_empty() {
            land(
                &mut *conn,
                shop,
                sobject,
                id,
                &owned_values,
                event.commit_timestamp,
                &written_by(event),
            )
            .await?;
        }
        if drifted.is_empty() && !deleted {
            continue;
        }
        let fields: Vec<String> = match deleted {
            true => vec!["(deleted)".into()],
            false => drifted.iter().map(|f| (*f).clone()).collect(),
        };
        drift(&mut *conn, shop, sobject, id, &fields, event).await?;
    }
    Ok(())
}

/// What rows a change event writes record in `written_by`: `salesforce:<transactionKey>`
/// (the replay id, hex, when the event has no transaction key).
pub fn written_by(event: &ChangeEvent) -> String {
    if event.transaction_key.is_empty() {
        let hex: String = event.replay_id.iter().map(|b| format!("{b:02x}")).collect();
        format!("salesforce:{hex}")
    } else {
        format!("salesforce:{}", event.transaction_key)
    }
}

/// Merges `values` into the stored Salesforce-owned fields of record `id`.
async fn land(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    sobject: &str,
    id: &str,
    values: &Map<String, Value>,
    changed_at: OffsetDateTime,
    written_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO salesforce_owned_fields (shop, object, salesforce_id, fields, changed_at,
                                              written_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (shop, object, salesforce_id) DO UPDATE
         SET fields = salesforce_owned_fields.fields || excluded.fields,
             changed_at = greatest(salesforce_owned_fields.changed_at, excluded.changed_at),
             written_by = excluded.written_by",
        shop.as_str(),
        sobject,
        id,
        Value::Object(values.clone()),
        changed_at,
        written_by,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Reports drift on record `id` and, when an outbox row wrote it, sends that record again.
async fn drift(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    sobject: &str,
    id: &str,
    fields: &[String],
    event: &ChangeEvent,
) -> Result<(), sqlx::Error> {
    let object = object_of(sobject);
    let record_key = match object {
        Some(object) => outbox::written_record(&mut *conn, shop, object, id).await?,
        None => None,
    };
    let restore = object.zip(record_key.as_deref());
    if let Some((object, key)) = restore {
        outbox::enqueue_record(&mut *conn, shop, object, key, None).await?;
    }
    if record_key.is_none() && object.is_some() {
        // Not a record the sync wrote: nothing to restore, nothing to report.
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO salesforce_drift
             (shop, object, salesforce_id, record_key, fields, changed_by, changed_at,
              restore_enqueued)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        shop.as_str(),
        sobject,
        id,
        record_key,
        fields,
        event.commit_user,
        event.commit_timestamp,
        restore.is_some(),
    )
    .execute(conn)
    .await?;
    metrics::counter!("wholesail_salesforce_drift_total", "object" => sobject.to_owned())
        .increment(1);
    tracing::warn!(shop = %shop, object = sobject, salesforce_id = id, fields = ?fields,
        user = %event.commit_user, restored = restore.is_some(),
        "a Shopify-owned field was changed in Salesforce");
    Ok(())
}

/// Reads with SOQL the Salesforce-owned fields of the sync's records modified since `since`
/// and lands them (after an expired replay id). Returns how many records were read. Drift in
/// the gap is not detected here: reconciliation compares the records.
pub async fn catch_up(
    pool: &PgPool,
    client: &Client,
    shop: &ShopDomain,
    since: OffsetDateTime,
) -> Result<usize, InboundError> {
    let since_literal = quotes::soql_datetime(since)?;
    // No change event to name: the rows say which catch-up wrote them.
    let catch_up_writer = format!("salesforce:catchup:{}", since.unix_timestamp());
    let mut read = 0;
    for sobject in SObject::ALL {
        let name = sobject.name();
        let owned: Vec<&str> = OWNERSHIP
            .iter()
            .filter(|(o, _, owner)| *o == name && *owner == Owner::Salesforce)
            .map(|(_, f, _)| *f)
            .collect();
        if owned.is_empty() {
            continue;
        }
        let rows: Vec<Map<String, Value>> = client
            .query_all(format!(
                "SELECT Id, LastModifiedDate, {} FROM {name}
                 WHERE LastModifiedDate >= {since_literal} AND {} != null",
                owned.join(", "),
                sobject.external_id()
            ))
            .await?;
        for row in rows {
            let Some(id) = row.get("Id").and_then(Value::as_str) else {
                continue;
            };
            let values: Map<String, Value> = owned
                .iter()
                .map(|f| ((*f).to_owned(), row.get(*f).cloned().unwrap_or(Value::Null)))
                .collect();
            let mut conn = pool.acquire().await?;
            land(
                &mut conn,
                shop,
                name,
                id,
                &values,
                OffsetDateTime::now_utc(),
                &catch_up_writer,
            )
            .await?;
            read += 1;
        }
    }
    Ok(read)
}
