//! Topic handlers: apply one inbox event to the operational tables.
//!
//! The worker calls [`apply`] inside the same transaction that marks the inbox row done, so an
//! event's effect and its completion commit together (exactly-once effect). Handlers receive
//! payloads already stripped by the topic's allowlist (`wholesail_webhook::allowlist`) and
//! parse them into typed structs; a payload without a required field is
//! [`HandlerError::InvalidPayload`] with serde's reason, which the worker does not retry.
//!
//! Out-of-order delivery is the norm, so every write is guarded by the payload's version
//! ([`version::Version`]: `updated_at` plus a digest of the payload): an older version, or a
//! redelivery of the same one, changes nothing and reports [`Outcome::Stale`] (with why:
//! [`Verdict`], what [`apply_explained`] returns and the worker stores). Deletes are
//! final tombstones. The rules per table are in `README.md` next to this file.
//!
//! Once a shop is redacted (`shop/redact`), events for it are not applied ([`Outcome::Stale`])
//! until the install flow clears `shops.redacted_at`. A per-shop advisory lock (shared for
//! events, exclusive for `shop/redact`, see `shop_lock`) closes the window between an event's
//! redacted check and its writes.

mod bulk_operations;
mod companies;
mod compliance;
mod customers;
mod inventory;
mod money;
mod orders;
mod orders_batch;
mod personal_data;
mod products;
mod shop;
mod timestamp;
mod tombstone;
mod version;

use serde::Deserialize;
use sqlx::PgConnection;
use thiserror::Error;
use wholesail_webhook::{Family, KnownTopic, ShopDomain};

use crate::shop_lock::ShopGate;

/// One inbox event, as the worker hands it to a handler.
#[derive(Debug, Clone)]
pub struct InboxEvent {
    /// The inbox row id.
    pub id: i64,
    /// Shopify's per-delivery id.
    pub webhook_id: String,
    /// Shopify's per-action id, shared by all deliveries of one merchant action.
    pub event_id: Option<String>,
    /// The shop's myshopify domain.
    pub shop: ShopDomain,
    /// The webhook topic, e.g. `orders/create`.
    pub topic: String,
    /// The stripped JSON payload as text.
    pub payload: String,
}

impl InboxEvent {
    /// What the rows this event writes record in `written_by`: `inbox:<id>`.
    pub fn written_by(&self) -> String {
        format!("inbox:{}", self.id)
    }
}

/// Why a handler could not apply an event.
#[derive(Debug, Error)]
pub enum HandlerError {
    /// The payload does not have the shape the topic requires; retrying cannot help.
    #[error("invalid payload for {topic}: {reason}")]
    InvalidPayload {
        /// The topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// A database error; the worker retries with backoff.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a handler did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event changed the operational tables.
    Applied,
    /// The tables already held this version or a newer one (`updated_at` guard), the resource
    /// is deleted, the compliance request was already carried out, or the shop is redacted:
    /// nothing changed.
    Stale,
    /// The topic has no handler; the event is kept in the inbox only.
    Ignored,
}

impl Outcome {
    /// The stored name (`inbox.outcome`): `applied`, `stale` or `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Stale => "stale",
            Outcome::Ignored => "ignored",
        }
    }
}

/// An [`Outcome`] with why nothing changed, as the worker stores it on the inbox row
/// (`outcome`, `outcome_reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// See [`Outcome::Applied`].
    Applied,
    /// See [`Outcome::Stale`]; the text says which case, e.g. "older than stored updated_at …".
    Stale(String),
    /// See [`Outcome::Ignored`].
    Ignored,
}

impl Verdict {
    /// `Applied` when a guarded write reported that it won, `Stale` with `why` otherwise.
    fn from_won(won: bool, why: impl FnOnce() -> String) -> Verdict {
        if won {
            Verdict::Applied
        } else {
            Verdict::Stale(why())
        }
    }

    /// The outcome without its reason.
    pub fn outcome(&self) -> Outcome {
        match self {
            Verdict::Applied => Outcome::Applied,
            Verdict::Stale(_) => Outcome::Stale,
            Verdict::Ignored => Outcome::Ignored,
        }
    }

    /// Why nothing changed (stale events only).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Stale(why) => Some(why),
            _ => None,
        }
    }
}

/// Applies `event` like [`apply_explained`], without the reason.
pub async fn apply(conn: &mut PgConnection, event: &InboxEvent) -> Result<Outcome, HandlerError> {
    apply_explained(conn, event).await.map(|v| v.outcome())
}

/// Applies `event` to the operational tables on `conn` (inside the caller's transaction) and
/// says what it did, and why when nothing changed.
pub async fn apply_explained(
    conn: &mut PgConnection,
    event: &InboxEvent,
) -> Result<Verdict, HandlerError> {
    apply_gated(conn, event, None).await
}

/// [`apply_explained`] for an event of a worker batch whose shops' shared locks `gate` holds:
/// the lock is not taken again, and the redacted check is skipped for a shop the gate knows
/// to be clear.
pub async fn apply_in_batch(
    conn: &mut PgConnection,
    event: &InboxEvent,
    gate: &mut ShopGate,
) -> Result<Verdict, HandlerError> {
    apply_gated(conn, event, Some(gate)).await
}

/// Whether the worker may apply `event` of a batch whose shop locks `gate` holds with
/// [`apply_set_in_batch`]: an `orders/*` upsert (create, updated, paid, cancelled, fulfilled,
/// partially fulfilled) of a shop the gate knows to be clear. Other events go one by one
/// through [`apply_in_batch`].
pub fn applies_as_set(event: &InboxEvent, gate: &ShopGate) -> bool {
    use KnownTopic as T;
    matches!(
        KnownTopic::parse(&event.topic),
        Some(
            T::OrdersCreate
                | T::OrdersUpdated
                | T::OrdersPaid
                | T::OrdersCancelled
                | T::OrdersFulfilled
                | T::OrdersPartiallyFulfilled
        )
    ) && gate.is_clear(&event.shop)
}

/// Applies `events`, consecutive events of one worker batch that [`applies_as_set`] accepted,
/// in a few statements for all of them instead of a few per event, with the results
/// [`apply_in_batch`] would give one by one in the same order (`orders_batch`): one
/// [`Verdict`], or the [`HandlerError::InvalidPayload`] of an event whose payload is refused
/// (it wrote nothing; the others are applied), per event. `Err` is a database error: the
/// caller's transaction must be rolled back.
pub async fn apply_set_in_batch(
    conn: &mut PgConnection,
    events: &[&InboxEvent],
) -> Result<Vec<Result<Verdict, HandlerError>>, sqlx::Error> {
    let results = orders_batch::upsert(conn, events).await?;
    let applied: Vec<&InboxEvent> = events
        .iter()
        .zip(&results)
        .filter_map(|(e, r)| matches!(r, Ok(Verdict::Applied)).then_some(*e))
        .collect();
    if !applied.is_empty() {
        // The changes and the promises to send them to Salesforce commit together; one lookup
        // for the shops, then the statements of `enqueue` for the connected ones only.
        let mut shops: Vec<&str> = applied.iter().map(|e| e.shop.as_str()).collect();
        shops.sort_unstable();
        shops.dedup();
        let connected = crate::salesforce::outbox::connected_shops(conn, &shops).await?;
        for event in applied {
            if let (true, Some(topic)) = (
                connected.contains(event.shop.as_str()),
                KnownTopic::parse(&event.topic),
            ) {
                crate::salesforce::outbox::enqueue_connected(conn, event, topic).await?;
            }
        }
    }
    // A late event of a redacted customer keeps no personal data in the inbox either.
    let judged: Vec<&InboxEvent> = events
        .iter()
        .zip(&results)
        .filter_map(|(e, r)| r.is_ok().then_some(*e))
        .collect();
    personal_data::scrub_all_if_customer_redacted(conn, &judged).await?;
    Ok(results)
}

async fn apply_gated(
    conn: &mut PgConnection,
    event: &InboxEvent,
    mut gate: Option<&mut ShopGate>,
) -> Result<Verdict, HandlerError> {
    use KnownTopic as T;
    let topic = KnownTopic::parse(&event.topic);
    // `shop/redact` waits for the shop's events in flight; every other event waits for a
    // redaction in flight, then sees the shop redacted (`shop_lock`).
    if topic == Some(T::ShopRedact) {
        crate::shop_lock::exclusive(conn, &event.shop).await?;
    } else if gate.is_none() {
        crate::shop_lock::shared(conn, &event.shop).await?;
    }
    let Some(topic) = topic else {
        return Ok(Verdict::Ignored);
    };
    // Compliance and shop topics act on redacted and uninstalled shops too.
    let on_redacted_shops = matches!(
        topic.family(),
        Family::Compliance | Family::Shop | Family::Untracked
    );
    // Those may redact the shop or reinstall it: its later events in the batch check again.
    if let (true, Some(gate)) = (on_redacted_shops, gate.as_deref_mut()) {
        gate.forget(&event.shop);
    }
    let known_clear = gate.is_some_and(|g| g.is_clear(&event.shop));
    if !on_redacted_shops
        && !known_clear
        && crate::shop_lock::is_redacted(conn, &event.shop).await?
        && !shop::reinstalled(conn, event).await?
    {
        return Ok(Verdict::Stale("the shop is redacted (shop/redact)".into()));
    }
    // Exhaustive: a new topic in `KnownTopic` does not compile until it has a handler here.
    let outcome = match topic {
        T::CustomersDataRequest => compliance::data_request(conn, event).await,
        T::CustomersRedact => compliance::redact_customer(conn, event).await,
        T::ShopRedact => compliance::redact_shop(conn, event).await,
        T::AppUninstalled => shop::uninstalled(conn, event).await,
        T::ShopUpdate => shop::update(conn, event).await,
        T::CollectionsDelete | T::LocationsDelete | T::InventoryItemsDelete => Ok(Verdict::Ignored),
        T::OrdersCreate
        | T::OrdersUpdated
        | T::OrdersPaid
        | T::OrdersCancelled
        | T::OrdersFulfilled
        | T::OrdersPartiallyFulfilled => orders::upsert(conn, event).await,
        T::OrdersDelete => orders::delete(conn, event).await,
        T::BulkOperationsFinish => bulk_operations::finished(conn, event).await,
        T::ProductsCreate | T::ProductsUpdate => products::upsert(conn, event).await,
        T::ProductsDelete => products::delete(conn, event).await,
        T::InventoryLevelsUpdate | T::InventoryLevelsConnect => {
            inventory::upsert(conn, event).await
        }
        T::InventoryLevelsDisconnect => inventory::disconnect(conn, event).await,
        T::CustomersCreate | T::CustomersUpdate | T::CustomersEnable | T::CustomersDisable => {
            customers::upsert(conn, event).await
        }
        T::CustomersDelete => customers::delete(conn, event).await,
        T::CompaniesCreate | T::CompaniesUpdate => companies::upsert_company(conn, event).await,
        T::CompaniesDelete => companies::delete_company(conn, event).await,
        T::CompanyLocationsCreate | T::CompanyLocationsUpdate => {
            companies::upsert_location(conn, event).await
        }
        T::CompanyLocationsDelete => companies::delete_location(conn, event).await,
    }?;
    if outcome == Verdict::Applied {
        // The change and the promise to send it to Salesforce commit together.
        crate::salesforce::outbox::enqueue(conn, event, topic).await?;
    }
    if matches!(topic.family(), Family::Order | Family::Customer) {
        // A late event of a redacted customer keeps no personal data in the inbox either.
        personal_data::scrub_if_customer_redacted(conn, event).await?;
    }
    Ok(outcome)
}

/// Parses the event's payload into the topic's typed shape.
fn parse<'a, T: Deserialize<'a>>(event: &'a InboxEvent) -> Result<T, HandlerError> {
    serde_json::from_str(&event.payload).map_err(|e| invalid(event, e.to_string()))
}

/// An [`HandlerError::InvalidPayload`] for `event`.
fn invalid(event: &InboxEvent, reason: impl Into<String>) -> HandlerError {
    HandlerError::InvalidPayload {
        topic: event.topic.clone(),
        reason: reason.into(),
    }
}

/// A delete payload: Shopify sends only the id (`{"id": 123}`).
#[derive(Deserialize)]
struct DeletedById {
    id: i64,
}

/// A delete payload for resources known by GID only (companies, company locations).
#[derive(Deserialize)]
struct DeletedByGid {
    admin_graphql_api_id: String,
}

/// A postal address reduced to what routing and reporting need (the allowlist's `ADDRESS`).
#[derive(Deserialize, Default)]
struct Address {
    country_code: Option<String>,
    province_code: Option<String>,
    zip: Option<String>,
    city: Option<String>,
}
