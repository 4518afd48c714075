//! The sync loop: claims outbox rows shop by shop, builds each row's records from origin's
//! tables as they are now (`mapping`), and sends them parents first (Accounts, Contacts,
//! Product2, PricebookEntries, Orders, OrderItems) in sObject Collections upserts of at most
//! 200 records, keyed by external id. A child whose parent was just created is new; one whose
//! parent already existed is looked up (one SOQL query per 200) and, if it exists, sent
//! without its create-only fields.
//!
//! Rows in lane `backfill` are claimed only while the org's API usage is below its reserve
//! (`Settings::reserve`); live rows always are. Once a shop has `bulk_threshold` backfill
//! rows due, its live rows are claimed first and the backfill then goes in larger batches,
//! each object with enough records as one Bulk API 2.0 job (`bulk`).
//!
//! Every record has its own outcome and a row is done when all its records are saved:
//! otherwise it waits (nothing was sent: the daily budget spent, the breaker open, the org's
//! concurrent requests taken; back to pending after `wait_ms`, no attempt counted), is retried
//! (a row lock, a 5xx, a timeout, a parent not in Salesforce yet: back to pending after a
//! backoff, dead after `max_attempts`) or is permanent (validation, duplicates: a dead row
//! with Salesforce's message, replayable once fixed). A crash between Salesforce's commit and
//! the done mark leaves the row to be claimed again; the upserts by external id then update
//! the records it created instead of creating second ones.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use wholesail_backoff::Backoff;
use wholesail_salesforce::{Client, Error as SalesforceError, RecordOutcome};
use wholesail_webhook::ShopDomain;

use super::accounts::{self, Resolution, ResolveError};
use super::bulk;
use super::contacts::{self, ContactResolution};
use super::mapping::{self, MappingError, OrgContext, Part, SObject};
use super::outbox::{self, Claimed, Lanes, Object};
use crate::lease_loop::{self, LeaseQueue, LoopSettings};

/// `[salesforce]` loop settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Rows claimed per shop per round (sent in upserts of ≤ 200 per object).
    pub batch_size: i64,
    /// Attempts before a row is dead.
    pub max_attempts: i32,
    /// First retry delay (doubling, equal jitter).
    pub backoff_base_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
    /// How long rows wait when nothing could be sent (the daily budget spent, the breaker
    /// open, the org's concurrent requests taken): no attempt is counted for them.
    pub wait_ms: u64,
    /// Lease on claimed rows.
    pub lease_ms: u64,
    /// Idle poll interval (a NOTIFY wakes the loop sooner).
    pub poll_interval_ms: u64,
    /// Fraction of the org's daily API requests kept for its other integrations: once used ≥
    /// max × (1 − reserve), backfill rows wait and live rows still flow.
    pub reserve: f64,
    /// How old the last reported usage may be before the reserve check asks `/limits` (one
    /// API call; the usage is otherwise read from every answer).
    pub budget_recheck_ms: u64,
    /// Due backfill rows of a shop from which its backfill goes through Bulk API 2.0 (live
    /// rows keep their Collections upserts, claimed first).
    pub bulk_threshold: i64,
    /// Backfill rows claimed per round while the backlog is at the threshold.
    pub bulk_batch_size: i64,
    /// Records of one object in a round from which they go as one Bulk job (fewer go in
    /// Collections upserts: a job costs ~7 calls, a Collections upsert 1 per 200).
    pub bulk_min_records: usize,
    /// Poll interval of a Bulk job.
    pub bulk_poll_ms: u64,
    /// How long a round waits for a Bulk job before retrying its records.
    pub bulk_deadline_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            batch_size: 800,
            max_attempts: 10,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            wait_ms: 30_000,
            lease_ms: 120_000,
            poll_interval_ms: 1_000,
            reserve: 0.2,
            budget_recheck_ms: 60_000,
            bulk_threshold: 20_000,
            bulk_batch_size: 10_000,
            bulk_min_records: 2_000,
            bulk_poll_ms: 500,
            bulk_deadline_ms: 90_000,
        }
    }
}

/// The sync of every connected shop in this process.
#[derive(Clone)]
pub struct Sync {
    pool: PgPool,
    clients: Arc<HashMap<ShopDomain, Client>>,
    worker: Arc<str>,
    settings: Settings,
    backoff: Backoff,
    /// The standard price book's Id by org.
    pricebooks: Arc<Mutex<HashMap<String, String>>>,
}

impl Sync {
    /// A sync sending each shop's rows through its org's client.
    pub fn new(
        pool: PgPool,
        clients: HashMap<ShopDomain, Client>,
        worker: impl Into<Arc<str>>,
        settings: Settings,
    ) -> Self {
        let backoff = Backoff::new(
            Duration::from_millis(settings.backoff_base_ms),
            Duration::from_millis(settings.backoff_max_ms),
        );
        Sync {
            pool,
            clients: Arc::new(clients),
            worker: worker.into(),
            settings,
            backoff,
            pricebooks: Arc::default(),
        }
    }

    /// Runs until `shutdown`, then gives back what it holds.
    pub async fn run(self, shutdown: CancellationToken) {
        let settings = LoopSettings {
            name: "salesforce",
            worker: self.worker.clone(),
            channel: outbox::CHANNEL,
            concurrency: 1,
            poll: Duration::from_millis(self.settings.poll_interval_ms),
            grace: None,
        };
        let pool = self.pool.clone();
        lease_loop::run(self, pool, settings, shutdown).await;
    }

    /// Sends one claimed, non-empty batch of one shop, parents first (through Bulk API 2.0
    /// for objects with enough records when `use_bulk`).
    async fn send(
        &self,
        client: &Client,
        rows: Vec<Claimed>,
        use_bulk: bool,
    ) -> Result<(), sqlx::Error> {
        let mut work = self.map(client, &rows).await?;
        self.resolve_accounts(client, &mut work).await?;
        self.resolve_contacts(client, &mut work).await?;
        for sobject in SObject::ALL {
            self.send_parts(client, &mut work, sobject, use_bulk)
                .await?;
        }
        let shop = &rows[0].shop;
        let mut done = Vec::with_capacity(work.len());
        for w in work {
            match (w.failure, w.saved.first()) {
                (Some((error, verdict)), _) => self.fail(w.row, &error, verdict).await?,
                (None, Some(Some(saved))) => done.push((w.row.id, saved.id.clone())),
                (None, _) => unreachable!("a row without a failure has every part saved"),
            }
        }
        for lag in outbox::mark_done(&self.pool, shop, &self.worker, &done).await? {
            metrics::histogram!("wholesail_salesforce_lag_seconds").record(lag.lag);
            if let Some(secs) = lag.since_applied {
                crate::slo::observe(crate::slo::Stage::AppliedToSalesforce, secs);
            }
        }
        if let Some(usage) = client.budget().usage() {
            metrics::gauge!("wholesail_salesforce_api_used_ratio", "org" => client.config().org.clone())
                .set(usage.used as f64 / usage.max.max(1) as f64);
        }
        Ok(())
    }

    /// Whether the org's API usage reached the reserve ([`reserve_reached`]).
    async fn reserve_reached(&self, client: &Client) -> bool {
        reserve_reached(client, &self.settings).await
    }

    /// Builds the records of each row from origin's tables; a row that cannot be mapped fails
    /// now.
    async fn map<'a>(
        &self,
        client: &Client,
        rows: &'a [Claimed],
    ) -> Result<Vec<Work<'a>>, sqlx::Error> {
        let needs_book = rows
            .iter()
            .any(|r| matches!(r.object, Object::Product | Object::Order));
        let book = match needs_book {
            true => Some(self.standard_pricebook(client).await),
            false => None,
        };
        let mut work = Vec::with_capacity(rows.len());
        let mut conn = self.pool.acquire().await?;
        // Orders, most of a batch, are read together (two queries); the rest row by row.
        let ids: Vec<i64> = rows
            .iter()
            .filter(|r| r.object == Object::Order)
            .filter_map(|r| r.record_key.parse().ok())
            .collect();
        let mut orders = match &book {
            Some(Ok(id)) if !ids.is_empty() => {
                let org = OrgContext {
                    standard_pricebook: id,
                };
                mapping::orders(&mut conn, &rows[0].shop, &ids, org).await?
            }
            _ => HashMap::new(),
        };
        for row in rows {
            let org = match (&book, row.object) {
                (_, Object::Account | Object::Contact) => OrgContext {
                    standard_pricebook: "",
                },
                (Some(Ok(id)), _) => OrgContext {
                    standard_pricebook: id,
                },
                (Some(Err(e)), _) => {
                    self.fail(row, &e.to_string(), verdict(e)).await?;
                    continue;
                }
                (None, _) => unreachable!("the price book is read when a row needs it"),
            };
            let batched = match row.object {
                Object::Order => row
                    .record_key
                    .parse()
                    .ok()
                    .and_then(|id| orders.remove(&id)),
                _ => None,
            };
            let read = match batched {
                Some(parts) => parts.and_then(mapping::owned),
                None => {
                    mapping::records(&mut conn, &row.shop, row.object, &row.record_key, org).await
                }
            };
            match read {
                Ok(parts) => work.push(Work {
                    row,
                    saved: vec![None; parts.len()],
                    parts,
                    failure: None,
                }),
                Err(MappingError::Database(e)) => return Err(e),
                Err(e) => self.fail(row, &e.to_string(), Verdict::Permanent).await?,
            }
        }
        Ok(work)
    }

    /// The standard price book's Id, asked once per org (`IsStandard = true`).
    async fn standard_pricebook(&self, client: &Client) -> Result<String, SalesforceError> {
        let org = client.config().org.clone();
        if let Some(id) = self.pricebooks.lock().expect("price books").get(&org) {
            return Ok(id.clone());
        }
        let id = standard_pricebook(client).await?;
        self.pricebooks
            .lock()
            .expect("price books")
            .insert(org, id.clone());
        Ok(id)
    }

    /// Sends the parts of `sobject` whose parent is saved, in upserts of ≤ 200 or, with
    /// `use_bulk` and at least `bulk_min_records` of them, one Bulk job; a child whose parent
    /// existed before may exist too, and is sent without its create-only fields if so.
    async fn send_parts(
        &self,
        client: &Client,
        work: &mut [Work<'_>],
        sobject: SObject,
        use_bulk: bool,
    ) -> Result<(), sqlx::Error> {
        let mut due: Vec<(usize, usize)> = Vec::new();
        for (wi, w) in work.iter().enumerate() {
            if w.failure.is_some() {
                continue;
            }
            for (pi, part) in w.parts.iter().enumerate() {
                if part.sobject == sobject && w.saved[pi].is_none() {
                    due.push((wi, pi));
                }
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let maybe_existing: Vec<String> = due
            .iter()
            .filter_map(|&(wi, pi)| {
                let w = &work[wi];
                let parent = w.parts[pi].parent?;
                (!w.saved[parent].as_ref()?.created).then(|| w.parts[pi].key().to_owned())
            })
            .collect();
        let existing = match self.existing(client, sobject, &maybe_existing).await {
            Ok(existing) => existing,
            Err(e) => {
                for &(wi, _) in &due {
                    work[wi].failed(e.to_string(), verdict(&e));
                }
                return Ok(());
            }
        };
        for &(wi, pi) in &due {
            let part = &mut work[wi].parts[pi];
            if existing.contains(part.key()) {
                part.for_update();
            }
        }
        let name = sobject.name();
        let job = use_bulk && due.len() >= self.settings.bulk_min_records;
        let chunk_size = match job {
            true => due.len(),
            false => wholesail_salesforce::collections::MAX_RECORDS,
        };
        for chunk in due.chunks(chunk_size) {
            let records: Vec<&Value> = chunk
                .iter()
                .map(|&(wi, pi)| &work[wi].parts[pi].record)
                .collect();
            let (sent, kind) = match job {
                true => (
                    bulk::upsert(client, sobject, &records, self.bulk_wait()).await,
                    "bulk",
                ),
                false => (
                    client.upsert(name, sobject.external_id(), &records).await,
                    "collections",
                ),
            };
            match sent {
                Ok(outcomes) => {
                    for (&(wi, pi), outcome) in chunk.iter().zip(outcomes) {
                        work[wi].outcome(pi, name, outcome);
                    }
                }
                Err(e) => {
                    let verdict = verdict(&e);
                    metrics::counter!("wholesail_salesforce_call_failures_total",
                        "object" => name, "verdict" => verdict.label())
                    .increment(1);
                    tracing::warn!(error = %e, sobject = name, records = chunk.len(),
                        verdict = verdict.label(), kind, "salesforce upsert failed");
                    for &(wi, _) in chunk {
                        work[wi].failed(e.to_string(), verdict);
                    }
                }
            }
        }
        Ok(())
    }

    /// How long a round waits for a Bulk job.
    fn bulk_wait(&self) -> bulk::Wait {
        bulk::Wait {
            poll: Duration::from_millis(self.settings.bulk_poll_ms),
            deadline: Duration::from_millis(self.settings.bulk_deadline_ms),
        }
    }

    /// Which of `keys` (external ids of `sobject`) Salesforce already has: one query per 200.
    async fn existing(
        &self,
        client: &Client,
        sobject: SObject,
        keys: &[String],
    ) -> Result<HashSet<String>, SalesforceError> {
        let mut found = HashSet::new();
        let field = sobject.external_id();
        for chunk in keys.chunks(wholesail_salesforce::collections::MAX_RECORDS) {
            let list = chunk
                .iter()
                .map(|k| format!("'{}'", k.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect::<Vec<_>>()
                .join(",");
            let soql = format!(
                "SELECT {field} FROM {} WHERE {field} IN ({list})",
                sobject.name()
            );
            for row in client.query_all::<Map<String, Value>>(soql).await? {
                if let Some(key) = row.get(field).and_then(Value::as_str) {
                    found.insert(key.to_owned());
                }
            }
        }
        Ok(found)
    }

    /// Resolves the Accounts of never-written companies first ([`accounts`]): a linked one is
    /// saved (no upsert), one waiting for review fails with the reason (dead letters).
    async fn resolve_accounts(
        &self,
        client: &Client,
        work: &mut [Work<'_>],
    ) -> Result<(), sqlx::Error> {
        let companies: Vec<(&str, &Value)> = work
            .iter()
            .filter(|w| w.row.object == Object::Account)
            .map(|w| (w.row.record_key.as_str(), &w.parts[0].record))
            .collect();
        if companies.is_empty() {
            return Ok(());
        }
        let resolved =
            accounts::resolve_batch(&self.pool, client, &work[0].row.shop, &companies).await;
        let accounts = work.iter_mut().filter(|w| w.row.object == Object::Account);
        let resolved = match resolved {
            Ok(resolved) => resolved,
            Err(e) => {
                for w in accounts {
                    w.failed(e.to_string(), verdict(&e));
                }
                return Ok(());
            }
        };
        for (w, resolution) in accounts.zip(resolved) {
            match resolution {
                Ok(Resolution::Upsert) => {}
                Ok(Resolution::Linked(id)) => w.linked("Account", id),
                Ok(Resolution::Review(n)) => w.failed(
                    format!(
                        "waiting for review: {n} possible Accounts in Salesforce \
                         (origin salesforce review)"
                    ),
                    Verdict::Permanent,
                ),
                Err(ResolveError::Database(e)) => return Err(e),
                Err(ResolveError::Salesforce(e)) => w.failed(e.to_string(), verdict(&e)),
                Err(e @ ResolveError::Link(..)) => w.failed(e.to_string(), Verdict::Permanent),
            }
        }
        Ok(())
    }

    /// Finds the Contacts of never-written buyers of linked companies first ([`contacts`]):
    /// a linked one is saved (no upsert), duplicates in Salesforce fail with their ids.
    async fn resolve_contacts(
        &self,
        client: &Client,
        work: &mut [Work<'_>],
    ) -> Result<(), sqlx::Error> {
        let buyers: Vec<(&str, &Value)> = work
            .iter()
            .filter(|w| w.row.object == Object::Contact && w.failure.is_none())
            .map(|w| (w.row.record_key.as_str(), &w.parts[0].record))
            .collect();
        if buyers.is_empty() {
            return Ok(());
        }
        let resolved =
            contacts::resolve_batch(&self.pool, client, &work[0].row.shop, &buyers).await;
        let buyers = work
            .iter_mut()
            .filter(|w| w.row.object == Object::Contact && w.failure.is_none());
        let resolved = match resolved {
            Ok(resolved) => resolved,
            Err(ResolveError::Database(e)) => return Err(e),
            Err(e) => {
                let verdict = match &e {
                    ResolveError::Salesforce(e) => verdict(e),
                    _ => Verdict::Permanent,
                };
                for w in buyers {
                    w.failed(e.to_string(), verdict);
                }
                return Ok(());
            }
        };
        for (w, resolution) in buyers.zip(resolved) {
            match resolution {
                Ok(ContactResolution::Upsert) => {}
                Ok(ContactResolution::Linked(id)) => w.linked("Contact", id),
                Ok(ContactResolution::Duplicates(ids)) => w.failed(
                    format!(
                        "waiting for a merge: Contacts {} of the Account have this email; \
                         merge them in Salesforce, then replay",
                        ids.join(", ")
                    ),
                    Verdict::Permanent,
                ),
                Err(ResolveError::Database(e)) => return Err(e),
                Err(ResolveError::Salesforce(e)) => w.failed(e.to_string(), verdict(&e)),
                Err(e @ ResolveError::Link(..)) => w.failed(e.to_string(), Verdict::Permanent),
            }
        }
        Ok(())
    }

    /// Puts `row` back with a backoff (or `wait_ms` when nothing was sent, without counting
    /// the attempt) or in the dead letters.
    async fn fail(&self, row: &Claimed, error: &str, verdict: Verdict) -> Result<(), sqlx::Error> {
        let retry_after = match verdict {
            Verdict::Permanent => None,
            Verdict::Retry => Some(
                self.backoff
                    .equal_jitter(row.attempts.unsigned_abs(), rand::thread_rng().gen()),
            ),
            Verdict::Wait => {
                let wait = Duration::from_millis(self.settings.wait_ms);
                Some(wait.mul_f64(rand::thread_rng().gen_range(0.5..=1.0)))
            }
        };
        let dead = outbox::record_failure(
            &self.pool,
            row,
            &self.worker,
            error,
            retry_after,
            verdict != Verdict::Wait,
            self.settings.max_attempts,
        )
        .await?;
        if dead {
            metrics::counter!("wholesail_salesforce_dead_total").increment(1);
            tracing::warn!(shop = %row.shop, object = ?row.object, key = %row.record_key, error,
                "salesforce record moved to the dead letters");
        }
        Ok(())
    }
}

/// Whether the org's API usage reached the reserve `settings` keep for its other integrations
/// (backfill rows and reconciliation wait then). A usage never reported or older than
/// `budget_recheck_ms` is refreshed with `/limits` first (the day may have turned while only
/// backfill rows waited).
pub(crate) async fn reserve_reached(client: &Client, settings: &Settings) -> bool {
    let recheck = time::Duration::milliseconds(settings.budget_recheck_ms as i64);
    let stale = client
        .budget()
        .usage()
        .is_none_or(|u| OffsetDateTime::now_utc() - u.updated_at > recheck);
    if stale {
        if let Err(e) = client.limits().await {
            tracing::warn!(error = %e, "salesforce limits check failed");
        }
    }
    let org = client.config().org.clone();
    let Some(usage) = client.budget().usage() else {
        return false;
    };
    let limit = usage.max as f64 * (1.0 - settings.reserve.clamp(0.0, 1.0));
    let reached = usage.used as f64 >= limit;
    metrics::gauge!("wholesail_salesforce_api_used_ratio", "org" => org.clone())
        .set(usage.used as f64 / usage.max.max(1) as f64);
    metrics::gauge!("wholesail_salesforce_reserve_reached", "org" => org).set(if reached {
        1.0
    } else {
        0.0
    });
    reached
}

/// The org's standard price book's Id (`IsStandard = true`): one query.
pub(crate) async fn standard_pricebook(client: &Client) -> Result<String, SalesforceError> {
    #[derive(Deserialize)]
    struct Book {
        #[serde(rename = "Id")]
        id: String,
    }
    let books: Vec<Book> = client
        .query_all("SELECT Id FROM Pricebook2 WHERE IsStandard = true")
        .await?;
    books
        .into_iter()
        .next()
        .map(|b| b.id)
        .ok_or_else(|| SalesforceError::Decode("the org has no standard price book".into()))
}

/// What becomes of a row whose record or call failed, from the mildest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// Nothing was sent (the daily budget spent, the breaker open, the org's concurrent
    /// requests taken): back to pending after `wait_ms`, the attempt not counted, so an outage
    /// or a spent day never dead-letters a row.
    Wait,
    /// Sent and failed for now (a row lock, a 5xx, a timeout, a parent not there yet): back
    /// to pending after a backoff; dead after `max_attempts`.
    Retry,
    /// Refused for good (validation, duplicates): dead now, with Salesforce's message.
    Permanent,
}

impl Verdict {
    /// Its name in metrics and logs.
    fn label(self) -> &'static str {
        match self {
            Verdict::Wait => "wait",
            Verdict::Retry => "retry",
            Verdict::Permanent => "permanent",
        }
    }
}

/// A claimed row on its way: its records and what happened to each.
struct Work<'a> {
    row: &'a Claimed,
    parts: Vec<Part>,
    /// Per part, once Salesforce saved it.
    saved: Vec<Option<Saved>>,
    /// The first failure and the gravest verdict so far.
    failure: Option<(String, Verdict)>,
}

impl Work<'_> {
    /// The row's single record (an Account or a Contact) was found in Salesforce and linked
    /// to `id`: saved without an upsert.
    fn linked(&mut self, sobject: &'static str, id: String) {
        metrics::counter!("wholesail_salesforce_records_total",
            "object" => sobject, "outcome" => "saved")
        .increment(1);
        self.saved[0] = Some(Saved { id, created: false });
    }

    /// Records what Salesforce did with part `pi` (an `sobject` record).
    fn outcome(&mut self, pi: usize, sobject: &'static str, outcome: RecordOutcome) {
        let (label, saved) = match outcome {
            RecordOutcome::Created { id } => ("saved", Ok(Saved { id, created: true })),
            RecordOutcome::Updated { id } => ("saved", Ok(Saved { id, created: false })),
            RecordOutcome::Failed(f) => {
                // A parent still on its way (a live order of a company whose Account waits in
                // the backfill) is retried; after `max_attempts` the row is dead all the same.
                let verdict = match f.retryable || f.missing_parent() {
                    true => Verdict::Retry,
                    false => Verdict::Permanent,
                };
                (
                    verdict.label(),
                    Err((
                        format!("{sobject}: {}: {}", f.codes.join(", "), f.message),
                        verdict,
                    )),
                )
            }
        };
        metrics::counter!("wholesail_salesforce_records_total",
            "object" => sobject, "outcome" => label)
        .increment(1);
        match saved {
            Ok(saved) => self.saved[pi] = Some(saved),
            Err((error, verdict)) => self.failed(error, verdict),
        }
    }

    /// Records a failure of one of the row's records (the row's later parts are not sent).
    fn failed(&mut self, error: String, verdict: Verdict) {
        match &mut self.failure {
            Some((_, worst)) => *worst = (*worst).max(verdict),
            None => self.failure = Some((error, verdict)),
        }
    }
}

/// A record Salesforce saved.
#[derive(Clone, Debug)]
struct Saved {
    id: String,
    created: bool,
}

/// What a failed call means for the rows it carried.
fn verdict(e: &SalesforceError) -> Verdict {
    match e {
        SalesforceError::BudgetExhausted
        | SalesforceError::CircuitOpen { .. }
        | SalesforceError::ConcurrencyLimited(_) => Verdict::Wait,
        e if e.is_retryable() => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

impl LeaseQueue for Sync {
    type Cursor = ();

    async fn step(&self, _cursor: &mut ()) -> Result<bool, sqlx::Error> {
        let mut worked = false;
        let lease = Duration::from_millis(self.settings.lease_ms);
        for shop in outbox::due_shops(&self.pool).await? {
            let Some(client) = self.clients.get(&shop) else {
                continue;
            };
            let reserve_reached = self.reserve_reached(client).await;
            let backlog = match reserve_reached {
                true => 0,
                false => {
                    outbox::backfill_backlog(&self.pool, &shop, self.settings.bulk_threshold)
                        .await?
                }
            };
            // Live rows first, in Collections upserts; a backfill past the threshold then
            // goes in a Bulk-sized batch of its own.
            let rounds = match (reserve_reached, backlog >= self.settings.bulk_threshold) {
                (true, _) => vec![(Lanes::LiveOnly, self.settings.batch_size, false)],
                (false, false) => vec![(Lanes::All, self.settings.batch_size, false)],
                (false, true) => vec![
                    (Lanes::LiveOnly, self.settings.batch_size, false),
                    (Lanes::BackfillOnly, self.settings.bulk_batch_size, true),
                ],
            };
            for (lanes, batch, use_bulk) in rounds {
                let rows =
                    outbox::claim(&self.pool, &shop, &self.worker, batch, lease, lanes).await?;
                if rows.is_empty() {
                    continue;
                }
                worked = true;
                self.send(client, rows, use_bulk).await?;
            }
        }
        Ok(worked)
    }

    async fn release(&self) -> Result<u64, sqlx::Error> {
        outbox::release(&self.pool, &self.worker).await
    }

    async fn housekeeping(&self, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.settings.lease_ms / 2).max(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match outbox::reclaim_expired(&self.pool).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(reclaimed = n, "salesforce outbox leases expired"),
                Err(e) => tracing::error!(error = %e, "salesforce outbox reclaim failed"),
            }
        }
    }
}
