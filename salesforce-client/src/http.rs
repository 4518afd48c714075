//! One REST call, as every typed operation makes it: a slot under the client's concurrency
//! cap, the org's breaker, the cached session (replaced once on `401 INVALID_SESSION_ID`),
//! `Sforce-Limit-Info` into the [`Budget`](crate::Budget), and the answer classified into an
//! [`Error`]. Nothing is retried here except that one 401.

use std::path::Path;

use bytes::Bytes;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use wholesail_breaker::Outcome;

use crate::auth::Session;
use crate::budget::LIMIT_INFO_HEADER;
use crate::{ApiFault, Client, Error};

/// A request body.
pub(crate) enum Body<'a> {
    Empty,
    Json(Bytes),
    /// A CSV file, streamed from disk (opened again if the call is repeated after a 401).
    CsvFile(&'a Path),
}

/// One call under `/services/data/vXX.X` (or an instance path starting with `/services/`,
/// such as a query's `nextRecordsUrl`).
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) path: &'a str,
    pub(crate) query: &'a [(&'a str, &'a str)],
    pub(crate) body: Body<'a>,
}

impl<'a> Call<'a> {
    /// The kind of call, for `wholesail_salesforce_calls_total{kind}`.
    fn kind(&self) -> &'static str {
        let path = self.path.trim_start_matches('/');
        let path = path
            .strip_prefix("services/data/")
            .and_then(|p| p.split_once('/').map(|(_, rest)| rest))
            .unwrap_or(path);
        match path.split('/').take(2).collect::<Vec<_>>().as_slice() {
            ["composite", "sobjects", ..] => "collections",
            ["composite", ..] => "composite",
            ["query", ..] => "query",
            ["jobs", ..] => "bulk",
            ["limits", ..] => "limits",
            ["sobjects", ..] => "sobject",
            _ => "other",
        }
    }

    pub(crate) fn get(path: &'a str) -> Self {
        Call {
            method: Method::GET,
            path,
            query: &[],
            body: Body::Empty,
        }
    }

    pub(crate) fn json(method: Method, path: &'a str, body: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(body).expect("JSON values serialise");
        Call {
            method,
            path,
            query: &[],
            body: Body::Json(body.into()),
        }
    }
}

/// A reqwest failure: a refused connection was certainly not executed; anything after the
/// request went out (timeout, reset) may have been.
pub(crate) fn transport_error(e: &reqwest::Error, sent_write: bool) -> Error {
    Error::Transient {
        message: if e.is_timeout() {
            format!("timed out: {e}")
        } else {
            e.to_string()
        },
        outcome_unknown: sent_write && !e.is_connect(),
    }
}

/// What an error says about the org's API, for the breaker.
fn health(error: &Error) -> Outcome {
    match error {
        Error::Transient { .. } => Outcome::Failed,
        Error::BudgetExhausted | Error::ConcurrencyLimited(_) => Outcome::Neutral,
        _ => Outcome::Healthy,
    }
}

impl Client {
    /// Makes `call` and decodes the JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, Error> {
        let (_, body) = self.call(call).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(format!("{}: {e}", call.path)))
    }

    /// Makes `call`: its headers and body on a 2xx answer.
    pub(crate) async fn call(&self, call: &Call<'_>) -> Result<(HeaderMap, Bytes), Error> {
        let inner = &self.inner;
        let _slot = inner
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut refreshed = false;
        loop {
            let permit = inner
                .breaker
                .permit()
                .map_err(|retry_in| Error::CircuitOpen { retry_in })?;
            let session = match inner.sessions.get(&inner.http, &inner.config).await {
                Ok(s) => s,
                Err(e) => {
                    permit.record(health(&e));
                    return Err(e);
                }
            };
            metrics::counter!("wholesail_salesforce_calls_total",
                "org" => inner.config.org.clone(), "kind" => call.kind())
            .increment(1);
            let result = self.attempt(call, &session).await;
            permit.record(result.as_ref().err().map_or(Outcome::Healthy, health));
            match result {
                Err(Error::Api { status: 401, .. }) if !refreshed => {
                    tracing::info!(org = %inner.config.org, "Salesforce session expired: logging in again");
                    inner.sessions.invalidate(&session).await;
                    refreshed = true;
                }
                Err(Error::Api { status: 401, .. }) => return Err(Error::SessionRejected),
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        session: &Session,
    ) -> Result<(HeaderMap, Bytes), Error> {
        let write = call.method != Method::GET;
        let url = if call.path.starts_with("/services/") {
            format!("{}{}", session.instance_url, call.path)
        } else {
            format!(
                "{}/services/data/v{}{}",
                session.instance_url, self.inner.config.api_version, call.path
            )
        };
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), url)
            .bearer_auth(session.access_token.expose_secret())
            .header(
                "Sforce-Call-Options",
                format!("client={}", self.inner.config.call_client),
            )
            .query(call.query);
        req = match &call.body {
            Body::Empty => req,
            Body::Json(b) => req.header(CONTENT_TYPE, "application/json").body(b.clone()),
            Body::CsvFile(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| Error::Csv(format!("{}: {e}", path.display())))?;
                let len = file
                    .metadata()
                    .await
                    .map_err(|e| Error::Csv(format!("{}: {e}", path.display())))?
                    .len();
                req.header(CONTENT_TYPE, "text/csv")
                    .header(CONTENT_LENGTH, len)
                    .body(file)
            }
        };
        let resp = req.send().await.map_err(|e| transport_error(&e, write))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if let Some(v) = headers.get(LIMIT_INFO_HEADER).and_then(|v| v.to_str().ok()) {
            self.inner.budget.observe(v);
        }
        let body = resp.bytes().await.map_err(|e| transport_error(&e, write))?;
        if status.is_success() {
            return Ok((headers, body));
        }
        Err(classify(status, &body, write))
    }
}

/// The error of a non-2xx answer.
fn classify(status: StatusCode, body: &[u8], write: bool) -> Error {
    let faults: Vec<ApiFault> = serde_json::from_slice(body).unwrap_or_else(|_| {
        vec![ApiFault {
            error_code: format!("HTTP_{}", status.as_u16()),
            message: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            fields: Vec::new(),
        }]
    });
    let first = faults.first();
    let code = first.map_or("", |f| f.error_code.as_str());
    if status == StatusCode::FORBIDDEN && code == "REQUEST_LIMIT_EXCEEDED" {
        let message = first.map_or("", |f| f.message.as_str());
        // Salesforce words the two limits "TotalRequests Limit exceeded." and
        // "ConcurrentRequests (Concurrent API Requests) Limit exceeded.".
        return if message.starts_with("ConcurrentRequests") {
            Error::ConcurrencyLimited(message.to_owned())
        } else {
            Error::BudgetExhausted
        };
    }
    if status.is_server_error() {
        return Error::Transient {
            message: format!("{status} {code}"),
            // Salesforce may have committed a write before failing to answer.
            outcome_unknown: write,
        };
    }
    Error::Api {
        status: status.as_u16(),
        faults,
    }
}
