//! Bulk API 2.0 ingest jobs: create (object, operation, external id field), upload one CSV
//! (≤ 150 MB), `UploadComplete` → processed asynchronously in chunks of 200 rows at the
//! configured rate → `JobComplete`; per-row `successfulResults`, `failedResults` and
//! `unprocessedrecords`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{job_error, JobState};
use crate::clock::sf_datetime;
use crate::errors::{ApiError, RecordError};
use crate::org::Record;
use crate::rest::writes::{self, Write};
use crate::rest::{Body, Reply, Request, Scope};
use crate::state::Shared;

/// The largest CSV upload.
pub const MAX_UPLOAD_BYTES: usize = 150 * 1024 * 1024;
const CHUNK: usize = 200;

/// What an ingest job does with each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// Create.
    Insert,
    /// Create or update by external id.
    Upsert,
    /// Update by `Id`.
    Update,
    /// Delete by `Id`.
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Upsert => "upsert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// One ingest job.
pub struct IngestJob {
    id: String,
    object: String,
    operation: Operation,
    external_id_field: Option<String>,
    line_ending: String,
    state: JobState,
    created: OffsetDateTime,
    modstamp: OffsetDateTime,
    data: Option<Vec<u8>>,
    header: Vec<String>,
    successes: Vec<(String, bool, Vec<String>)>,
    failures: Vec<(String, Vec<String>)>,
    unprocessed: Vec<Vec<String>>,
    error_message: Option<String>,
    started: Option<std::time::Instant>,
    processing_ms: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    object: String,
    operation: Operation,
    external_id_field_name: Option<String>,
    content_type: Option<String>,
    line_ending: Option<String>,
    column_delimiter: Option<String>,
}

impl IngestJob {
    fn info(&self, st: &Shared) -> Value {
        let mut v = json!({
            "id": self.id,
            "operation": self.operation.as_str(),
            "object": self.object,
            "createdById": st.org.lock().unwrap().user_id,
            "createdDate": sf_datetime(self.created),
            "systemModstamp": sf_datetime(self.modstamp),
            "state": self.state.as_str(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": st.config.api_version.parse::<f64>().unwrap_or(62.0),
            "jobType": "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": "COMMA",
            "contentUrl": format!("services/data/v{}/jobs/ingest/{}/batches", st.config.api_version, self.id),
            "numberRecordsProcessed": self.successes.len() + self.failures.len(),
            "numberRecordsFailed": self.failures.len(),
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
            "apiActiveProcessingTime": self.processing_ms,
            "apexProcessingTime": 0,
        });
        if let Some(f) = &self.external_id_field {
            v["externalIdFieldName"] = f.clone().into();
        }
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

fn invalid_state(message: impl Into<String>) -> ApiError {
    job_error(StatusCode::CONFLICT, "INVALIDJOBSTATE", message)
}

/// `POST /jobs/ingest`.
pub fn create(st: &Arc<Shared>, req: &Request) -> Result<Reply, ApiError> {
    let body: CreateBody = req.json()?;
    if body.content_type.as_deref().is_some_and(|c| c != "CSV")
        || body
            .column_delimiter
            .as_deref()
            .is_some_and(|c| c != "COMMA")
    {
        return Err(job_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "Only CSV with COMMA delimiters is supported",
        ));
    }
    let line_ending = body.line_ending.unwrap_or_else(|| "LF".into());
    if line_ending != "LF" && line_ending != "CRLF" {
        return Err(job_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "lineEnding must be LF or CRLF",
        ));
    }
    let object = {
        let org = st.org.lock().unwrap();
        let ty = org.sobject(&body.object).ok_or_else(|| {
            job_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                format!("Entity '{}' is not supported", body.object),
            )
        })?;
        if body.operation == Operation::Upsert {
            let field = body.external_id_field_name.as_deref().unwrap_or_default();
            if !ty.field(field).is_some_and(|f| f.external_id) {
                return Err(job_error(
                    StatusCode::BAD_REQUEST,
                    "INVALIDJOB",
                    format!("externalIdFieldName is required for upsert and must be an external ID field of {}", ty.name),
                ));
            }
        }
        ty.name.to_owned()
    };
    let now = st.now();
    let id = format!("750{}", &uuid::Uuid::new_v4().simple().to_string()[..15]);
    let job = IngestJob {
        id: id.clone(),
        object,
        operation: body.operation,
        external_id_field: body.external_id_field_name,
        line_ending,
        state: JobState::Open,
        created: now,
        modstamp: now,
        data: None,
        header: Vec::new(),
        successes: Vec::new(),
        failures: Vec::new(),
        unprocessed: Vec::new(),
        error_message: None,
        started: None,
        processing_ms: 0,
    };
    let info = job.info(st);
    st.jobs.ingest.lock().unwrap().insert(id, job);
    Ok(Reply::json(StatusCode::OK, info))
}

/// `GET /jobs/ingest`.
pub fn list(st: &Shared) -> Reply {
    let jobs = st.jobs.ingest.lock().unwrap();
    let records: Vec<Value> = jobs.values().map(|j| j.info(st)).collect();
    Reply::json(
        StatusCode::OK,
        json!({"done": true, "records": records, "nextRecordsUrl": null}),
    )
}

/// `GET /jobs/ingest/{id}`.
pub fn info(st: &Shared, id: &str) -> Result<Reply, ApiError> {
    let jobs = st.jobs.ingest.lock().unwrap();
    let job = jobs.get(id).ok_or_else(not_found)?;
    Ok(Reply::json(StatusCode::OK, job.info(st)))
}

/// `PUT /jobs/ingest/{id}/batches`: 201.
pub fn upload(st: &Shared, req: &Request, id: &str) -> Result<Reply, ApiError> {
    if req.body.len() > MAX_UPLOAD_BYTES {
        return Err(job_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALIDBATCH",
            "The CSV upload exceeds the maximum of 150 MB",
        ));
    }
    let mut jobs = st.jobs.ingest.lock().unwrap();
    let job = jobs.get_mut(id).ok_or_else(not_found)?;
    if job.state != JobState::Open || job.data.is_some() {
        return Err(invalid_state("Job is not open for uploads"));
    }
    job.data = Some(req.body.to_vec());
    job.modstamp = st.now();
    Ok(Reply {
        status: StatusCode::CREATED,
        body: Body::Empty,
        headers: Vec::new(),
    })
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
}

/// `PATCH /jobs/ingest/{id}`: `UploadComplete` or `Aborted`.
pub fn set_state(st: &Arc<Shared>, req: &Request, id: &str) -> Result<Reply, ApiError> {
    let body: StateBody = req.json()?;
    let mut jobs = st.jobs.ingest.lock().unwrap();
    let job = jobs.get_mut(id).ok_or_else(not_found)?;
    match body.state.as_str() {
        "UploadComplete" if job.state == JobState::Open => {
            job.state = JobState::UploadComplete;
            job.modstamp = st.now();
            let st = st.clone();
            let id = id.to_owned();
            tokio::spawn(async move { process(st, id).await });
        }
        "Aborted" if !job.state.is_final() => {
            job.state = JobState::Aborted;
            job.modstamp = st.now();
        }
        other => {
            return Err(invalid_state(format!(
                "Cannot change the state of a {} job to {other}",
                job.state.as_str()
            )))
        }
    }
    Ok(Reply::json(StatusCode::OK, job.info(st)))
}

/// `DELETE /jobs/ingest/{id}`: 204 once the job has stopped.
pub fn delete(st: &Shared, id: &str) -> Result<Reply, ApiError> {
    let mut jobs = st.jobs.ingest.lock().unwrap();
    let job = jobs.get(id).ok_or_else(not_found)?;
    if !job.state.is_final() {
        return Err(invalid_state(
            "Only completed, failed or aborted jobs can be deleted",
        ));
    }
    jobs.remove(id);
    Ok(Reply {
        status: StatusCode::NO_CONTENT,
        body: Body::Empty,
        headers: Vec::new(),
    })
}

fn parse_rows(data: &[u8]) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut reader = csv::ReaderBuilder::new().from_reader(data);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("InvalidBatch : {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_owned).collect()))
        .collect::<Result<Vec<Vec<String>>, _>>()
        .map_err(|e| format!("InvalidBatch : {e}"))?;
    Ok((header, rows))
}

/// A CSV row as record fields: empty cells are left unset, `#N/A` sets null,
/// `Rel.ExternalId__c` columns become relationship references.
fn row_record(header: &[String], row: &[String]) -> Record {
    let mut record = Record::new();
    for (column, cell) in header.iter().zip(row) {
        if cell.is_empty() {
            continue;
        }
        let value = if cell == "#N/A" {
            Value::Null
        } else {
            Value::String(cell.clone())
        };
        match column.split_once('.') {
            Some((rel, field)) => {
                let mut reference = Map::new();
                reference.insert(field.to_owned(), value);
                record.insert(rel.to_owned(), Value::Object(reference));
            }
            None => {
                record.insert(column.clone(), value);
            }
        }
    }
    record
}

fn fail(st: &Shared, id: &str, message: String) {
    if let Some(job) = st.jobs.ingest.lock().unwrap().get_mut(id) {
        job.state = JobState::Failed;
        job.error_message = Some(message);
        job.modstamp = st.now();
    }
}

async fn process(st: Arc<Shared>, id: String) {
    let (data, object, operation, ext) = {
        let mut jobs = st.jobs.ingest.lock().unwrap();
        let Some(job) = jobs.get_mut(&id) else { return };
        if job.state != JobState::UploadComplete {
            return;
        }
        job.state = JobState::InProgress;
        job.started = Some(std::time::Instant::now());
        job.modstamp = st.now();
        (
            job.data.take().unwrap_or_default(),
            job.object.clone(),
            job.operation,
            job.external_id_field.clone(),
        )
    };
    let (header, rows) = match parse_rows(&data) {
        Ok(parsed) => parsed,
        Err(message) => return fail(&st, &id, message),
    };
    let unknown = {
        let org = st.org.lock().unwrap();
        let ty = org.sobject(&object).expect("checked at creation");
        header
            .iter()
            .find(|c| match c.split_once('.') {
                Some((rel, _)) => ty.relationship(rel).is_none(),
                None => ty.field(c).is_none(),
            })
            .cloned()
    };
    if let Some(column) = unknown {
        return fail(
            &st,
            &id,
            format!("InvalidBatch : Field name not found : {column}"),
        );
    }
    if let Some(job) = st.jobs.ingest.lock().unwrap().get_mut(&id) {
        job.header = header.clone();
    }
    let rate = st.config.bulk_records_per_second.max(1.0);
    let mut chunks = rows.chunks(CHUNK);
    while let Some(chunk) = chunks.next() {
        let aborted = st
            .jobs
            .ingest
            .lock()
            .unwrap()
            .get(&id)
            .is_none_or(|j| j.state == JobState::Aborted);
        if aborted {
            let rest: Vec<Vec<String>> = std::iter::once(chunk)
                .chain(chunks)
                .flatten()
                .cloned()
                .collect();
            if let Some(job) = st.jobs.ingest.lock().unwrap().get_mut(&id) {
                job.unprocessed = rest;
            }
            return;
        }
        let planned: Vec<Result<Write, RecordError>> = chunk
            .iter()
            .map(|row| {
                let mut record = row_record(&header, row);
                let object = object.clone();
                Ok(match operation {
                    Operation::Insert => Write::Create { object, record },
                    Operation::Upsert => Write::Upsert {
                        object,
                        field: ext.clone().unwrap_or_default(),
                        record,
                    },
                    Operation::Update | Operation::Delete => {
                        let id = record
                            .remove("Id")
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .ok_or_else(|| {
                                RecordError::new("MISSING_ARGUMENT", "Id not specified", &["Id"])
                            })?;
                        if operation == Operation::Update {
                            Write::Update { object, id, record }
                        } else {
                            Write::Delete { object, id }
                        }
                    }
                })
            })
            .collect();
        let mut results = Vec::new();
        let mut runnable = Vec::new();
        let mut positions = Vec::new();
        for (i, p) in planned.into_iter().enumerate() {
            match p {
                Ok(w) => {
                    positions.push(i);
                    runnable.push(w);
                }
                Err(e) => results.push((i, Err(e))),
            }
        }
        let ran = writes::run(&st, &mut Scope::default(), runnable, false).await;
        results.extend(positions.into_iter().zip(ran));
        results.sort_by_key(|(i, _)| *i);
        if let Some(job) = st.jobs.ingest.lock().unwrap().get_mut(&id) {
            for (i, r) in results {
                match r {
                    Ok(saved) => job
                        .successes
                        .push((saved.id, saved.created, chunk[i].clone())),
                    Err(e) => job.failures.push((e.bulk_text(), chunk[i].clone())),
                }
            }
        }
        tokio::time::sleep(Duration::from_secs_f64(chunk.len() as f64 / rate)).await;
    }
    if let Some(job) = st.jobs.ingest.lock().unwrap().get_mut(&id) {
        if job.state == JobState::InProgress {
            job.state = JobState::JobComplete;
        }
        job.processing_ms = job.started.map_or(0, |s| s.elapsed().as_millis() as u64);
        job.modstamp = st.now();
    }
}

fn csv_reply(rows: impl IntoIterator<Item = Vec<String>>) -> Result<Reply, ApiError> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    for row in rows {
        writer.write_record(&row).map_err(|e| {
            job_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN_EXCEPTION",
                e.to_string(),
            )
        })?;
    }
    let bytes = writer.into_inner().map_err(|e| {
        job_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            e.to_string(),
        )
    })?;
    Ok(Reply {
        status: StatusCode::OK,
        body: Body::Csv(String::from_utf8_lossy(&bytes).into_owned()),
        headers: Vec::new(),
    })
}

fn with_prefix(prefix: &[&str], header: &[String]) -> Vec<String> {
    prefix
        .iter()
        .map(|s| (*s).to_owned())
        .chain(header.iter().cloned())
        .collect()
}

/// `GET /jobs/ingest/{id}/successfulResults`: `sf__Id,sf__Created,<columns>`.
pub fn successful(st: &Shared, id: &str) -> Result<Reply, ApiError> {
    let jobs = st.jobs.ingest.lock().unwrap();
    let job = jobs.get(id).ok_or_else(not_found)?;
    let rows = job.successes.iter().map(|(sid, created, row)| {
        with_prefix(&[sid, if *created { "true" } else { "false" }], row)
    });
    csv_reply(std::iter::once(with_prefix(&["sf__Id", "sf__Created"], &job.header)).chain(rows))
}

/// `GET /jobs/ingest/{id}/failedResults`: `sf__Id,sf__Error,<columns>`.
pub fn failed(st: &Shared, id: &str) -> Result<Reply, ApiError> {
    let jobs = st.jobs.ingest.lock().unwrap();
    let job = jobs.get(id).ok_or_else(not_found)?;
    let rows = job
        .failures
        .iter()
        .map(|(error, row)| with_prefix(&["", error], row));
    csv_reply(std::iter::once(with_prefix(&["sf__Id", "sf__Error"], &job.header)).chain(rows))
}

/// `GET /jobs/ingest/{id}/unprocessedrecords`: the rows never processed.
pub fn unprocessed(st: &Shared, id: &str) -> Result<Reply, ApiError> {
    let jobs = st.jobs.ingest.lock().unwrap();
    let job = jobs.get(id).ok_or_else(not_found)?;
    csv_reply(std::iter::once(job.header.clone()).chain(job.unprocessed.iter().cloned()))
}
