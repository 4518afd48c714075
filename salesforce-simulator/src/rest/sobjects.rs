//! Single records: `POST /sobjects/{SObject}`, `GET|PATCH|DELETE /sobjects/{SObject}/{id}`,
//! `PATCH|GET /sobjects/{SObject}/{ExternalIdField}/{value}`.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::writes::{self, Write};
use super::{Body, Reply, Request, Scope};
use crate::errors::{ApiError, RecordError};
use crate::org::Record;
use crate::state::Shared;

fn record_body(req: &Request) -> Result<Record, ApiError> {
    req.json::<Record>()
}

fn single(
    results: Vec<Result<crate::org::Saved, RecordError>>,
) -> Result<crate::org::Saved, ApiError> {
    results
        .into_iter()
        .next()
        .expect("one write, one result")
        .map_err(|e| ApiError::bad_request(&e.status_code, e.message))
}

fn check_object(st: &Shared, object: &str) -> Result<&'static str, ApiError> {
    st.org
        .lock()
        .unwrap()
        .sobject(object)
        .map(|t| t.name)
        .ok_or_else(ApiError::not_found)
}

/// `POST /sobjects/{SObject}`: 201 `{id, success, errors}`.
pub async fn create(
    st: &Arc<Shared>,
    req: &Request,
    scope: &mut Scope,
    object: &str,
) -> Result<Reply, ApiError> {
    let object = check_object(st, object)?.to_owned();
    let record = record_body(req)?;
    let saved = single(writes::run(st, scope, vec![Write::Create { object, record }], true).await)?;
    Ok(Reply::json(
        StatusCode::CREATED,
        json!({"id": saved.id, "success": true, "errors": []}),
    ))
}

/// `PATCH /sobjects/{SObject}/{id}`: 204.
pub async fn update(
    st: &Arc<Shared>,
    req: &Request,
    scope: &mut Scope,
    object: &str,
    id: &str,
) -> Result<Reply, ApiError> {
    let object = check_object(st, object)?.to_owned();
    let record = record_body(req)?;
    single(
        writes::run(
            st,
            scope,
            vec![Write::Update {
                object,
                id: id.to_owned(),
                record,
            }],
            true,
        )
        .await,
    )?;
    Ok(Reply {
        status: StatusCode::NO_CONTENT,
        body: Body::Empty,
        headers: Vec::new(),
    })
}

/// `DELETE /sobjects/{SObject}/{id}`: 204.
pub async fn delete(
    st: &Arc<Shared>,
    scope: &mut Scope,
    object: &str,
    id: &str,
) -> Result<Reply, ApiError> {
    let object = check_object(st, object)?.to_owned();
    let result = single(
        writes::run(
            st,
            scope,
            vec![Write::Delete {
                object,
                id: id.to_owned(),
            }],
            true,
        )
        .await,
    );
    match result {
        Ok(_) => Ok(Reply {
            status: StatusCode::NO_CONTENT,
            body: Body::Empty,
            headers: Vec::new(),
        }),
        Err(e) if e.code == "ENTITY_IS_DELETED" || e.code == "MALFORMED_ID" => {
            Err(ApiError::not_found())
        }
        Err(e) => Err(e),
    }
}

/// `PATCH /sobjects/{SObject}/{field}/{value}`: 201 when created, 200 when updated.
pub async fn upsert(
    st: &Arc<Shared>,
    req: &Request,
    scope: &mut Scope,
    object: &str,
    field: &str,
    value: &str,
) -> Result<Reply, ApiError> {
    let object = check_object(st, object)?.to_owned();
    let mut record = record_body(req)?;
    record.insert(field.to_owned(), value.into());
    let saved = single(
        writes::run(
            st,
            scope,
            vec![Write::Upsert {
                object,
                field: field.to_owned(),
                record,
            }],
            true,
        )
        .await,
    )?;
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Reply::json(
        status,
        json!({"id": saved.id, "success": true, "errors": [], "created": saved.created}),
    ))
}

fn shaped(st: &Shared, object: &str, record: &Record, fields: Option<&String>) -> Value {
    let id = record["Id"].as_str().unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": object, "url": format!("/services/data/v{}/sobjects/{object}/{id}", st.config.api_version)}),
    );
    let wanted: Option<Vec<String>> =
        fields.map(|f| f.split(',').map(|s| s.trim().to_lowercase()).collect());
    for (k, v) in record {
        if wanted
            .as_ref()
            .is_none_or(|w| w.contains(&k.to_lowercase()))
        {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// `GET /sobjects/{SObject}/{id}` (`?fields=` optional).
pub fn get(st: &Shared, req: &Request, object: &str, id: &str) -> Result<Reply, ApiError> {
    let org = st.org.lock().unwrap();
    let ty = org.sobject(object).ok_or_else(ApiError::not_found)?;
    let record = org.get(ty.name, id).ok_or_else(ApiError::not_found)?;
    Ok(Reply::json(
        StatusCode::OK,
        shaped(st, ty.name, record, req.params.get("fields")),
    ))
}

/// `GET /sobjects/{SObject}/{field}/{value}`.
pub fn get_by_external_id(
    st: &Shared,
    req: &Request,
    object: &str,
    field: &str,
    value: &str,
) -> Result<Reply, ApiError> {
    let org = st.org.lock().unwrap();
    let ty = org.sobject(object).ok_or_else(ApiError::not_found)?;
    let record = org
        .find_external(ty.name, field, value)
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::json(
        StatusCode::OK,
        shaped(st, ty.name, record, req.params.get("fields")),
    ))
}
