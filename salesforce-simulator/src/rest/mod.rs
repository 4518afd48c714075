//! The REST resources under `/services/data/v{version}/`, as one dispatcher that the HTTP
//! endpoint and Composite subrequests share.

pub mod collections;
pub mod composite;
pub mod limits;
pub mod query;
pub mod sobjects;
pub mod writes;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::errors::ApiError;
use crate::org::Txn;
use crate::state::Shared;
use crate::{bulk, CallKind};

/// One request to a REST resource.
pub struct Request {
    /// The HTTP method.
    pub method: Method,
    /// The path segments after `/services/data/v{version}/`.
    pub path: Vec<String>,
    /// Query parameters.
    pub params: HashMap<String, String>,
    /// The body.
    pub body: Bytes,
    /// The `client=` of the `Sforce-Call-Options` header: named in the `changeOrigin` of
    /// the change events this request's writes emit.
    pub client: Option<String>,
}

impl Request {
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request("JSON_PARSER_ERROR", e.to_string()))
    }

    /// Which kind of call this is, for the call log.
    pub fn kind(&self) -> CallKind {
        match self.path.first().map(String::as_str) {
            Some("composite") if self.path.get(1).is_some_and(|s| s == "sobjects") => {
                CallKind::Collections
            }
            Some("composite") => CallKind::Composite,
            Some("query") => CallKind::Query,
            Some("jobs") => CallKind::Bulk,
            _ => CallKind::Rest,
        }
    }
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// JSON.
    Json(Value),
    /// CSV text (Bulk API results).
    Csv(String),
    /// No body.
    Empty,
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Body,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            body: Body::Json(body),
            headers: Vec::new(),
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::json(e.status, e.body())
    }
}

/// The transaction a request's writes join: its own (committed at once), or a Composite
/// request's (`allOrNone`), committed or rolled back when the Composite request ends.
#[derive(Default)]
pub struct Scope {
    /// The enclosing transaction, if any.
    pub txn: Option<Txn>,
    /// Inside a Composite request (no nested Composite or Bulk calls).
    pub in_composite: bool,
    /// The calling client's name (`Sforce-Call-Options: client=…`), if it gave one.
    pub client: Option<String>,
}

/// Runs one REST request.
pub fn route<'a>(
    st: &'a Arc<Shared>,
    req: &'a Request,
    scope: &'a mut Scope,
) -> Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>> {
    Box::pin(async move {
        let segments: Vec<&str> = req.path.iter().map(String::as_str).collect();
        let m = &req.method;
        match segments.as_slice() {
            ["sobjects", object] if m == Method::POST => {
                sobjects::create(st, req, scope, object).await
            }
            ["sobjects", object, id] if m == Method::GET => sobjects::get(st, req, object, id),
            ["sobjects", object, id] if m == Method::PATCH => {
                sobjects::update(st, req, scope, object, id).await
            }
            ["sobjects", object, id] if m == Method::DELETE => {
                sobjects::delete(st, scope, object, id).await
            }
            ["sobjects", object, field, value] if m == Method::PATCH => {
                sobjects::upsert(st, req, scope, object, field, value).await
            }
            ["sobjects", object, field, value] if m == Method::GET => {
                sobjects::get_by_external_id(st, req, object, field, value)
            }
            ["composite"] if m == Method::POST && !scope.in_composite => {
                composite::run(st, req).await
            }
            ["composite", "sobjects"] if m == Method::POST => {
                collections::create(st, req, scope).await
            }
            ["composite", "sobjects"] if m == Method::PATCH => {
                collections::update(st, req, scope).await
            }
            ["composite", "sobjects", object, field] if m == Method::PATCH => {
                collections::upsert(st, req, scope, object, field).await
            }
            ["query"] if m == Method::GET => query::run(st, req),
            ["query", locator] if m == Method::GET => query::more(st, locator),
            ["limits"] if m == Method::GET => Ok(limits::get(st)),
            ["jobs", ..] if !scope.in_composite => bulk::route(st, req, &segments[1..]),
            _ => Err(ApiError::not_found()),
        }
    })
}
