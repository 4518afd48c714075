//! sObject Collections upserts by external id (`PATCH /composite/sobjects/{SObject}/{Field}`,
//! `allOrNone=false`): up to 200 records a call, one [`RecordOutcome`] per record in request
//! order. Upserting by external id is idempotent, so a call whose outcome is unknown
//! ([`Error::Transient`] with `outcome_unknown`) may be sent again as is.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::Call;
use crate::{Client, Error};

/// The most records one sObject Collections call may carry.
pub const MAX_RECORDS: usize = 200;

/// Per-record error codes that say "try this record again": the row was locked by another
/// transaction (Salesforce waits 10 s for it, then gives up).
const RETRYABLE_CODES: &[&str] = &["UNABLE_TO_LOCK_ROW"];

/// What happened to one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    /// A new record.
    Created {
        /// Its Salesforce id.
        id: String,
    },
    /// An existing record with the same external id, updated.
    Updated {
        /// Its Salesforce id.
        id: String,
    },
    /// Not saved.
    Failed(RecordFailure),
}

impl RecordOutcome {
    /// The record's id, when saved.
    pub fn id(&self) -> Option<&str> {
        match self {
            RecordOutcome::Created { id } | RecordOutcome::Updated { id } => Some(id),
            RecordOutcome::Failed(_) => None,
        }
    }
}

/// Why a record was not saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFailure {
    /// The `statusCode`s, e.g. `REQUIRED_FIELD_MISSING`, `DUPLICATES_DETECTED`.
    pub codes: Vec<String>,
    /// The messages, joined.
    pub message: String,
    /// The fields concerned.
    pub fields: Vec<String>,
    /// Whether sending the record again may succeed (a lock conflict); validation,
    /// duplicate, required-field and length errors are permanent.
    pub retryable: bool,
}

impl RecordFailure {
    /// A failure with these codes, classified retryable or permanent.
    pub(crate) fn new(codes: Vec<String>, message: String, fields: Vec<String>) -> Self {
        let retryable =
            !codes.is_empty() && codes.iter().all(|c| RETRYABLE_CODES.contains(&c.as_str()));
        RecordFailure {
            codes,
            message,
            fields,
            retryable,
        }
    }

    /// Whether Salesforce found no record for a relationship by external id (`INVALID_FIELD`,
    /// "Foreign key external ID: … not found …"): the parent may still be on its way.
    pub fn missing_parent(&self) -> bool {
        self.codes.iter().any(|c| c == "INVALID_FIELD")
            && self.message.contains("Foreign key external ID")
    }

    fn from_errors(errors: Vec<SaveError>) -> Self {
        RecordFailure::new(
            errors.iter().map(|e| e.status_code.clone()).collect(),
            errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            errors.into_iter().flat_map(|e| e.fields).collect(),
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveError {
    status_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

#[derive(Deserialize)]
struct SaveResult {
    id: Option<String>,
    success: bool,
    #[serde(default)]
    errors: Vec<SaveError>,
    #[serde(default)]
    created: bool,
}

impl From<SaveResult> for RecordOutcome {
    fn from(r: SaveResult) -> Self {
        match (r.success, r.id) {
            (true, Some(id)) if r.created => RecordOutcome::Created { id },
            (true, Some(id)) => RecordOutcome::Updated { id },
            _ => RecordOutcome::Failed(RecordFailure::from_errors(r.errors)),
        }
    }
}

/// Splits `records` into calls of at most [`MAX_RECORDS`].
pub fn batches<T>(records: &[T]) -> std::slice::Chunks<'_, T> {
    records.chunks(MAX_RECORDS)
}

impl Client {
    /// Creates or updates `records` of `sobject` matched by `external_id_field`, each saved
    /// or failed on its own. More than [`MAX_RECORDS`] is refused before sending (see
    /// [`batches`]).
    pub async fn upsert<R: Serialize>(
        &self,
        sobject: &str,
        external_id_field: &str,
        records: &[R],
    ) -> Result<Vec<RecordOutcome>, Error> {
        if records.len() > MAX_RECORDS {
            return Err(Error::TooManyRecords {
                count: records.len(),
                max: MAX_RECORDS,
            });
        }
        let records = records
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r)
                    .map_err(|e| Error::Decode(format!("record does not serialise: {e}")))?;
                let Value::Object(map) = &mut v else {
                    return Err(Error::Decode("a record must be a JSON object".into()));
                };
                map.insert("attributes".into(), json!({ "type": sobject }));
                Ok(v)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let path = format!("/composite/sobjects/{sobject}/{external_id_field}");
        let body = json!({"allOrNone": false, "records": records});
        let results: Vec<SaveResult> = self.json(&Call::json(Method::PATCH, &path, &body)).await?;
        if results.len() != records.len() {
            return Err(Error::Decode(format!(
                "{} results for {} records",
                results.len(),
                records.len()
            )));
        }
        Ok(results.into_iter().map(RecordOutcome::from).collect())
    }
}
