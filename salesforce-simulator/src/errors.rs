//! Salesforce's two error shapes: the per-record `{statusCode, message, fields}` of save
//! results, and the request-level `[{message, errorCode}]` array with an HTTP status.

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

/// Why one record was not saved (an element of a save result's `errors`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{status_code}: {message}")]
pub struct RecordError {
    /// `REQUIRED_FIELD_MISSING`, `STRING_TOO_LONG`, `DUPLICATES_DETECTED`, …
    #[serde(rename = "statusCode")]
    pub status_code: String,
    /// Human-readable text.
    pub message: String,
    /// The fields concerned.
    pub fields: Vec<String>,
}

impl RecordError {
    /// An error about `fields`.
    pub fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> Self {
        RecordError {
            status_code: code.to_owned(),
            message: message.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// The error of records rolled back because another failed under `allOrNone`.
    pub fn rolled_back() -> Self {
        RecordError::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            &[],
        )
    }

    /// The Bulk API's `sf__Error` text: `CODE:message:field1,field2 --`.
    pub fn bulk_text(&self) -> String {
        format!(
            "{}:{}:{} --",
            self.status_code,
            self.message,
            self.fields.join(",")
        )
    }
}

/// A request-level failure: an HTTP status and `[{"message", "errorCode"}]`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// `errorCode`.
    pub code: String,
    /// `message`.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    /// 401 `INVALID_SESSION_ID`.
    pub fn invalid_session() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!([{"message": self.message, "errorCode": self.code}])
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        ApiError::bad_request(&e.status_code, e.message)
    }
}
