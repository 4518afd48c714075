//! sObject Collections: `POST /composite/sobjects` (create), `PATCH /composite/sobjects`
//! (update by id) and `PATCH /composite/sobjects/{SObject}/{ExternalIdField}` (upsert), up to
//! 200 records, with per-record results and `allOrNone`.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::writes::{self, Write};
use super::{Reply, Request, Scope};
use crate::errors::{ApiError, RecordError};
use crate::org::{Record, Saved};
use crate::state::Shared;

/// The most records one call may carry.
pub const MAX_RECORDS: usize = 200;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    all_or_none: bool,
    records: Vec<Record>,
}

fn parse(req: &Request) -> Result<Body, ApiError> {
    let body: Body = req.json()?;
    if body.records.len() > MAX_RECORDS {
        return Err(ApiError::bad_request(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        ));
    }
    Ok(body)
}

fn type_of(record: &Record) -> Option<String> {
    record
        .get("attributes")?
        .get("type")?
        .as_str()
        .map(str::to_owned)
}

fn results(results: Vec<Result<Saved, RecordError>>, with_created: bool) -> Reply {
    let items: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(s) if with_created => {
                json!({"id": s.id, "success": true, "errors": [], "created": s.created})
            }
            Ok(s) => json!({"id": s.id, "success": true, "errors": []}),
            Err(e) => json!({"success": false, "errors": [e]}),
        })
        .collect();
    Reply::json(StatusCode::OK, Value::Array(items))
}

fn missing_type() -> RecordError {
    RecordError::new("INVALID_TYPE", "Must send a concrete entity type.", &[])
}

/// Writes whose input was already refused keep their error; the rest run.
async fn run_checked(
    st: &Arc<Shared>,
    scope: &mut Scope,
    checked: Vec<Result<Write, RecordError>>,
    all_or_none: bool,
) -> Vec<Result<Saved, RecordError>> {
    let mut refused = Vec::new();
    let mut writes = Vec::new();
    for (i, c) in checked.into_iter().enumerate() {
        match c {
            Ok(w) => writes.push(w),
            Err(e) => refused.push((i, e)),
        }
    }
    if all_or_none && !refused.is_empty() {
        let mut out: Vec<Result<Saved, RecordError>> = (0..writes.len() + refused.len())
            .map(|_| Err(RecordError::rolled_back()))
            .collect();
        for (i, e) in refused {
            out[i] = Err(e);
        }
        return out;
    }
    let mut ran = writes::run(st, scope, writes, all_or_none)
        .await
        .into_iter();
    let total = ran.len() + refused.len();
    let mut refused = refused.into_iter().peekable();
    (0..total)
        .map(|i| match refused.peek() {
            Some((j, _)) if *j == i => Err(refused.next().expect("peeked").1),
            _ => ran.next().expect("one result per write"),
        })
        .collect()
}

/// `POST /composite/sobjects`.
pub async fn create(st: &Arc<Shared>, req: &Request, scope: &mut Scope) -> Result<Reply, ApiError> {
    let body = parse(req)?;
    let checked = body
        .records
        .into_iter()
        .map(|record| {
            let object = type_of(&record).ok_or_else(missing_type)?;
            if record.contains_key("Id") {
                return Err(RecordError::new(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                    &["Id"],
                ));
            }
            Ok(Write::Create { object, record })
        })
        .collect();
    Ok(results(
        run_checked(st, scope, checked, body.all_or_none).await,
        false,
    ))
}

/// `PATCH /composite/sobjects`.
pub async fn update(st: &Arc<Shared>, req: &Request, scope: &mut Scope) -> Result<Reply, ApiError> {
    let body = parse(req)?;
    let checked = body
        .records
        .into_iter()
        .map(|mut record| {
            let object = type_of(&record).ok_or_else(missing_type)?;
            let id = record
                .remove("Id")
                .or_else(|| record.remove("id"))
                .and_then(|v| v.as_str().map(str::to_owned))
                .ok_or_else(|| {
                    RecordError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        &[],
                    )
                })?;
            Ok(Write::Update { object, id, record })
        })
        .collect();
    Ok(results(
        run_checked(st, scope, checked, body.all_or_none).await,
        false,
    ))
}

/// `PATCH /composite/sobjects/{SObject}/{ExternalIdField}`.
pub async fn upsert(
    st: &Arc<Shared>,
    req: &Request,
    scope: &mut Scope,
    object: &str,
    field: &str,
) -> Result<Reply, ApiError> {
    let body = parse(req)?;
    let name = {
        let org = st.org.lock().unwrap();
        let ty = org.sobject(object).ok_or_else(ApiError::not_found)?;
        if !ty.field(field).is_some_and(|f| f.external_id) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {field}"),
            ));
        }
        ty.name
    };
    let checked = body
        .records
        .into_iter()
        .map(|record| {
            if type_of(&record).is_some_and(|t| !t.eq_ignore_ascii_case(name)) {
                return Err(RecordError::new(
                    "INVALID_TYPE",
                    format!("This API only supports records of type {name}"),
                    &[],
                ));
            }
            Ok(Write::Upsert {
                object: name.to_owned(),
                field: field.to_owned(),
                record,
            })
        })
        .collect();
    Ok(results(
        run_checked(st, scope, checked, body.all_or_none).await,
        true,
    ))
}
