//! Bulk API 2.0 under `/jobs`: [`ingest`] jobs (CSV upload, asynchronous processing at a
//! configurable rate, per-row results) and [`query`] jobs (SOQL to CSV pages with
//! `Sforce-Locator`). Every call counts once against the API budget, whatever its size.

pub mod ingest;
pub mod query;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use time::{Date, OffsetDateTime};

use crate::errors::ApiError;
use crate::rest::{Reply, Request};
use crate::state::Shared;

/// The state of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Accepting data (ingest).
    Open,
    /// Data complete, waiting to be processed.
    UploadComplete,
    /// Being processed.
    InProgress,
    /// Done.
    JobComplete,
    /// Stopped on an error.
    Failed,
    /// Stopped by the client.
    Aborted,
}

impl JobState {
    /// The API's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }

    /// Whether the job has stopped.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// Every job of the org.
#[derive(Default)]
pub struct Jobs {
    /// Ingest jobs by id.
    pub ingest: Mutex<HashMap<String, ingest::IngestJob>>,
    /// Query jobs by id.
    pub query: Mutex<HashMap<String, query::QueryJob>>,
    query_days: Mutex<Vec<Date>>,
}

impl Jobs {
    /// Query jobs created on `now`'s day.
    pub fn query_jobs_today(&self, now: OffsetDateTime) -> u64 {
        self.query_days
            .lock()
            .unwrap()
            .iter()
            .filter(|d| **d == now.date())
            .count() as u64
    }

    fn count_query_job(&self, now: OffsetDateTime) {
        self.query_days.lock().unwrap().push(now.date());
    }
}

fn job_error(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

/// Dispatches `/jobs/…` (`segments` after `jobs`).
pub fn route(st: &Arc<Shared>, req: &Request, segments: &[&str]) -> Result<Reply, ApiError> {
    let m = &req.method;
    match segments {
        ["ingest"] if m == Method::POST => ingest::create(st, req),
        ["ingest"] if m == Method::GET => Ok(ingest::list(st)),
        ["ingest", id] if m == Method::GET => ingest::info(st, id),
        ["ingest", id] if m == Method::PATCH => ingest::set_state(st, req, id),
        ["ingest", id] if m == Method::DELETE => ingest::delete(st, id),
        ["ingest", id, "batches"] if m == Method::PUT => ingest::upload(st, req, id),
        ["ingest", id, "successfulResults"] if m == Method::GET => ingest::successful(st, id),
        ["ingest", id, "failedResults"] if m == Method::GET => ingest::failed(st, id),
        ["ingest", id, "unprocessedrecords"] if m == Method::GET => ingest::unprocessed(st, id),
        ["query"] if m == Method::POST => query::create(st, req),
        ["query", id] if m == Method::GET => query::info(st, id),
        ["query", id] if m == Method::PATCH => query::set_state(st, req, id),
        ["query", id, "results"] if m == Method::GET => query::results(st, req, id),
        _ => Err(ApiError::not_found()),
    }
}
