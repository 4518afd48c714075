//! Bulk API 2.0 query jobs: create with SOQL, poll until `JobComplete`, download CSV pages
//! of at most `maxRecords` rows, following `Sforce-Locator`.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{job_error, JobState};
use crate::clock::sf_datetime;
use crate::errors::ApiError;
use crate::rest::{query, Body, Reply, Request};
use crate::soql;
use crate::state::Shared;

/// One query job.
pub struct QueryJob {
    id: String,
    object: String,
    soql: String,
    state: JobState,
    created: OffsetDateTime,
    modstamp: OffsetDateTime,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    error_message: Option<String>,
}

#[derive(Deserialize)]
struct CreateBody {
    operation: String,
    query: String,
}

impl QueryJob {
    fn info(&self, st: &Shared) -> Value {
        let mut v = json!({
            "id": self.id,
            "operation": "query",
            "object": self.object,
            "createdById": st.org.lock().unwrap().user_id,
            "createdDate": sf_datetime(self.created),
            "systemModstamp": sf_datetime(self.modstamp),
            "state": self.state.as_str(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": st.config.api_version.parse::<f64>().unwrap_or(62.0),
            "jobType": "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": self.rows.len(),
            "retries": 0,
            "totalProcessingTime": 0,
        });
        if let Some(e) = &self.error_message {
            v["errorMessage"] = e.clone().into();
        }
        v
    }
}

fn not_found() -> ApiError {
    job_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// `POST /jobs/query`.
pub fn create(st: &Arc<Shared>, req: &Request) -> Result<Reply, ApiError> {
    let body: CreateBody = req.json()?;
    if body.operation != "query" {
        return Err(job_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "Only the query operation is supported",
        ));
    }
    let parsed =
        soql::parse(&body.query).map_err(|e| ApiError::bad_request("MALFORMED_QUERY", e.0))?;
    let columns = parsed.fields.iter().map(|p| p.join(".")).collect();
    let now = st.now();
    st.jobs.count_query_job(now);
    let id = format!("750{}", &uuid::Uuid::new_v4().simple().to_string()[..15]);
    let job = QueryJob {
        id: id.clone(),
        object: parsed.from.clone(),
        soql: body.query,
        state: JobState::UploadComplete,
        created: now,
        modstamp: now,
        columns,
        rows: Vec::new(),
        error_message: None,
    };
    let info = job.info(st);
    st.jobs.query.lock().unwrap().insert(id.clone(), job);
    let st = st.clone();
    tokio::spawn(async move { run(st, id) });
    Ok(Reply::json(StatusCode::OK, info))
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn run(st: Arc<Shared>, id: String) {
    let Some(soql) = st
        .jobs
        .query
        .lock()
        .unwrap()
        .get(&id)
        .map(|j| j.soql.clone())
    else {
        return;
    };
    let result = query::rows(&st, &soql);
    let mut jobs = st.jobs.query.lock().unwrap();
    let Some(job) = jobs.get_mut(&id) else { return };
    if job.state == JobState::Aborted {
        return;
    }
    match result {
        Ok(rows) => {
            job.rows = rows
                .records
                .iter()
                .map(|r| {
                    job.columns
                        .iter()
                        .map(|c| match c.split_once('.') {
                            Some((rel, field)) => cell(r.get(rel).and_then(|p| p.get(field))),
                            None => cell(r.get(c)),
                        })
                        .collect()
                })
                .collect();
            job.state = JobState::JobComplete;
        }
        Err(e) => {
            job.state = JobState::Failed;
            job.error_message = Some(e.message);
        }
    }
    job.modstamp = st.now();
}

/// `GET /jobs/query/{id}`.
pub fn info(st: &Shared, id: &str) -> Result<Reply, ApiError> {
    let jobs = st.jobs.query.lock().unwrap();
    let job = jobs.get(id).ok_or_else(not_found)?;
    Ok(Reply::json(StatusCode::OK, job.info(st)))
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
}

/// `PATCH /jobs/query/{id}`: `Aborted`.
pub fn set_state(st: &Shared, req: &Request, id: &str) -> Result<Reply, ApiError> {
    let body: StateBody = req.json()?;
    let mut jobs = st.jobs.query.lock().unwrap();
    let job = jobs.get_mut(id).ok_or_else(not_found)?;
    if body.state != "Aborted" || job.state.is_final() {
        return Err(job_error(
            StatusCode::CONFLICT,
            "INVALIDJOBSTATE",
            "Only a running job can be aborted",
        ));
    }
    job.state = JobState::Aborted;
    Ok(Reply::json(StatusCode::OK, job.info(st)))
}

/// `GET /jobs/query/{id}/results?locator=&maxRecords=`: a CSV page; `Sforce-Locator` names
/// the next (`null` on the last).
pub fn results(st: &Shared, req: &Request, id: &str) -> Result<Reply, ApiError> {
    let jobs = st.jobs.query.lock().unwrap();
    let job = jobs.get(id).ok_or_else(not_found)?;
    if job.state != JobState::JobComplete {
        return Err(job_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE",
            "The job is not complete",
        ));
    }
    let start: usize = match req.params.get("locator") {
        None => 0,
        Some(l) => l.parse().map_err(|_| {
            job_error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid locator",
            )
        })?,
    };
    let max = req
        .params
        .get("maxRecords")
        .and_then(|m| m.parse::<usize>().ok())
        .filter(|m| *m > 0)
        .unwrap_or(50_000);
    let end = (start + max).min(job.rows.len());
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    let write_err = |e: csv::Error| {
        job_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            e.to_string(),
        )
    };
    writer.write_record(&job.columns).map_err(write_err)?;
    for row in job.rows.get(start..end).unwrap_or_default() {
        writer.write_record(row).map_err(write_err)?;
    }
    let bytes = writer.into_inner().map_err(|e| {
        job_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            e.to_string(),
        )
    })?;
    let next = if end < job.rows.len() {
        end.to_string()
    } else {
        "null".to_owned()
    };
    Ok(Reply {
        status: StatusCode::OK,
        body: Body::Csv(String::from_utf8_lossy(&bytes).into_owned()),
        headers: vec![
            ("Sforce-Locator", next),
            (
                "Sforce-NumberOfRecords",
                (end.saturating_sub(start)).to_string(),
            ),
        ],
    })
}
