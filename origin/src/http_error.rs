//! The one error answer of every origin route: a status and
//! `{"error": {"code": "…", "message": "…", "details": …}}` (`details` only when there is more
//! than the message, e.g. every invalid line of a quote).
//!
//! Feature errors convert into [`ApiError`]. [`json_errors`], the outermost layer, rewrites the
//! plain-text or empty refusals of axum's extractors and tower-http's layers (400, 405, 408,
//! 413, 415, 503 …) into the same shape, keeping their headers (`Retry-After`, `Allow`), so a
//! client parses one shape whatever refused it.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The most of a plain-text refusal kept as the message.
const MAX_MESSAGE_BYTES: usize = 4096;

/// An error answer: status, a stable snake_case `code` for programs, a `message` for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    /// An answer with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The same answer with `details` (a JSON value: a list of line errors, for example).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// An answer with `status` and the usual code of that status.
    pub fn status_only(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, code_of(status), message)
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503 `database_unavailable`, after logging `e` (its details never reach the client).
    pub fn database(e: &sqlx::Error) -> Self {
        tracing::error!(error = %e, "request failed on the database");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "database unavailable",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body `{"error": {…}}`.
    fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The code of an error status that no handler of ours chose.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// Middleware (`axum::middleware::map_response`): an error status without a JSON body becomes
/// an [`ApiError`] of that status, its text (if any) the message, its headers kept.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    // The console's error pages are HTML for people, not API errors.
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let body = ApiError::new(status, code_of(status), message).body();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn json_of(response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn an_api_error_has_code_message_and_details_only_when_given() {
        let (status, body) = json_of(ApiError::not_found("no run 7").into_response()).await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"error": {"code": "not_found", "message": "no run 7"}})
        );
        let invalid = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_quote", "bad")
            .with_details(json!([{"line": 2}]));
        let (_, body) = json_of(invalid.into_response()).await;
        assert_eq!(body["error"]["details"][0]["line"], 2);
    }

    #[tokio::test]
    async fn plain_refusals_are_rewritten_with_their_headers_and_json_is_left_alone() {
        let plain = (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "overloaded",
        )
            .into_response();
        let rewritten = json_errors(plain).await;
        assert_eq!(rewritten.headers()[header::RETRY_AFTER], "1");
        let (status, body) = json_of(rewritten).await;
        assert_eq!(status, 503);
        assert_eq!(
            body,
            json!({"error": {"code": "unavailable", "message": "overloaded"}})
        );

        let empty = json_errors(StatusCode::REQUEST_TIMEOUT.into_response()).await;
        let (_, body) = json_of(empty).await;
        assert_eq!(body["error"]["code"], "request_timeout");
        assert_eq!(body["error"]["message"], "Request Timeout");

        let ours = ApiError::conflict("taken").into_response();
        let (_, body) = json_of(json_errors(ours).await).await;
        assert_eq!(body["error"]["code"], "conflict");

        let ok = json_errors("fine".into_response()).await;
        assert_eq!(ok.status(), 200);
    }
}
