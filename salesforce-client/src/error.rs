//! The client's errors, by what the caller can do about them: retry ([`Error::Transient`],
//! [`Error::ConcurrencyLimited`], [`Error::CircuitOpen`]), wait for tomorrow's budget
//! ([`Error::BudgetExhausted`]), or fix the request ([`Error::Api`] and the rest).

use std::time::Duration;

use serde::Deserialize;

/// One element of Salesforce's request-level error array `[{message, errorCode, fields}]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiFault {
    /// `errorCode`, e.g. `MALFORMED_QUERY`, `INVALID_FIELD`, `EXCEEDED_ID_LIMIT`.
    pub error_code: String,
    /// Human-readable text.
    pub message: String,
    /// The fields concerned, when given.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token endpoint refused the connected app's credentials (`invalid_client`, …).
    #[error("Salesforce login refused: {0}")]
    Login(String),
    /// `401 INVALID_SESSION_ID` again with a freshly issued token.
    #[error("Salesforce rejected a freshly issued session")]
    SessionRejected,
    /// `403 REQUEST_LIMIT_EXCEEDED` "TotalRequests Limit exceeded.": the org's daily API
    /// budget is spent; nothing was executed. Calls succeed again when the window moves on.
    #[error("the org's daily API request limit is exhausted")]
    BudgetExhausted,
    /// `403 REQUEST_LIMIT_EXCEEDED` "ConcurrentRequests": too many long-running requests in
    /// the org; nothing was executed, retry later.
    #[error("too many concurrent long-running requests in the org: {0}")]
    ConcurrencyLimited(String),
    /// The org's circuit breaker is open: nothing was sent.
    #[error("the org's Salesforce circuit is open; retry in {retry_in:?}")]
    CircuitOpen {
        /// Until the breaker lets a probe through.
        retry_in: Duration,
    },
    /// HTTP 5xx, a timeout or a connection failure. Retryable, when the caller decides. If
    /// `outcome_unknown`, the request may have been executed: retry only what is idempotent
    /// (an upsert by external id is; a create is not).
    #[error("transient Salesforce failure: {message}")]
    Transient {
        /// What happened.
        message: String,
        /// Whether Salesforce may have executed the request.
        outcome_unknown: bool,
    },
    /// A 4xx answer with Salesforce error codes: the request is wrong, retrying will not help.
    #[error("Salesforce answered {status}: {}", summary(.faults))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The errors.
        faults: Vec<ApiFault>,
    },
    /// More records than one call may carry; nothing was sent.
    #[error("{count} records in one call; at most {max}")]
    TooManyRecords {
        /// Records given.
        count: usize,
        /// The call's limit.
        max: usize,
    },
    /// An answer that does not have the expected shape.
    #[error("cannot decode Salesforce's answer: {0}")]
    Decode(String),
    /// Writing or reading a Bulk API CSV file.
    #[error("bulk CSV: {0}")]
    Csv(String),
    /// A Bulk API job stopped in `Failed` or `Aborted`.
    #[error("bulk job {id} ended {state}: {message}")]
    BulkJobFailed {
        /// The job.
        id: String,
        /// `Failed` or `Aborted`.
        state: String,
        /// `errorMessage`.
        message: String,
    },
    /// A Bulk API job did not finish within the caller's deadline (it goes on at Salesforce).
    #[error("bulk job {id} still {state} at the deadline")]
    BulkJobTimeout {
        /// The job.
        id: String,
        /// Its last state.
        state: String,
    },
    /// The Pub/Sub API refused to resume from this replay id (outside the retention window or
    /// never issued): resubscribe from `EARLIEST` or `LATEST` and resynchronise.
    #[error("replay id refused by the Pub/Sub API: {0}")]
    ReplayIdInvalid(String),
    /// Any other Pub/Sub API (gRPC) failure.
    #[error("Pub/Sub API {code:?} ({error_code}): {message}")]
    PubSub {
        /// The gRPC status code.
        code: tonic::Code,
        /// Salesforce's `error-code` trailer, if any.
        error_code: String,
        /// The status message.
        message: String,
    },
    /// A change event's Avro payload does not match its schema.
    #[error("cannot decode a change event: {0}")]
    Avro(String),
}

fn summary(faults: &[ApiFault]) -> String {
    faults
        .iter()
        .map(|f| format!("{}: {}", f.error_code, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Whether trying the same call again later may succeed (for writes, see
    /// [`Error::Transient`]'s `outcome_unknown`; a Bulk job past the deadline goes on, so its
    /// rows must be idempotent upserts too).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Transient { .. }
                | Error::ConcurrencyLimited(_)
                | Error::CircuitOpen { .. }
                | Error::BulkJobTimeout { .. }
        )
    }

    /// The first error code of an [`Error::Api`].
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Error::Api { faults, .. } => faults.first().map(|f| f.error_code.as_str()),
            _ => None,
        }
    }
}
