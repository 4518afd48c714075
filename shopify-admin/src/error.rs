//! The client's errors: one enum, each variant saying what the caller can do about it.

use serde::Deserialize;

/// A `userErrors` entry of a mutation payload.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserError {
    /// Path to the input field at fault.
    #[serde(default)]
    pub field: Option<Vec<String>>,
    /// Message.
    pub message: String,
    /// Error code, when the payload has one (e.g. `STALE_OBJECT`, `LIMIT_REACHED`).
    #[serde(default)]
    pub code: Option<String>,
    /// Index of the input element at fault (`metafieldsSet`).
    #[serde(default)]
    pub element_index: Option<u32>,
}

/// A top-level GraphQL error.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct GraphqlError {
    /// Message.
    pub message: String,
    /// `extensions`, including `code`.
    #[serde(default)]
    pub extensions: Option<serde_json::Value>,
}

impl GraphqlError {
    /// `extensions.code`, e.g. `THROTTLED`.
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The token is invalid or lacks a scope (HTTP 401/403, or an `ACCESS_DENIED` error).
    #[error("access denied: {message}")]
    AccessDenied {
        /// HTTP status, when the denial came as one.
        status: Option<u16>,
        /// What Shopify said.
        message: String,
    },
    /// The mutation ran and rejected its input; nothing was changed.
    #[error("user errors: {0:?}")]
    UserErrors(Vec<UserError>),
    /// Still throttled after every retry.
    #[error("throttled after {attempts} attempts")]
    Throttled {
        /// Attempts made.
        attempts: u32,
    },
    /// One query requests more points than Shopify allows, or than the bucket holds.
    #[error("query requests {requested} points, above the limit of {limit}")]
    QueryTooExpensive {
        /// Requested cost.
        requested: u32,
        /// The limit it exceeds.
        limit: u32,
    },
    /// A non-retryable HTTP status, or a retryable one after every retry.
    #[error("HTTP {status}: {body}")]
    Http {
        /// Status.
        status: u16,
        /// Body (truncated).
        body: String,
    },
    /// No answer in time after every retry.
    #[error("timed out after {attempts} attempts")]
    Timeout {
        /// Attempts made.
        attempts: u32,
    },
    /// A request that must not run twice (e.g. `draftOrderCreate`) failed in a way that does
    /// not tell whether Shopify executed it; look it up before trying again.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// GraphQL errors (a malformed query, an unknown field …).
    #[error("GraphQL errors: {0:?}")]
    Graphql(Vec<GraphqlError>),
    /// Network failure other than a timeout, after every retry.
    #[error("transport: {0}")]
    Transport(String),
    /// The shop's circuit breaker is open (its API kept failing): nothing was sent. Try again
    /// after `retry_in`; see [`crate::breaker`].
    #[error(
        "Shopify circuit open for this shop (its API keeps failing); next try in {retry_in:?}"
    )]
    CircuitOpen {
        /// Until the breaker lets a probe through.
        retry_in: std::time::Duration,
    },
    /// The answer did not have the expected shape.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// A bulk result URL was refused (not https on an allowed host, or it redirected); the
    /// message never contains the URL (it is a signed, secret URL).
    #[error("bulk result URL refused: {0}")]
    ResultUrl(String),
}
