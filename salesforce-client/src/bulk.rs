//! Bulk API 2.0 ingest: rows are written to a CSV file on disk ([`CsvData`], never one
//! giant string), an upsert job is created, the file streamed up, the job closed
//! (`UploadComplete`) and polled until Salesforce has processed it; then the per-row
//! successful, failed and unprocessed results are read back into typed rows.
//!
//! A job counts a handful of API calls whatever its size (create, upload, close, each poll,
//! each result file). Salesforce processes it asynchronously: a deadline passed while waiting
//! ([`Error::BulkJobTimeout`]) does not stop the job.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::{Body, Call};
use crate::{Client, Error, RecordFailure};

/// The largest upload Salesforce accepts for one job (150 MB).
pub const MAX_UPLOAD_BYTES: u64 = 150 * 1024 * 1024;

/// Rows serialised to a temporary CSV file (deleted when dropped).
#[derive(Debug)]
pub struct CsvData {
    file: tempfile::NamedTempFile,
    rows: u64,
    bytes: u64,
}

impl CsvData {
    /// Writes `rows` (structs; the header comes from the first row's field names; `None`
    /// leaves a field unset, `#N/A` sets it to null). Blocking file I/O.
    pub fn from_rows<R: Serialize>(rows: impl IntoIterator<Item = R>) -> Result<Self, Error> {
        Self::write(|writer| {
            let mut count = 0;
            for row in rows {
                writer.serialize(row).map_err(|e| csv_err(&e))?;
                count += 1;
            }
            Ok(count)
        })
    }

    /// Writes a table: `header`, then each row's cells in the header's order (an empty cell
    /// leaves the field unset, `#N/A` sets it to null). Blocking file I/O.
    pub fn from_table<S: AsRef<[u8]>>(
        header: &[S],
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> Result<Self, Error> {
        Self::write(|writer| {
            writer.write_record(header).map_err(|e| csv_err(&e))?;
            let mut count = 0;
            for row in rows {
                writer.write_record(&row).map_err(|e| csv_err(&e))?;
                count += 1;
            }
            Ok(count)
        })
    }

    /// A temporary file filled by `fill` (which returns the rows it wrote), refused past
    /// [`MAX_UPLOAD_BYTES`].
    fn write(
        fill: impl FnOnce(&mut csv::Writer<std::io::BufWriter<std::fs::File>>) -> Result<u64, Error>,
    ) -> Result<Self, Error> {
        let file = tempfile::NamedTempFile::new().map_err(|e| csv_err(&e))?;
        let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(
            file.reopen().map_err(|e| csv_err(&e))?,
        ));
        let rows = fill(&mut writer)?;
        writer.flush().map_err(|e| csv_err(&e))?;
        drop(writer);
        let bytes = file.as_file().metadata().map_err(|e| csv_err(&e))?.len();
        if bytes > MAX_UPLOAD_BYTES {
            return Err(Error::Csv(format!(
                "{bytes} bytes of CSV; one job takes at most {MAX_UPLOAD_BYTES}: split the rows"
            )));
        }
        Ok(CsvData { file, rows, bytes })
    }

    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Size of the file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

fn csv_err(e: &dyn std::fmt::Display) -> Error {
    Error::Csv(e.to_string())
}

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum JobState {
    /// Accepting data.
    Open,
    /// Data complete, queued.
    UploadComplete,
    /// Being processed.
    InProgress,
    /// Processed (rows may still have failed).
    JobComplete,
    /// Stopped on an error (`errorMessage`).
    Failed,
    /// Stopped by a client.
    Aborted,
}

impl JobState {
    /// Whether the job has stopped.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// What Salesforce reports about an ingest job.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The job id (`750…`).
    pub id: String,
    /// Its state.
    pub state: JobState,
    /// The sObject.
    pub object: String,
    /// Rows processed so far.
    #[serde(default)]
    pub number_records_processed: u64,
    /// Rows failed so far.
    #[serde(default)]
    pub number_records_failed: u64,
    /// Why the job failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// A row Salesforce saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedRow {
    /// `sf__Id`.
    pub id: String,
    /// `sf__Created`: a new record, not an update.
    pub created: bool,
    /// The row as uploaded.
    pub fields: BTreeMap<String, String>,
}

/// A row Salesforce did not save.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRow {
    /// `sf__Id`, when the record exists.
    pub id: Option<String>,
    /// `sf__Error`, parsed and classified like a REST save error.
    pub failure: RecordFailure,
    /// The row as uploaded.
    pub fields: BTreeMap<String, String>,
}

/// A job's per-row results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobResults {
    /// `successfulResults`.
    pub saved: Vec<SavedRow>,
    /// `failedResults`.
    pub failed: Vec<FailedRow>,
    /// `unprocessedrecords`: rows never attempted (the job failed or was aborted).
    pub unprocessed: Vec<BTreeMap<String, String>>,
}

/// `sf__Error`: `CODE:message:field1,field2 --` (the message may contain colons).
fn parse_error(text: &str) -> RecordFailure {
    let text = text.trim().trim_end_matches("--").trim_end();
    let (code, rest) = text.split_once(':').unwrap_or((text, ""));
    let (message, fields) = rest.rsplit_once(':').unwrap_or((rest, ""));
    RecordFailure::new(
        vec![code.to_owned()],
        message.to_owned(),
        fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// The rows of a results CSV as column → value maps.
fn read_rows(csv_text: &[u8]) -> Result<Vec<BTreeMap<String, String>>, Error> {
    let mut reader = csv::Reader::from_reader(csv_text);
    let header = reader
        .headers()
        .map_err(|e| Error::Csv(e.to_string()))?
        .clone();
    reader
        .records()
        .map(|r| {
            let r = r.map_err(|e| Error::Csv(e.to_string()))?;
            Ok(header
                .iter()
                .zip(r.iter())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect())
        })
        .collect()
}

impl Client {
    /// Creates an upsert job for `object` by `external_id_field`, uploads `data` and closes
    /// it: Salesforce then processes it asynchronously (see [`Client::wait_for_bulk_job`]).
    pub async fn bulk_upsert(
        &self,
        object: &str,
        external_id_field: &str,
        data: &CsvData,
    ) -> Result<JobInfo, Error> {
        let spec = json!({
            "object": object,
            "externalIdFieldName": external_id_field,
            "contentType": "CSV",
            "operation": "upsert",
            "lineEnding": "LF",
        });
        let job: JobInfo = self
            .json(&Call::json(Method::POST, "/jobs/ingest", &spec))
            .await?;
        let batches = format!("/jobs/ingest/{}/batches", job.id);
        self.call(&Call {
            method: Method::PUT,
            path: &batches,
            query: &[],
            body: Body::CsvFile(data.file.path()),
        })
        .await?;
        let path = format!("/jobs/ingest/{}", job.id);
        let state = json!({"state": "UploadComplete"});
        self.json(&Call::json(Method::PATCH, &path, &state)).await
    }

    /// The job's current information.
    pub async fn bulk_job(&self, id: &str) -> Result<JobInfo, Error> {
        self.json(&Call::get(&format!("/jobs/ingest/{id}"))).await
    }

    /// Polls the job every `poll` until it has stopped: its information once `JobComplete`,
    /// [`Error::BulkJobFailed`] if `Failed` or `Aborted`, [`Error::BulkJobTimeout`] after
    /// `deadline`.
    pub async fn wait_for_bulk_job(
        &self,
        id: &str,
        poll: Duration,
        deadline: Duration,
    ) -> Result<JobInfo, Error> {
        let start = Instant::now();
        loop {
            let job = self.bulk_job(id).await?;
            match job.state {
                JobState::JobComplete => return Ok(job),
                JobState::Failed | JobState::Aborted => {
                    return Err(Error::BulkJobFailed {
                        id: job.id,
                        state: format!("{:?}", job.state),
                        message: job.error_message.unwrap_or_default(),
                    })
                }
                state if start.elapsed() >= deadline => {
                    return Err(Error::BulkJobTimeout {
                        id: job.id,
                        state: format!("{state:?}"),
                    })
                }
                _ => tokio::time::sleep(poll).await,
            }
        }
    }

    /// The job's successful, failed and unprocessed rows (three API calls).
    pub async fn bulk_results(&self, id: &str) -> Result<JobResults, Error> {
        let get = |what: &'static str| {
            let path = format!("/jobs/ingest/{id}/{what}");
            async move {
                let (_, body) = self.call(&Call::get(&path)).await?;
                read_rows(&body)
            }
        };
        let saved = get("successfulResults")
            .await?
            .into_iter()
            .map(|mut row| {
                Ok(SavedRow {
                    id: row.remove("sf__Id").unwrap_or_default(),
                    created: row.remove("sf__Created").is_some_and(|c| c == "true"),
                    fields: row,
                })
            })
            .collect::<Result<_, Error>>()?;
        let failed = get("failedResults")
            .await?
            .into_iter()
            .map(|mut row| FailedRow {
                id: row.remove("sf__Id").filter(|id| !id.is_empty()),
                failure: parse_error(&row.remove("sf__Error").unwrap_or_default()),
                fields: row,
            })
            .collect();
        let unprocessed = get("unprocessedrecords").await?;
        Ok(JobResults {
            saved,
            failed,
            unprocessed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sf_error_is_split_into_code_message_and_fields() {
        let f = parse_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --");
        assert_eq!(f.codes, ["REQUIRED_FIELD_MISSING"]);
        assert_eq!(f.message, "Required fields are missing: [Name]");
        assert_eq!(f.fields, ["Name"]);
        assert!(!f.retryable);
        let f =
            parse_error("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record: --");
        assert_eq!(
            f.message,
            "unable to obtain exclusive access to this record"
        );
        assert!(f.fields.is_empty());
        assert!(f.retryable);
    }
}
