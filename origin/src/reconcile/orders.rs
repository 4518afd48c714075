//! A window of orders against PostgreSQL: Shopify retries a webhook for about 4 hours, so an
//! order changed while the edge or origin was down longer than that, or whose subscription
//! was removed, never arrives. A run exports the orders updated in the window with a bulk
//! query (`orders(query: "updated_at:>=… AND updated_at:<…")`, grouped, streamed), compares
//! each with its row in batches of [`BATCH`] (one statement per batch), and:
//! - `order_missing`: no row at all;
//! - `order_stale`: the row's `updated_at` is older, or equal with different content
//!   (financial and fulfillment status, cancellation, total, each line's current quantity).
//!
//! Healing queues the exported version as an `orders/updated` event with source `reconcile`
//! into the inbox, so the workers apply it through the same handler and version guard as a
//! webhook: never older over newer, tombstones final, quotas and the Salesforce outbox
//! follow. Its webhook id is derived from the order and its `updatedAt`, so two runs queue
//! one event.
//!
//! No false positives from live traffic: the window ends `settle` before the run (a change
//! still in Shopify's delivery pipe is not drift yet), and a row newer than the export (a
//! webhook applied while the run read) is never counted. A tombstoned order is final.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_shopify_admin::bulk::BulkStatus;
use wholesail_shopify_admin::{AdminClient, AdminError};
use wholesail_webhook::ShopDomain;

use super::runs::{self, Counts, Mode, Scope, Trigger, Window};
use crate::pipeline::inbox::{self, Body, NewEvent, Source, Stored};

/// Orders compared per statement.
pub const BATCH: usize = 500;

/// The bulk query's fields: what the order handler stores.
pub const NODE: &str = "id number name email createdAt processedAt updatedAt cancelledAt \
    cancelReason closedAt displayFinancialStatus displayFulfillmentStatus currencyCode \
    totalPriceSet { shopMoney { amount } } subtotalPriceSet { shopMoney { amount } } \
    totalTaxSet { shopMoney { amount } } totalDiscountsSet { shopMoney { amount } } \
    totalShippingPriceSet { shopMoney { amount } } taxesIncluded tags poNumber sourceName test \
    customer { id } purchasingEntity { ... on PurchasingCompany { company { id } location { id } } } \
    shippingAddress { countryCodeV2 provinceCode zip city } \
    lineItems { edges { node { id sku quantity currentQuantity variant { id } product { id } \
    originalUnitPriceSet { shopMoney { amount } } totalDiscountSet { shopMoney { amount } } } } }";

/// How a run waits for Shopify.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Changes younger than this are left to their webhooks.
    pub settle: Duration,
    /// Between two polls of the bulk operation.
    pub poll_interval: Duration,
    /// Longest wait for the bulk operation.
    pub bulk_timeout: Duration,
    /// Hosts the result may be downloaded from (the Admin API's own origin always may).
    pub result_hosts: Vec<String>,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// Recording the run, comparing or queueing.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The bulk export.
    #[error("exporting the orders: {0}")]
    Shopify(#[from] AdminError),
    /// The bulk operation ended without a result.
    #[error("the orders export ended {0}")]
    Export(String),
    /// A line of the export is not an order or a line item.
    #[error("line {line} of the orders export: {reason}")]
    Line {
        /// 1-based.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Reconciles `shop`'s orders updated in `window` (its end is capped at now − settle), heals
/// in [`Mode::Heal`], and records the run; its id and counts.
pub async fn reconcile(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
    window: Window,
    timing: &Timing,
    mode: Mode,
    trigger: Trigger,
) -> Result<(i64, Counts), OrdersError> {
    let started = Instant::now();
    let settled = OffsetDateTime::now_utc() - timing.settle;
    let window = Window {
        start: window.start,
        end: Some(window.end.map_or(settled, |e| e.min(settled))),
    };
    let run = runs::start(pool, shop, Scope::Orders, trigger, mode, window).await?;
    let mut counts = Counts::default();
    let outcome = compare_window(pool, client, shop, run, window, timing, mode, &mut counts).await;
    let error = outcome.as_ref().err().map(ToString::to_string);
    runs::finish(pool, shop, run, &counts, error.as_deref()).await?;
    let label = if error.is_some() { "error" } else { "finished" };
    metrics::counter!("wholesail_reconcile_runs_total", "scope" => "orders", "outcome" => label)
        .increment(1);
    metrics::histogram!("wholesail_reconcile_run_seconds", "scope" => "orders")
        .record(started.elapsed().as_secs_f64());
    outcome.map(|()| (run, counts))
}

/// The export, compared batch by batch.
#[allow(clippy::too_many_arguments)]
async fn compare_window(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
    run: i64,
    window: Window,
    timing: &Timing,
    mode: Mode,
    counts: &mut Counts,
) -> Result<(), OrdersError> {
    let url = export(client, window, timing, counts).await?;
    let Some(url) = url else { return Ok(()) };
    let mut reader = client.download_jsonl(&url, &timing.result_hosts).await?;
    // The download and parse of the next batch overlap the comparison of this one.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Exported>>(2);
    let read = async move {
        let mut batch: Vec<Exported> = Vec::with_capacity(BATCH);
        while let Some(line) = reader.next_line().await? {
            let number = line.number;
            let bad = |reason: String| OrdersError::Line {
                line: number,
                reason,
            };
            // Only line items have a parent: one typed parse per line (an untagged enum
            // would buffer every line and try both shapes, most of a run's CPU).
            if memchr::memmem::find(line.bytes, b"\"__parentId\"").is_some() {
                let l: LineItem =
                    serde_json::from_slice(line.bytes).map_err(|e| bad(e.to_string()))?;
                match batch.last_mut() {
                    Some(order) if order.gid == l.parent => order.lines.push(l),
                    _ => return Err(bad("a line item not after its order".into())),
                }
                continue;
            }
            let o: OrderNode =
                serde_json::from_slice(line.bytes).map_err(|e| bad(e.to_string()))?;
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.send(full).await.is_err() {
                    return Ok(());
                }
            }
            batch.push(Exported::from(o).map_err(bad)?);
        }
        let _ = tx.send(batch).await;
        Ok(())
    };
    let compare = async {
        while let Some(batch) = rx.recv().await {
            settle_batch(pool, shop, run, mode, client, &batch, counts).await?;
        }
        Ok(())
    };
    tokio::try_join!(read, compare).map(|_| ())
}

/// Runs the bulk query to its end; the result URL (`None`: nothing exported).
async fn export(
    client: &AdminClient,
    window: Window,
    timing: &Timing,
    counts: &mut Counts,
) -> Result<Option<String>, OrdersError> {
    // Whole seconds in UTC, as Shopify's search syntax documents them (`updatedAt` itself has
    // second precision): the start rounds down (a boundary second is compared, harmlessly,
    // twice), the end too (its last partial second is within the settle time).
    let at = |t: OffsetDateTime| {
        let t = t.to_offset(time::UtcOffset::UTC);
        t.replace_nanosecond(0)
            .unwrap_or(t)
            .format(&Rfc3339)
            .unwrap_or_default()
    };
    let mut search = Vec::new();
    if let Some(start) = window.start {
        search.push(format!("updated_at:>='{}'", at(start)));
    }
    if let Some(end) = window.end {
        search.push(format!("updated_at:<'{}'", at(end)));
    }
    let query = format!(
        "{{ orders(query: \"{}\") {{ edges {{ node {{ {NODE} }} }} }} }}",
        search.join(" AND ")
    );
    let op = client.bulk_run_query(&query, true).await?;
    counts.cost_used += 10;
    let deadline = Instant::now() + timing.bulk_timeout;
    loop {
        let now = client
            .bulk_operation(&op.id)
            .await?
            .ok_or_else(|| OrdersError::Export("missing".into()))?;
        counts.cost_used += 1;
        match now.status {
            BulkStatus::Completed => return Ok(now.url),
            s if s.is_final() => {
                let code = now.error_code.unwrap_or_default();
                return Err(OrdersError::Export(format!("{s:?} {code}")));
            }
            _ if Instant::now() >= deadline => {
                return Err(OrdersError::Export("past the bulk timeout".into()));
            }
            _ => tokio::time::sleep(timing.poll_interval).await,
        }
    }
}

/// A line item line of the export.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineItem {
    #[serde(rename = "__parentId")]
    parent: String,
    id: String,
    sku: Option<String>,
    quantity: i64,
    current_quantity: Option<i64>,
    variant: Option<Ref>,
    product: Option<Ref>,
    original_unit_price_set: Option<MoneySet>,
    total_discount_set: Option<MoneySet>,
}

#[derive(Deserialize)]
struct Ref {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoneySet {
    shop_money: Amount,
}

#[derive(Deserialize)]
struct Amount {
    amount: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Company {
    company: Option<Ref>,
    location: Option<Ref>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShippingAddress {
    country_code_v2: Option<String>,
    province_code: Option<String>,
    zip: Option<String>,
    city: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderNode {
    id: String,
    number: Option<i64>,
    name: Option<String>,
    email: Option<String>,
    created_at: Option<String>,
    processed_at: Option<String>,
    updated_at: String,
    cancelled_at: Option<String>,
    cancel_reason: Option<String>,
    closed_at: Option<String>,
    display_financial_status: Option<String>,
    display_fulfillment_status: Option<String>,
    currency_code: Option<String>,
    total_price_set: Option<MoneySet>,
    subtotal_price_set: Option<MoneySet>,
    total_tax_set: Option<MoneySet>,
    total_discounts_set: Option<MoneySet>,
    total_shipping_price_set: Option<MoneySet>,
    taxes_included: Option<bool>,
    #[serde(default)]
    tags: Vec<String>,
    po_number: Option<String>,
    source_name: Option<String>,
    test: Option<bool>,
    customer: Option<Ref>,
    purchasing_entity: Option<Company>,
    shipping_address: Option<ShippingAddress>,
}

/// The numeric id at the end of a GID.
fn legacy_id(gid: &str) -> Option<i64> {
    gid.rsplit('/').next()?.parse().ok()
}

fn amount(m: &Option<MoneySet>) -> Option<&str> {
    m.as_ref().map(|m| m.shop_money.amount.as_str())
}

/// An exported order: what is compared, and its lines until the next order.
struct Exported {
    gid: String,
    id: i64,
    updated_at: OffsetDateTime,
    node: OrderNode,
    lines: Vec<LineItem>,
}

impl Exported {
    fn from(node: OrderNode) -> Result<Exported, String> {
        let id = legacy_id(&node.id).ok_or_else(|| format!("order id {}", node.id))?;
        let updated_at = OffsetDateTime::parse(&node.updated_at, &Rfc3339)
            .map_err(|e| format!("updatedAt {}: {e}", node.updated_at))?;
        Ok(Exported {
            gid: node.id.clone(),
            id,
            updated_at,
            node,
            lines: Vec::new(),
        })
    }

    /// `financial_status` as the REST payload (and the row) spells it.
    fn financial_status(&self) -> Option<String> {
        self.node
            .display_financial_status
            .as_deref()
            .map(str::to_ascii_lowercase)
    }

    /// `fulfillment_status` as the REST payload spells it (`null` while unfulfilled).
    fn fulfillment_status(&self) -> Option<&'static str> {
        match self.node.display_fulfillment_status.as_deref() {
            Some("FULFILLED") => Some("fulfilled"),
            Some("PARTIALLY_FULFILLED") => Some("partial"),
            Some("RESTOCKED") => Some("restocked"),
            _ => None,
        }
    }

    /// `id:current quantity` of each line, by id: compared with the row's lines.
    fn line_signature(&self) -> String {
        let mut lines: Vec<(i64, i64)> = self
            .lines
            .iter()
            .filter_map(|l| Some((legacy_id(&l.id)?, l.current_quantity.unwrap_or(l.quantity))))
            .collect();
        lines.sort_unstable();
        lines
            .iter()
            .map(|(id, q)| format!("{id}:{q}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The order as an `orders/updated` webhook carries it (the fields the handler reads).
    fn payload(&self) -> Value {
        let n = &self.node;
        let company = n.purchasing_entity.as_ref();
        let address = n.shipping_address.as_ref();
        let lines: Vec<Value> = self
            .lines
            .iter()
            .map(|l| {
                json!({
                    "id": legacy_id(&l.id),
                    "variant_id": l.variant.as_ref().and_then(|v| legacy_id(&v.id)),
                    "product_id": l.product.as_ref().and_then(|p| legacy_id(&p.id)),
                    "sku": l.sku,
                    "quantity": l.quantity,
                    "current_quantity": l.current_quantity,
                    "price": amount(&l.original_unit_price_set).unwrap_or("0"),
                    "total_discount": amount(&l.total_discount_set),
                })
            })
            .collect();
        json!({
            "id": self.id,
            "admin_graphql_api_id": self.gid,
            "updated_at": n.updated_at,
            "name": n.name,
            "order_number": n.number.map(|x| x + 1000),
            "email": n.email,
            "created_at": n.created_at,
            "processed_at": n.processed_at,
            "cancelled_at": n.cancelled_at,
            "cancel_reason": n.cancel_reason.as_deref().map(str::to_ascii_lowercase),
            "closed_at": n.closed_at,
            "financial_status": self.financial_status(),
            "fulfillment_status": self.fulfillment_status(),
            "currency": n.currency_code,
            "total_price": amount(&n.total_price_set),
            "subtotal_price": amount(&n.subtotal_price_set),
            "total_tax": amount(&n.total_tax_set),
            "total_discounts": amount(&n.total_discounts_set),
            "taxes_included": n.taxes_included,
            "tags": n.tags.join(", "),
            "po_number": n.po_number,
            "source_name": n.source_name,
            "test": n.test,
            "customer": n.customer.as_ref().and_then(|c| legacy_id(&c.id)).map(|id| json!({"id": id})),
            "company": company.and_then(|c| c.company.as_ref()).and_then(|c| legacy_id(&c.id)).map(|id| json!({
                "id": id,
                "location_id": company.and_then(|c| c.location.as_ref()).and_then(|l| legacy_id(&l.id)),
            })),
            "shipping_address": address.map(|a| json!({
                "country_code": a.country_code_v2, "province_code": a.province_code,
                "zip": a.zip, "city": a.city,
            })),
            "shipping_lines": amount(&n.total_shipping_price_set)
                .map(|p| vec![json!({"price": p})]).unwrap_or_default(),
            "line_items": lines,
        })
    }
}

/// What the comparison found for one exported order.
struct Drift {
    id: i64,
    missing: bool,
    ours: Option<OffsetDateTime>,
}

/// Compares one batch; records and (in heal mode) queues what differs.
async fn settle_batch(
    pool: &PgPool,
    shop: &ShopDomain,
    run: i64,
    mode: Mode,
    client: &AdminClient,
    batch: &[Exported],
    counts: &mut Counts,
) -> Result<(), OrdersError> {
    if batch.is_empty() {
        return Ok(());
    }
    counts.compared += batch.len() as i64;
    let drift = compare(pool, shop, batch).await?;
    if drift.is_empty() {
        return Ok(());
    }
    let by_id: std::collections::HashMap<i64, &Exported> =
        batch.iter().map(|e| (e.id, e)).collect();
    let found: Vec<(&Drift, &Exported)> = drift.iter().map(|d| (d, by_id[&d.id])).collect();
    let stored = match mode {
        Mode::Report => vec![None; found.len()],
        Mode::Heal => {
            let events: Vec<NewEvent> = found.iter().map(|(_, e)| event(shop, client, e)).collect();
            let stored = inbox::insert(pool, Source::Reconcile, &events).await?;
            if stored.contains(&Stored::Pending) {
                inbox::notify(pool).await?;
            }
            stored.into_iter().map(Some).collect()
        }
    };
    for ((d, e), stored) in found.iter().zip(stored) {
        let kind = if d.missing {
            counts.missing += 1;
            "order_missing"
        } else {
            counts.stale += 1;
            "order_stale"
        };
        let healed = match stored {
            None => Ok(false),
            Some(Stored::Pending | Stored::Duplicate) => {
                counts.healed += 1;
                Ok(true)
            }
            Some(other) => {
                counts.failed += 1;
                Err(format!("the inbox stored it {other:?}"))
            }
        };
        let at = |t: OffsetDateTime| t.format(&Rfc3339).ok();
        let detail = json!({
            "name": e.node.name,
            "shopify_updated_at": at(e.updated_at),
            "ours_updated_at": d.ours.and_then(at),
        });
        metrics::counter!("wholesail_reconcile_findings_total", "scope" => "orders", "kind" => kind)
            .increment(1);
        tracing::warn!(%shop, order = e.id, kind, "order drift");
        runs::finding(pool, shop, run, kind, &e.id.to_string(), &detail, healed).await?;
    }
    Ok(())
}

/// The orders of `batch` whose row is missing or older (or equal with other content).
async fn compare(
    pool: &PgPool,
    shop: &ShopDomain,
    batch: &[Exported],
) -> Result<Vec<Drift>, sqlx::Error> {
    let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
    let updated: Vec<OffsetDateTime> = batch.iter().map(|e| e.updated_at).collect();
    let financial: Vec<Option<String>> = batch.iter().map(Exported::financial_status).collect();
    let fulfillment: Vec<Option<&str>> = batch.iter().map(Exported::fulfillment_status).collect();
    let cancelled: Vec<Option<OffsetDateTime>> = batch
        .iter()
        .map(|e| {
            e.node
                .cancelled_at
                .as_deref()
                .and_then(|c| OffsetDateTime::parse(c, &Rfc3339).ok())
        })
        .collect();
    let total: Vec<Option<&str>> = batch
        .iter()
        .map(|e| amount(&e.node.total_price_set))
        .collect();
    let lines: Vec<String> = batch.iter().map(Exported::line_signature).collect();
    let rows = sqlx::query!(
        r#"SELECT e.id AS "id!", o.id IS NULL AS "missing!", o.source_updated_at AS ours
         FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::text[], $8::text[])
              AS e(id, updated_at, financial, fulfillment, cancelled_at, total, lines)
         -- One primary-key probe per exported order: a hash join would read every order
         -- of the shop (the planner's first plans for a fresh connection pick it).
         LEFT JOIN LATERAL (SELECT o.id, o.source_updated_at, o.deleted_at,
                                   o.financial_status, o.fulfillment_status, o.cancelled_at,
                                   o.total_price
                            FROM orders o WHERE o.shop = $1 AND o.id = e.id) o ON true
         WHERE o.id IS NULL
            OR (o.deleted_at IS NULL
                AND (o.source_updated_at < e.updated_at
                     OR (o.source_updated_at = e.updated_at
                         AND ((o.financial_status, o.fulfillment_status, o.cancelled_at,
                               o.total_price)
                              IS DISTINCT FROM
                              (e.financial, e.fulfillment, e.cancelled_at, e.total::numeric)
                              OR e.lines IS DISTINCT FROM (
                                  SELECT coalesce(string_agg(
                                             l.id || ':' || coalesce(l.current_quantity,
                                                                     l.quantity),
                                             ',' ORDER BY l.id), '')
                                  FROM order_lines l
                                  WHERE l.shop = $1 AND l.order_id = o.id)))))
         ORDER BY e.id"#,
        shop.as_str(),
        &ids,
        &updated,
        &financial as &[Option<String>],
        &fulfillment as &[Option<&str>],
        &cancelled as &[Option<OffsetDateTime>],
        &total as &[Option<&str>],
        &lines,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Drift {
            id: r.id,
            missing: r.missing,
            ours: r.ours,
        })
        .collect())
}

/// The inbox event that heals `e`: an `orders/updated` with a webhook id per version.
fn event(shop: &ShopDomain, client: &AdminClient, e: &Exported) -> NewEvent {
    let body = e.payload().to_string();
    NewEvent {
        webhook_id: format!(
            "reconcile:order:{}:{}",
            e.id,
            e.updated_at.unix_timestamp_nanos() / 1_000_000
        ),
        event_id: None,
        shop: shop.clone(),
        topic: "orders/updated".into(),
        api_version: client.config().api_version.clone(),
        triggered_at: Some(e.updated_at),
        received_at: OffsetDateTime::now_utc(),
        stripping: "reconcile".into(),
        original_bytes: body.len() as i64,
        body_sha256: Sha256::digest(body.as_bytes()).into(),
        body: Body::Json(body),
    }
}
