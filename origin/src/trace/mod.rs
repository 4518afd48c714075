//! Traceability: one record's whole story, from Shopify to Salesforce.
//!
//! [`lookup`] takes what an operator knows — a GID, an order name (`#1042`), a SKU or an email
//! ([`Query`]) — finds the matching records in the operational tables ([`records`]) and builds
//! each one's [`Timeline`](Record::timeline) ([`timeline`]), in time order:
//!
//! - per inbox event about the record (by `inbox.subject`): Shopify's `triggered_at`, the edge's
//!   receipt, the inbox insert, then applied / skipped as stale (with why) / ignored, or its
//!   failure (pending retry, dead letter, quarantine);
//! - the rules metafields pushed for the buyer concerned (`rules_pushed`), and push errors;
//! - the record's Salesforce outbox rows (queued, written with the Salesforce id, failed) and,
//!   for a company, how it was matched (`salesforce_links`);
//! - reconciliation findings about it (`reconcile_findings`);
//! - the catalog run that last wrote it, when one did.
//!
//! Each record also says what last wrote it (`written_by`, resolved to a [`Writer`]). Every
//! read is one indexed statement (the inbox by `(subject, shop)`), so a lookup stays fast on a
//! million inbox rows. Callers: `GET /admin/trace` ([`api`]), `origin trace` ([`cli`]) and the
//! console's trace page (which renders [`Trace`] itself).

pub mod api;
pub mod cli;
mod query;
mod records;
mod timeline;

use serde::Serialize;
use sqlx::PgPool;
use thiserror::Error;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

pub use query::{GidKind, Query};

/// The most inbox events one record's timeline shows (the newest).
pub const MAX_EVENTS: i64 = 200;

/// Why a trace has no answer.
#[derive(Debug, Error)]
pub enum TraceError {
    /// Nothing to look for.
    #[error("empty query: give a GID, an order name (#1042), an email or a SKU")]
    EmptyQuery,
    /// A GID of a kind the trace does not follow.
    #[error(
        "cannot trace a {0}: trace an Order, Customer, Product, ProductVariant, Company or \
         CompanyLocation GID, an order name (#1042), an email or a SKU"
    )]
    UnsupportedKind(String),
    /// The query does not parse.
    #[error("{0}")]
    BadQuery(String),
    /// No record matches.
    #[error("no record matches {query}{}", shop.as_ref().map(|s| format!(" in {s}")).unwrap_or_default())]
    NotFound {
        /// The query as given.
        query: String,
        /// The shop it was limited to.
        shop: Option<String>,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The answer to a lookup: every record the query matched, each with its timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// The query as parsed.
    pub query: Query,
    /// The matching records (an order name or SKU may match in several shops).
    pub records: Vec<Record>,
}

/// The kind of a traced record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A row of `orders`.
    Order,
    /// A row of `customers`.
    Customer,
    /// A row of `products`.
    Product,
    /// A row of `variants`.
    Variant,
    /// A row of `companies`.
    Company,
    /// A row of `company_locations`.
    CompanyLocation,
}

/// One record and its story.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The shop.
    pub shop: String,
    /// What it is.
    pub kind: RecordKind,
    /// Its GID.
    pub gid: String,
    /// What people call it: an order's name, a customer's email, a SKU, a company's name.
    pub label: Option<String>,
    /// What last wrote the row (`inbox:<id>`, `catalog_run:<id>`, `salesforce:<key>`); `None`
    /// for rows last written before writers were recorded.
    pub written_by: Option<String>,
    /// `written_by` resolved.
    pub writer: Option<Writer>,
    /// When origin last wrote the row.
    #[serde(with = "time::serde::rfc3339::option")]
    pub applied_at: Option<OffsetDateTime>,
    /// The version (Shopify's `updated_at`) the row holds.
    #[serde(with = "time::serde::rfc3339::option")]
    pub source_updated_at: Option<OffsetDateTime>,
    /// Set when the record was deleted (a final tombstone).
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    /// What happened to it, oldest first.
    pub timeline: Vec<Entry>,
    /// True when more than [`MAX_EVENTS`] inbox events exist: the oldest are left out.
    pub events_truncated: bool,
}

/// What last wrote a row, resolved.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Writer {
    /// An inbox event: a webhook, a replay, or a reconciliation heal (`source` = `reconcile`).
    Inbox {
        /// The inbox row.
        id: i64,
        /// Its topic, when the row is still kept.
        topic: Option<String>,
        /// How it arrived (`edge`, `direct`, `edge_dlq`, `reconcile`).
        source: Option<String>,
        /// Shopify's webhook id (a reconciliation heal: `reconcile:order:<id>:<version>`).
        webhook_id: Option<String>,
    },
    /// A catalog resync.
    CatalogRun {
        /// The run.
        id: i64,
        /// The reconciliation run it belongs to, if a reconciliation started it.
        reconcile_run: Option<i64>,
    },
    /// A change made in Salesforce (its transaction key).
    Salesforce {
        /// The change's transaction key.
        change: String,
    },
}

/// One step of a record's story.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    pub what: EntryKind,
    /// The particulars, for people: topic, webhook id, reason, ids.
    pub detail: String,
    /// The inbox event this step belongs to, if any.
    pub inbox_id: Option<i64>,
}

/// The kinds of timeline entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Shopify triggered the webhook (`X-Shopify-Triggered-At`).
    ShopifyTriggered,
    /// The edge (or origin, in direct mode; reconciliation, for a heal) received it.
    EdgeReceived,
    /// The inbox stored it.
    InboxReceived,
    /// A worker applied it.
    Applied,
    /// A worker skipped it: the tables held this version or a newer one (the detail says why).
    Stale,
    /// The topic has no handler.
    Ignored,
    /// It failed and waits for a retry.
    Retrying,
    /// It is a dead letter.
    Dead,
    /// It was quarantined.
    Quarantined,
    /// A rules metafield page of the buyer was pushed.
    MetafieldsPushed,
    /// The buyer's rules could not be pushed.
    PushError,
    /// The record was queued for Salesforce.
    SalesforceQueued,
    /// Salesforce committed it.
    SalesforceWritten,
    /// Sending it to Salesforce failed for good.
    SalesforceFailed,
    /// The company was matched against Salesforce Accounts.
    SalesforceMatched,
    /// A reconciliation run found a difference.
    ReconcileFinding,
    /// The catalog run that last wrote the record finished.
    CatalogRun,
}

impl EntryKind {
    /// A short name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::ShopifyTriggered => "shopify triggered",
            EntryKind::EdgeReceived => "edge received",
            EntryKind::InboxReceived => "inbox received",
            EntryKind::Applied => "applied",
            EntryKind::Stale => "skipped (stale)",
            EntryKind::Ignored => "ignored",
            EntryKind::Retrying => "failed, retrying",
            EntryKind::Dead => "dead letter",
            EntryKind::Quarantined => "quarantined",
            EntryKind::MetafieldsPushed => "metafields pushed",
            EntryKind::PushError => "push error",
            EntryKind::SalesforceQueued => "salesforce queued",
            EntryKind::SalesforceWritten => "salesforce written",
            EntryKind::SalesforceFailed => "salesforce failed",
            EntryKind::SalesforceMatched => "salesforce matched",
            EntryKind::ReconcileFinding => "reconcile finding",
            EntryKind::CatalogRun => "catalog run",
        }
    }
}

/// Looks up `query` (see [`Query::parse`]) in `shop`, or in every shop, and returns each
/// matching record with its timeline. [`TraceError::NotFound`] when nothing matches.
pub async fn lookup(
    pool: &PgPool,
    shop: Option<&ShopDomain>,
    query: &str,
) -> Result<Trace, TraceError> {
    let parsed = Query::parse(query)?;
    let found = records::find(pool, shop, &parsed).await?;
    if found.is_empty() {
        return Err(TraceError::NotFound {
            query: query.trim().to_owned(),
            shop: shop.map(ToString::to_string),
        });
    }
    let mut records = Vec::with_capacity(found.len());
    for row in found {
        records.push(timeline::build(pool, row).await?);
    }
    Ok(Trace {
        query: parsed,
        records,
    })
}
