//! Topic handlers: apply one inbox event to the operational tables.
//!
//! The worker calls [`apply`] inside the same transaction that marks the inbox row done, so an
//! event's effect and its completion commit together (exactly-once effect).

use sqlx::PgConnection;
use thiserror::Error;

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
    pub shop: String,
    /// The webhook topic, e.g. `orders/create`.
    pub topic: String,
    /// The stripped JSON payload as text.
    pub payload: String,
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
    /// The tables already held newer data (`updated_at` guard): nothing changed.
    Stale,
    /// The topic has no handler; the event is kept in the inbox only.
    Ignored,
}

/// Applies `event` to the operational tables on `conn` (inside the caller's transaction).
pub async fn apply(_conn: &mut PgConnection, _event: &InboxEvent) -> Result<Outcome, HandlerError> {
    Ok(Outcome::Ignored)
}
