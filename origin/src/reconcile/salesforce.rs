//! Salesforce records against what the sync sends. Change Data Capture reports edits made in
//! Salesforce (`salesforce::ownership`), but not those whose events were lost (a subscriber
//! down past the 72 h retention, an object without Change Data Capture), nor a change the
//! outbox never carried. A run looks at one `SystemModstamp` / `updated_at` window:
//!
//! - **stale**: the records the sync writes (Account, Contact, Product2, PricebookEntry,
//!   Order, OrderItem) modified in the window, read with SOQL (external id and Shopify-owned
//!   fields, relationships by their parent's external id), against the record
//!   `salesforce::mapping` builds from PostgreSQL now: what the outbox sends. A difference
//!   is `salesforce_stale`, naming the fields (never their values: they may be personal
//!   data);
//! - **missing**: the records the outbox wrote (its done rows' Salesforce ids, changed in the
//!   window) that a query by Id no longer returns: `salesforce_missing`;
//! - **never sent**: B2B orders updated in the window and applied since the shop was
//!   connected that never had an outbox row: `salesforce_never_sent` (an order whose row is
//!   dead is in the dead letters, with Salesforce's reason, and is left there).
//!
//! Each finding is healed by enqueueing its Shopify record (live lane; an order with the
//! catalog products of its lines that never had a row), unless the run reports only.
//!
//! **No false positives with live traffic.** A record is compared only when it is settled:
//! no outbox row pending or in flight, and its latest row done before the Salesforce read
//! began. Settlement and mapping are read in one snapshot (`REPEATABLE READ`), so a change
//! committing meanwhile is seen with its pending row or not at all. Salesforce-owned fields
//! are never read; create-only fields (an item's order, an entry's product) are not compared.
//!
//! The comparison is with what the sync would send now, not a stored copy of what it sent: a
//! field derived from rows whose change does not enqueue the record (an Account's email
//! domain key from the company's orders, a Contact's Account from its buyer's latest order)
//! differs until the record is sent again, and is reported and healed as stale.
//!
//! Each query page is one API call, counted in the run's `cost_used`. Before each, the org's
//! usage is checked against the sync's reserve (`[salesforce.sync] reserve`): at the reserve
//! the run stops, its findings so far and the reason recorded.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde_json::{json, Map, Value};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use wholesail_salesforce::query::QueryPages;
use wholesail_salesforce::Client;
use wholesail_webhook::ShopDomain;

use super::runs::{self, Counts, Mode, Scope, Trigger, Window};
use crate::salesforce::mapping::{
    self, MappingError, OrgContext, Owner, SObject, CREATE_ONLY, OWNERSHIP,
};
use crate::salesforce::outbox::{self, Object};
use crate::salesforce::quotes::soql_datetime;
use crate::salesforce::runner::{self, Settings};

/// The window a run compares when none is given: the last 48 hours.
pub const DEFAULT_LOOKBACK: time::Duration = time::Duration::hours(48);

/// Ids in one query by Id: 200 quoted 18-character ids keep the URL far below Salesforce's
/// 16,384 bytes once encoded.
const IDS_PER_QUERY: usize = 200;

/// A SOQL row.
type Row = Map<String, Value>;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SalesforceReconcileError {
    /// Reading origin's tables or recording the run.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Reading Salesforce.
    #[error("reading Salesforce: {0}")]
    Salesforce(#[from] wholesail_salesforce::Error),
    /// The org's API usage reached the reserve kept for its other integrations.
    #[error("the org's API usage reached the reserve kept for its other integrations")]
    Reserve,
    /// The shop was never connected to Salesforce (`[[salesforce.orgs]]`).
    #[error("{0} is not connected to Salesforce")]
    NotConnected(ShopDomain),
}

/// Compares `shop`'s Salesforce records through `client` with what the outbox sends over
/// `window`, heals in [`Mode::Heal`], stops at `settings`' API reserve, and records the run;
/// its id and counts (`compared`: records compared, ids checked and orders looked at;
/// `missing`: missing and never sent; `cost_used`: Salesforce API calls).
pub async fn reconcile(
    pool: &PgPool,
    client: &Client,
    settings: &Settings,
    shop: &ShopDomain,
    window: Window,
    mode: Mode,
    trigger: Trigger,
) -> Result<(i64, Counts), SalesforceReconcileError> {
    if !outbox::is_connected(&mut *pool.acquire().await?, shop).await? {
        return Err(SalesforceReconcileError::NotConnected(shop.clone()));
    }
    let started = Instant::now();
    let run = runs::start(pool, shop, Scope::Salesforce, trigger, mode, window).await?;
    let mut pass = Pass {
        pool,
        client,
        settings,
        shop,
        window,
        counts: Counts::default(),
        found: Vec::new(),
    };
    let compared = pass.compare().await;
    // What was found before a stop is recorded (and healed) all the same.
    let recorded = pass.record(run, mode).await;
    let outcome = compared.and(recorded.map_err(Into::into));
    let error = outcome.as_ref().err().map(ToString::to_string);
    runs::finish(pool, shop, run, &pass.counts, error.as_deref()).await?;
    let label = match &error {
        None => "finished",
        Some(_) => "error",
    };
    metrics::counter!("wholesail_reconcile_runs_total", "scope" => "salesforce", "outcome" => label)
        .increment(1);
    metrics::histogram!("wholesail_reconcile_run_seconds", "scope" => "salesforce")
        .record(started.elapsed().as_secs_f64());
    outcome.map(|()| (run, pass.counts))
}

/// One difference, recorded once the comparison is over (so that healing one record does not
/// hide another of the same row from the rest of the run).
struct Found {
    kind: &'static str,
    object: Object,
    key: String,
    detail: Value,
}

/// A run in progress.
struct Pass<'a> {
    pool: &'a PgPool,
    client: &'a Client,
    settings: &'a Settings,
    shop: &'a ShopDomain,
    window: Window,
    counts: Counts,
    found: Vec<Found>,
}

impl Pass<'_> {
    /// Stale records, then missing ones, then orders never sent.
    async fn compare(&mut self) -> Result<(), SalesforceReconcileError> {
        self.stale().await?;
        self.missing().await?;
        self.never_sent().await?;
        Ok(())
    }

    /// The next page of `pages` (one API call), unless the org's usage reached the reserve.
    async fn next_page(
        &mut self,
        pages: &mut QueryPages<Row>,
    ) -> Result<Option<Vec<Row>>, SalesforceReconcileError> {
        if runner::reserve_reached(self.client, self.settings).await {
            return Err(SalesforceReconcileError::Reserve);
        }
        let page = pages.next_page().await?;
        self.counts.cost_used += i64::from(page.is_some());
        Ok(page)
    }

    /// Every object's records modified in the window against what mapping builds now.
    async fn stale(&mut self) -> Result<(), SalesforceReconcileError> {
        if runner::reserve_reached(self.client, self.settings).await {
            return Err(SalesforceReconcileError::Reserve);
        }
        let book = runner::standard_pricebook(self.client).await?;
        self.counts.cost_used += 1;
        let mut window = String::new();
        if let Some(start) = self.window.start {
            window += &format!(" AND SystemModstamp >= {}", soql_datetime(start)?);
        }
        if let Some(end) = self.window.end {
            window += &format!(" AND SystemModstamp < {}", soql_datetime(end)?);
        }
        for sobject in SObject::ALL {
            let select: Vec<String> = compared_fields(sobject)
                .map(|(field, parent)| match parent {
                    Some(external) => format!("{field}.{external}"),
                    None => field.to_owned(),
                })
                .collect();
            let soql = format!(
                "SELECT Id, {} FROM {} WHERE {} != null{window}",
                select.join(", "),
                sobject.name(),
                sobject.external_id(),
            );
            let read_at = now(self.pool).await?;
            let mut pages = self.client.query::<Row>(soql);
            while let Some(rows) = self.next_page(&mut pages).await? {
                self.compare_page(sobject, &rows, read_at, &book).await?;
            }
        }
        Ok(())
    }

    /// Compares one page of `sobject` rows read from `read_at` on.
    async fn compare_page(
        &mut self,
        sobject: SObject,
        rows: &[Row],
        read_at: OffsetDateTime,
        book: &str,
    ) -> Result<(), SalesforceReconcileError> {
        let object = object_of(sobject);
        let external = sobject.external_id();
        let externals: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.get(external)?.as_str())
            .collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let keys = record_keys(&mut tx, self.shop, sobject, &externals).await?;
        let distinct: Vec<String> = keys
            .values()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let settled = settled(&mut tx, self.shop, object, &distinct, read_at).await?;
        let settled_keys: Vec<String> = settled.into_keys().collect();
        let org = OrgContext {
            standard_pricebook: book,
        };
        let expected = expected(&mut tx, self.shop, object, sobject, &settled_keys, org).await?;
        tx.commit().await?;
        for row in rows {
            let (Some(id), Some(ext)) = (
                row.get("Id").and_then(Value::as_str),
                row.get(external).and_then(Value::as_str),
            ) else {
                continue;
            };
            let (Some(key), Some(want)) = (keys.get(ext), expected.get(ext)) else {
                continue;
            };
            self.counts.compared += 1;
            let fields = differing(sobject, want, row);
            if fields.is_empty() {
                continue;
            }
            self.counts.stale += 1;
            self.found.push(Found {
                kind: "salesforce_stale",
                object,
                key: key.clone(),
                detail: json!({ "object": sobject.name(), "external_id": ext,
                                "salesforce_id": id, "fields": fields }),
            });
        }
        Ok(())
    }

    /// The records the outbox wrote in the window, by Id; those Salesforce no longer returns.
    async fn missing(&mut self) -> Result<(), SalesforceReconcileError> {
        let read_at = now(self.pool).await?;
        let written = sqlx::query!(
            r#"SELECT object AS "object!: Object", record_key AS "record_key!",
                      salesforce_id AS "salesforce_id!"
             FROM (SELECT DISTINCT ON (object, record_key)
                          object, record_key, status, salesforce_id, changed_at, done_at
                   FROM salesforce_outbox WHERE shop = $1
                   ORDER BY object, record_key, id DESC) latest
             WHERE status = 'done' AND salesforce_id IS NOT NULL AND done_at < $2
               AND ($3::timestamptz IS NULL OR changed_at >= $3)
               AND ($4::timestamptz IS NULL OR changed_at < $4)
             ORDER BY object, record_key"#,
            self.shop.as_str(),
            read_at,
            self.window.start,
            self.window.end,
        )
        .fetch_all(self.pool)
        .await?;
        for object in Object::ALL {
            let of_object: Vec<(&str, &str)> = written
                .iter()
                .filter(|w| w.object == object)
                .map(|w| (w.record_key.as_str(), w.salesforce_id.as_str()))
                .collect();
            for chunk in of_object.chunks(IDS_PER_QUERY) {
                self.missing_in(object, chunk, read_at).await?;
            }
        }
        Ok(())
    }

    /// Checks `written` (record key, Salesforce id) of `object` with one query by Id.
    async fn missing_in(
        &mut self,
        object: Object,
        written: &[(&str, &str)],
        read_at: OffsetDateTime,
    ) -> Result<(), SalesforceReconcileError> {
        let sobject = written_sobject(object);
        let list = written
            .iter()
            .map(|(_, id)| format!("'{}'", soql_escape(id)))
            .collect::<Vec<_>>()
            .join(",");
        let soql = format!("SELECT Id FROM {} WHERE Id IN ({list})", sobject.name());
        let mut pages = self.client.query::<Row>(soql);
        let mut present = HashSet::new();
        while let Some(rows) = self.next_page(&mut pages).await? {
            present.extend(
                rows.iter()
                    .filter_map(|r| r.get("Id")?.as_str().map(str::to_owned)),
            );
        }
        self.counts.compared += written.len() as i64;
        let gone: Vec<(&str, &str)> = written
            .iter()
            .filter(|(_, id)| !present.contains(*id))
            .copied()
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        // Written again meanwhile (a live change recreated it): not missing.
        let keys: Vec<String> = gone.iter().map(|(k, _)| (*k).to_owned()).collect();
        let mut conn = self.pool.acquire().await?;
        let still = settled(&mut conn, self.shop, object, &keys, read_at).await?;
        for (key, id) in gone {
            if still
                .get(key)
                .is_none_or(|written| written.as_deref() != Some(id))
            {
                continue;
            }
            self.counts.missing += 1;
            self.found.push(Found {
                kind: "salesforce_missing",
                object,
                key: key.to_owned(),
                detail: json!({ "object": sobject.name(), "salesforce_id": id }),
            });
        }
        Ok(())
    }

    /// B2B orders updated in the window, applied since the shop was connected, never
    /// enqueued.
    async fn never_sent(&mut self) -> Result<(), SalesforceReconcileError> {
        let orders = sqlx::query!(
            r#"SELECT o.id,
                      EXISTS (SELECT 1 FROM salesforce_outbox x
                              WHERE x.shop = o.shop AND x.object = 'order'
                                AND x.record_key = o.id::text) AS "enqueued!"
             FROM orders o JOIN salesforce_orgs g ON g.shop = o.shop
             WHERE o.shop = $1 AND o.company_id IS NOT NULL AND o.deleted_at IS NULL
               AND o.applied_at >= g.enabled_at
               AND ($2::timestamptz IS NULL OR o.source_updated_at >= $2)
               AND ($3::timestamptz IS NULL OR o.source_updated_at < $3)
             ORDER BY o.id"#,
            self.shop.as_str(),
            self.window.start,
            self.window.end,
        )
        .fetch_all(self.pool)
        .await?;
        self.counts.compared += orders.len() as i64;
        for order in orders.into_iter().filter(|o| !o.enqueued) {
            self.counts.missing += 1;
            self.found.push(Found {
                kind: "salesforce_never_sent",
                object: Object::Order,
                key: order.id.to_string(),
                detail: json!({ "object": "Order" }),
            });
        }
        Ok(())
    }

    /// Records every finding of run `run`, healing each in [`Mode::Heal`] by enqueueing its
    /// record (once, however many of its Salesforce records differ).
    async fn record(&mut self, run: i64, mode: Mode) -> Result<(), sqlx::Error> {
        let mut enqueued: HashSet<(Object, String)> = HashSet::new();
        for found in std::mem::take(&mut self.found) {
            let healed = match mode {
                Mode::Report => Ok(false),
                Mode::Heal if enqueued.contains(&(found.object, found.key.clone())) => Ok(true),
                Mode::Heal => match enqueue(self.pool, self.shop, found.object, &found.key).await {
                    Ok(()) => {
                        enqueued.insert((found.object, found.key.clone()));
                        Ok(true)
                    }
                    Err(e) => Err(e.to_string()),
                },
            };
            match &healed {
                Ok(true) => self.counts.healed += 1,
                Err(_) => self.counts.failed += 1,
                Ok(false) => {}
            }
            let record = format!("{} {}", label(found.object), found.key);
            tracing::warn!(shop = %self.shop, kind = found.kind, record, detail = %found.detail,
                healed = ?healed, "salesforce reconciliation finding");
            metrics::counter!("wholesail_reconcile_findings_total",
                "scope" => "salesforce", "kind" => found.kind)
            .increment(1);
            runs::finding(
                self.pool,
                self.shop,
                run,
                found.kind,
                &record,
                &found.detail,
                healed,
            )
            .await?;
        }
        Ok(())
    }
}

/// Sends `object` `key` again: a pending live row (an order's line products that never had a
/// row first, as `outbox::enqueue` does).
async fn enqueue(
    pool: &PgPool,
    shop: &ShopDomain,
    object: Object,
    key: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if object == Object::Order {
        outbox::enqueue_line_products(&mut tx, shop, key).await?;
    }
    outbox::enqueue_record(&mut tx, shop, object, key, None).await?;
    tx.commit().await
}

/// PostgreSQL's now: the clock outbox rows are stamped with.
async fn now(pool: &PgPool) -> Result<OffsetDateTime, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
        .fetch_one(pool)
        .await
}

/// The outbox object whose rows write `sobject`'s records.
fn object_of(sobject: SObject) -> Object {
    match sobject {
        SObject::Account => Object::Account,
        SObject::Contact => Object::Contact,
        SObject::Product2 | SObject::PricebookEntry => Object::Product,
        SObject::Order | SObject::OrderItem => Object::Order,
    }
}

/// The record whose Id an outbox row of `object` keeps (the first it saves).
fn written_sobject(object: Object) -> SObject {
    match object {
        Object::Account => SObject::Account,
        Object::Contact => SObject::Contact,
        Object::Product => SObject::Product2,
        Object::Order => SObject::Order,
    }
}

/// `object` as findings name it.
fn label(object: Object) -> &'static str {
    match object {
        Object::Account => "account",
        Object::Contact => "contact",
        Object::Product => "product",
        Object::Order => "order",
    }
}

/// A SOQL string literal's content.
fn soql_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The Shopify-owned fields of `sobject` a run compares, each with its parent's external id
/// when it is a relationship (`Account` → `Account.Shopify_Company_Id__c`). Create-only
/// fields are left out: no update changes them, on either side.
fn compared_fields(sobject: SObject) -> impl Iterator<Item = (&'static str, Option<&'static str>)> {
    OWNERSHIP
        .iter()
        .filter(move |(o, f, owner)| {
            *o == sobject.name() && *owner == Owner::Shopify && !CREATE_ONLY.contains(&(*o, *f))
        })
        .map(|(_, field, _)| {
            let parent = SObject::ALL.iter().find(|s| s.name() == *field);
            (*field, parent.map(|p| p.external_id()))
        })
}

/// The Shopify record key of each of `externals` (external ids of `sobject`): a company's GID,
/// a variant's product, a line's order; those origin does not know are left out.
async fn record_keys(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    sobject: SObject,
    externals: &[&str],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let numbers: Vec<i64> = externals.iter().filter_map(|e| e.parse().ok()).collect();
    Ok(match sobject {
        SObject::Account => externals
            .iter()
            .map(|e| ((*e).to_owned(), format!("gid://shopify/Company/{e}")))
            .collect(),
        SObject::Contact | SObject::Order => externals
            .iter()
            .map(|e| ((*e).to_owned(), (*e).to_owned()))
            .collect(),
        SObject::Product2 | SObject::PricebookEntry => sqlx::query!(
            r#"SELECT id::text AS "variant!", product_id::text AS "product!" FROM variants
             WHERE shop = $1 AND id = ANY($2)"#,
            shop.as_str(),
            &numbers,
        )
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|r| (r.variant, r.product))
        .collect(),
        SObject::OrderItem => sqlx::query!(
            r#"SELECT id::text AS "line!", order_id::text AS "order!" FROM order_lines
             WHERE shop = $1 AND id = ANY($2)"#,
            shop.as_str(),
            &numbers,
        )
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|r| (r.line, r.order))
        .collect(),
    })
}

/// The records among `keys` of `object` settled at `read_at` (no row pending or in flight,
/// the latest done before then), each with the Salesforce id its latest row wrote.
async fn settled(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    object: Object,
    keys: &[String],
    read_at: OffsetDateTime,
) -> Result<HashMap<String, Option<String>>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT k.key AS "key!", latest.salesforce_id
         FROM unnest($3::text[]) AS k(key)
         CROSS JOIN LATERAL (SELECT status, salesforce_id, done_at FROM salesforce_outbox o
                             WHERE o.shop = $1 AND o.object = $2 AND o.record_key = k.key
                             ORDER BY o.id DESC LIMIT 1) latest
         WHERE latest.status = 'done' AND latest.done_at < $4
           AND NOT EXISTS (SELECT 1 FROM salesforce_outbox p
                           WHERE p.shop = $1 AND p.object = $2 AND p.record_key = k.key
                             AND p.status IN ('pending', 'processing'))"#,
        shop.as_str(),
        object as Object,
        keys,
        read_at,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.key, r.salesforce_id)).collect())
}

/// The `sobject` records the sync would send now for `keys` of `object`, by external id
/// (records that cannot be sent, such as one deleted in origin, are left out).
async fn expected(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    object: Object,
    sobject: SObject,
    keys: &[String],
    org: OrgContext<'_>,
) -> Result<HashMap<String, Value>, sqlx::Error> {
    let mut parts = Vec::new();
    match object {
        Object::Order => {
            let ids: Vec<i64> = keys.iter().filter_map(|k| k.parse().ok()).collect();
            for built in mapping::orders(conn, shop, &ids, org).await?.into_values() {
                parts.extend(built.into_iter().flatten());
            }
        }
        _ => {
            for key in keys {
                match mapping::records(conn, shop, object, key, org).await {
                    Ok(built) => parts.extend(built),
                    Err(MappingError::Database(e)) => return Err(e),
                    Err(_) => {}
                }
            }
        }
    }
    Ok(parts
        .into_iter()
        .filter(|p| p.sobject == sobject)
        .map(|p| (p.key().to_owned(), p.record))
        .collect())
}

/// The fields of `want` (a record as the sync sends it) whose value in `row` (as SOQL read
/// it) differs; create-only fields are not compared.
fn differing(sobject: SObject, want: &Value, row: &Row) -> Vec<String> {
    let Some(fields) = want.as_object() else {
        return Vec::new();
    };
    fields
        .iter()
        .filter(|(field, _)| !CREATE_ONLY.contains(&(sobject.name(), field.as_str())))
        .filter(|(field, value)| {
            let got = row.get(field.as_str()).unwrap_or(&Value::Null);
            match value {
                // A relationship by external id: the parent's external id.
                Value::Object(reference) => reference
                    .iter()
                    .any(|(external, v)| !same(v, got.get(external).unwrap_or(&Value::Null))),
                v => !same(v, got),
            }
        })
        .map(|(field, _)| field.clone())
        .collect()
}

/// Whether Salesforce holds `want` as `got`: it stores an empty text as null, and a number
/// may come back as a double of another representation.
fn same(want: &Value, got: &Value) -> bool {
    let blank = |v: &Value| v.is_null() || v.as_str() == Some("");
    let number = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    if blank(want) || blank(got) {
        return blank(want) && blank(got);
    }
    if want.is_number() || got.is_number() {
        return match (number(want), number(got)) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
            _ => false,
        };
    }
    want == got
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_and_numbers_compare_as_salesforce_stores_them() {
        assert!(same(&json!(null), &json!("")));
        assert!(same(&json!(2), &json!(2.0)));
        assert!(same(&json!(10.5), &json!("10.5")));
        assert!(!same(&json!("Acme"), &json!("ACME")));
        assert!(!same(&json!("Acme"), &json!(null)));
        assert!(!same(&json!(2), &json!(3.0)));
    }

    #[test]
    fn relationships_compare_by_external_id_and_create_only_fields_not_at_all() {
        let want = json!({"Shopify_Line_Id__c": "1", "Order": {"Shopify_Order_Id__c": "2"},
                          "Quantity": 4});
        let row: Row = serde_json::from_value(json!({"Shopify_Line_Id__c": "1",
            "Quantity": 5.0}))
        .unwrap();
        assert_eq!(differing(SObject::OrderItem, &want, &row), ["Quantity"]);
        let want = json!({"Shopify_Order_Id__c": "2", "Account": {"Shopify_Company_Id__c": "7"}});
        let row: Row = serde_json::from_value(json!({"Shopify_Order_Id__c": "2",
            "Account": {"attributes": {}, "Shopify_Company_Id__c": "8"}}))
        .unwrap();
        assert_eq!(differing(SObject::Order, &want, &row), ["Account"]);
    }

    #[test]
    fn salesforce_owned_and_create_only_fields_are_never_read() {
        let order: Vec<_> = compared_fields(SObject::Order).collect();
        assert!(order.contains(&("Account", Some("Shopify_Company_Id__c"))));
        assert!(!order
            .iter()
            .any(|(f, _)| *f == "OwnerId" || *f == "Description"));
        let item: Vec<_> = compared_fields(SObject::OrderItem)
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            item,
            ["Shopify_Line_Id__c", "Quantity", "UnitPrice"],
            "no Order, PricebookEntry (create-only) or Description (Salesforce's)"
        );
    }
}
