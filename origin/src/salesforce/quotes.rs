//! Quote to cash: a Quote approved in Salesforce becomes a draft-order job, and the job's
//! outcome is written back onto the Quote.
//!
//! [`approve`] reads the Quote and its lines (two SOQL queries), resolves the buyer's company
//! location (the Quote's `Shopify_Location_Id__c`, or the only location of the Account's
//! company) and the lines' variants (their price book entries' `Shopify_Variant_Id__c`), and
//! submits the quote through the same path as `POST /v1/draft-orders`, idempotent by the
//! Quote's id. [`record`] stores the approval in the event's transaction. [`WriteBack`] waits
//! for the job to end and writes `Shopify_Draft_Status__c` and `Shopify_Invoice_Urls__c` (the
//! drafts' checkout links, one a line) onto the Quote, 25 quotes per Composite call; a
//! failed write is retried with a backoff and visible in `origin salesforce status`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use wholesail_backoff::Backoff;
use wholesail_salesforce::composite::{Subrequest, MAX_SUBREQUESTS};
use wholesail_salesforce::{Client, Error as SalesforceError};
use wholesail_webhook::ShopDomain;

use super::inbound::InboundError;
use crate::draft_orders::api::{self as draft_api, Refused};
use crate::draft_orders::jobs::{self, JobState};
use crate::draft_orders::quote::{QuoteLine, QuoteRequest};
use crate::draft_orders::CallbackPolicy;
use crate::shops::Shops;

/// Longest text `Shopify_Draft_Status__c` holds.
const STATUS_LENGTH: usize = 255;
/// Longest text `Shopify_Invoice_Urls__c` (a long text area) holds.
const URLS_LENGTH: usize = 32_000;

/// What became of an approved quote.
#[derive(Clone, Debug)]
pub struct Approval {
    /// The Quote's Salesforce id (the job's quote id).
    pub quote_id: String,
    /// The draft-order job.
    pub job_id: Option<String>,
    /// Why no job was made.
    pub error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QuoteRow {
    id: String,
    name: String,
    #[serde(rename = "Shopify_Location_Id__c")]
    location: Option<String>,
    account: Option<AccountRef>,
}

#[derive(Deserialize)]
struct AccountRef {
    #[serde(rename = "Shopify_Company_Id__c")]
    company: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LineRow {
    id: String,
    quantity: f64,
    pricebook_entry: Option<EntryRef>,
}

#[derive(Deserialize)]
struct EntryRef {
    #[serde(rename = "Shopify_Variant_Id__c")]
    variant: Option<String>,
}

/// A Salesforce record id (15 or 18 alphanumerics): the only form interpolated into SOQL.
fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads Quote `quote_id` with its lines and submits it as a draft-order job of `shop`.
pub async fn approve(
    pool: &PgPool,
    client: &Client,
    shops: &Shops,
    shop: &ShopDomain,
    quote_id: &str,
) -> Result<Approval, InboundError> {
    let refused = |error: String| Approval {
        quote_id: quote_id.to_owned(),
        job_id: None,
        error: Some(error),
    };
    if !is_record_id(quote_id) {
        return Ok(refused(format!(
            "{quote_id:?} is not a Salesforce record id"
        )));
    }
    let quote: Option<QuoteRow> = client
        .query_all(format!(
            "SELECT Id, Name, Shopify_Location_Id__c, Account.Shopify_Company_Id__c
             FROM Quote WHERE Id = '{quote_id}'"
        ))
        .await?
        .into_iter()
        .next();
    let Some(quote) = quote else {
        return Ok(refused("the Quote no longer exists".into()));
    };
    let lines: Vec<LineRow> = client
        .query_all(format!(
            "SELECT Id, Quantity, PricebookEntry.Shopify_Variant_Id__c FROM QuoteLineItem
             WHERE QuoteId = '{quote_id}' ORDER BY CreatedDate, Id"
        ))
        .await?;
    let location = match location(pool, shop, &quote).await? {
        Ok(location) => location,
        Err(why) => return Ok(refused(why)),
    };
    let lines = match quote_lines(&lines) {
        Ok(lines) => lines,
        Err(why) => return Ok(refused(why)),
    };
    let request = QuoteRequest {
        shop: shop.clone(),
        quote_id: quote.id.clone(),
        company_location_id: location,
        company_contact_id: None,
        lines,
        shipping: None,
        note: Some(format!("Salesforce quote {}", quote.name)),
        callback_url: None,
        send_invoice: false,
    };
    match draft_api::submit(pool, shops, &CallbackPolicy::default(), &request, None).await {
        Ok((status, created)) => {
            if created {
                tracing::info!(shop = %shop, quote = %quote.id, job = %status.job, lines = request.lines.len(), "salesforce quote submitted as draft orders");
            }
            Ok(Approval {
                quote_id: quote.id,
                job_id: Some(status.job),
                error: None,
            })
        }
        Err(Refused::Invalid(violations)) => Ok(refused(
            violations
                .iter()
                .map(|v| match v.line {
                    Some(line) => format!("{} line {}: {}", v.code, line + 1, v.message),
                    None => format!("{}: {}", v.code, v.message),
                })
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(Refused::Conflict(why)) => Ok(refused(why)),
        Err(Refused::Database(e)) => Err(e.into()),
    }
}

/// The buyer's company location: the Quote's own, or the only one of its Account's company.
async fn location(
    pool: &PgPool,
    shop: &ShopDomain,
    quote: &QuoteRow,
) -> Result<Result<String, String>, sqlx::Error> {
    if let Some(location) = quote.location.as_deref().filter(|l| !l.is_empty()) {
        return Ok(Ok(location.to_owned()));
    }
    let Some(company) = quote.account.as_ref().and_then(|a| a.company.as_deref()) else {
        return Ok(Err(
            "the Quote's Account is not a Shopify company (no Shopify_Company_Id__c)".into(),
        ));
    };
    // The sync writes the company's numeric id; origin keys companies by GID.
    let company = match company.parse::<u64>() {
        Ok(id) => format!("gid://shopify/Company/{id}"),
        Err(_) => company.to_owned(),
    };
    let locations = sqlx::query_scalar!(
        "SELECT admin_graphql_api_id FROM company_locations
         WHERE shop = $1 AND company_admin_graphql_api_id = $2 AND deleted_at IS NULL
         ORDER BY admin_graphql_api_id LIMIT 2",
        shop.as_str(),
        company.as_str(),
    )
    .fetch_all(pool)
    .await?;
    Ok(match locations.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("company {company} has no location in Shopify")),
        _ => Err(format!(
            "company {company} has several locations: set Shopify_Location_Id__c on the Quote"
        )),
    })
}

/// The quote's lines as draft-order lines: whole positive quantities of Shopify variants.
fn quote_lines(rows: &[LineRow]) -> Result<Vec<QuoteLine>, String> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let variant = row
                .pricebook_entry
                .as_ref()
                .and_then(|e| e.variant.as_deref())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    format!(
                        "line {} ({}) is not a Shopify variant's price book entry",
                        i + 1,
                        row.id
                    )
                })?;
            let quantity = row.quantity;
            if quantity.fract() != 0.0 || !(1.0..=f64::from(u32::MAX)).contains(&quantity) {
                return Err(format!(
                    "line {} ({}) has quantity {quantity}: whole units only",
                    i + 1,
                    row.id
                ));
            }
            Ok(QuoteLine {
                variant_id: variant,
                quantity: quantity as u32,
            })
        })
        .collect()
}

/// Stores `approval` (once per quote: a quote approved again keeps its first job).
pub async fn record(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    approval: &Approval,
    approved_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO salesforce_quotes (shop, quote_id, job_id, error, approved_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (shop, quote_id) DO NOTHING",
        shop.as_str(),
        approval.quote_id,
        approval.job_id,
        approval.error,
        approved_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A Quote found by a catch-up query.
#[derive(Deserialize)]
pub struct Approved {
    /// Its id.
    #[serde(rename = "Id")]
    pub id: String,
    /// When it last changed (the approval at the latest).
    #[serde(rename = "LastModifiedDate", with = "time::serde::rfc3339")]
    pub last_modified: OffsetDateTime,
}

/// `t` as a SOQL date-time literal (`2026-12-03T08:00:00Z`, whole seconds).
pub fn soql_datetime(t: OffsetDateTime) -> Result<String, SalesforceError> {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .map_err(|e| SalesforceError::Decode(e.to_string()))
}

/// Quotes in `status` modified since `since` (the catch-up after an expired replay id).
pub async fn approved_since(
    client: &Client,
    status: &str,
    since: OffsetDateTime,
) -> Result<Vec<Approved>, SalesforceError> {
    let since = soql_datetime(since)?;
    client
        .query_all(format!(
            "SELECT Id, LastModifiedDate FROM Quote WHERE Status = '{}' AND LastModifiedDate >= {since}",
            status.replace('\\', "\\\\").replace('\'', "\\'")
        ))
        .await
}

/// Writes the outcome of finished jobs back onto their Quotes.
pub struct WriteBack {
    pool: PgPool,
    clients: Arc<HashMap<ShopDomain, Client>>,
    poll: Duration,
    backoff: Backoff,
}

/// A quote whose outcome is due to be written.
struct Due {
    shop: ShopDomain,
    quote_id: String,
    job_id: Option<String>,
    error: Option<String>,
    approved_at: OffsetDateTime,
    attempts: i32,
}

impl WriteBack {
    /// A write-back through each shop's client, looking for finished jobs every `poll`.
    pub fn new(pool: PgPool, clients: HashMap<ShopDomain, Client>, poll: Duration) -> Self {
        WriteBack {
            pool,
            clients: Arc::new(clients),
            poll,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
        }
    }

    /// Writes due outcomes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "salesforce quote write-back failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Claims the due quotes and writes them, shop by shop.
    pub async fn round(&self) -> Result<usize, sqlx::Error> {
        let due = claim(&self.pool).await?;
        let mut by_shop: HashMap<ShopDomain, Vec<Due>> = HashMap::new();
        for d in due {
            by_shop.entry(d.shop.clone()).or_default().push(d);
        }
        let mut written = 0;
        for (shop, due) in by_shop {
            let Some(client) = self.clients.get(&shop) else {
                continue;
            };
            for chunk in due.chunks(MAX_SUBREQUESTS) {
                written += self.write(client, chunk).await?;
            }
        }
        Ok(written)
    }

    /// Writes one Composite call's worth of quotes.
    async fn write(&self, client: &Client, due: &[Due]) -> Result<usize, sqlx::Error> {
        let mut subrequests = Vec::with_capacity(due.len());
        for (i, d) in due.iter().enumerate() {
            subrequests.push(Subrequest {
                method: "PATCH".into(),
                url: format!(
                    "/services/data/v{}/sobjects/Quote/{}",
                    client.config().api_version,
                    d.quote_id
                ),
                reference_id: format!("q{i}"),
                body: Some(self.outcome(d).await?),
            });
        }
        let answers = match client.composite(false, &subrequests).await {
            Ok(answers) => answers,
            Err(e) => {
                for d in due {
                    self.retry(d, &e.to_string()).await?;
                }
                return Ok(0);
            }
        };
        let mut written = 0;
        for (d, answer) in due.iter().zip(answers) {
            if (200..300).contains(&answer.http_status_code) {
                let lag = mark_written(&self.pool, d).await?;
                metrics::histogram!("wholesail_salesforce_quote_to_cash_seconds").record(lag);
                tracing::info!(shop = %d.shop, quote = %d.quote_id, lag_seconds = lag, "quote outcome written to salesforce");
                written += 1;
            } else {
                self.retry(d, &answer.body.to_string()).await?;
            }
        }
        Ok(written)
    }

    /// The fields written onto the Quote for `due`.
    async fn outcome(&self, due: &Due) -> Result<Value, sqlx::Error> {
        let status = match &due.job_id {
            Some(job) => jobs::status(&self.pool, job).await?,
            None => None,
        };
        let (text, urls) = match (status, &due.error) {
            (Some(s), _) if s.status == JobState::Completed => {
                let names: Vec<&str> = s.drafts.iter().filter_map(|d| d.name.as_deref()).collect();
                let urls: Vec<&str> = s
                    .drafts
                    .iter()
                    .filter_map(|d| d.invoice_url.as_deref())
                    .collect();
                (
                    format!(
                        "completed: {} draft orders ({})",
                        s.drafts.len(),
                        names.join(", ")
                    ),
                    Some(urls.join("\n")),
                )
            }
            (Some(s), _) if s.status == JobState::Rejected => {
                let why = s
                    .errors
                    .unwrap_or_default()
                    .iter()
                    .map(|v| match v.line {
                        Some(line) => format!("{} line {}", v.code, line + 1),
                        None => v.code.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                (format!("rejected: {why}"), None)
            }
            (Some(s), _) => (format!("failed: {}", s.error.unwrap_or_default()), None),
            (None, Some(error)) => (format!("rejected: {error}"), None),
            (None, None) => ("failed: the draft-order job is gone".into(), None),
        };
        Ok(json!({
            "Shopify_Draft_Status__c": truncate(&text, STATUS_LENGTH),
            "Shopify_Invoice_Urls__c": urls.map(|u| truncate(&u, URLS_LENGTH).to_owned()),
        }))
    }

    async fn retry(&self, due: &Due, error: &str) -> Result<(), sqlx::Error> {
        let delay = self
            .backoff
            .equal_jitter(due.attempts.unsigned_abs(), rand::thread_rng().gen());
        tracing::warn!(shop = %due.shop, quote = %due.quote_id, error, "quote write-back failed; retrying");
        sqlx::query!(
            "UPDATE salesforce_quotes
             SET locked_until = NULL, last_error = $3,
                 run_at = now() + make_interval(secs => $4)
             WHERE shop = $1 AND quote_id = $2",
            due.shop.as_str(),
            due.quote_id,
            error,
            delay.as_secs_f64(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Leases the quotes whose job has ended (or that never got one) and whose write is due.
async fn claim(pool: &PgPool) -> Result<Vec<Due>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"UPDATE salesforce_quotes q
         SET locked_until = now() + interval '2 minutes', attempts = q.attempts + 1
         FROM (SELECT d.shop, d.quote_id FROM salesforce_quotes d
               LEFT JOIN draft_order_jobs j ON j.id = d.job_id
               WHERE d.written_at IS NULL AND d.run_at <= now()
                 AND (d.locked_until IS NULL OR d.locked_until < now())
                 AND (d.job_id IS NULL OR j.status IS DISTINCT FROM 'processing')
               ORDER BY d.run_at
               LIMIT 500
               FOR UPDATE OF d SKIP LOCKED) due
         WHERE q.shop = due.shop AND q.quote_id = due.quote_id
         RETURNING q.shop AS "shop: ShopDomain", q.quote_id, q.job_id, q.error, q.approved_at,
                   q.attempts"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Due {
            shop: r.shop,
            quote_id: r.quote_id,
            job_id: r.job_id,
            error: r.error,
            approved_at: r.approved_at,
            attempts: r.attempts,
        })
        .collect())
}

/// Marks `due` written; the seconds from the approval to now.
async fn mark_written(pool: &PgPool, due: &Due) -> Result<f64, sqlx::Error> {
    sqlx::query!(
        "UPDATE salesforce_quotes SET written_at = now(), locked_until = NULL, last_error = NULL
         WHERE shop = $1 AND quote_id = $2",
        due.shop.as_str(),
        due.quote_id,
    )
    .execute(pool)
    .await?;
    Ok((OffsetDateTime::now_utc() - due.approved_at)
        .as_seconds_f64()
        .max(0.0))
}
