//! `GET /query?q=` and `GET /query/{locator}`: SOQL results in pages of 2,000 rows with
//! `totalSize`, `done` and `nextRecordsUrl`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::{Reply, Request};
use crate::errors::ApiError;
use crate::soql;
use crate::state::Shared;

/// Runs a query; the rows in REST shape and `totalSize`.
pub fn rows(st: &Shared, q: &str) -> Result<soql::Rows, ApiError> {
    let query = soql::parse(q).map_err(|e| ApiError::bad_request("MALFORMED_QUERY", e.0))?;
    let org = st.org.lock().unwrap();
    soql::run(&org, &query, &st.config.api_version).map_err(|e| match e {
        soql::EvalError::UnknownObject(_) => ApiError::bad_request("INVALID_TYPE", e.to_string()),
        soql::EvalError::UnknownField { .. } => {
            ApiError::bad_request("INVALID_FIELD", e.to_string())
        }
    })
}

/// `GET /query?q=…`.
pub fn run(st: &Shared, req: &Request) -> Result<Reply, ApiError> {
    let q = req.params.get("q").ok_or_else(|| {
        ApiError::bad_request("MALFORMED_QUERY", "A query string has to be specified")
    })?;
    let result = rows(st, q)?;
    let locator = format!("01g{}", uuid::Uuid::new_v4().simple());
    Ok(page(st, &locator, result.records, 0, result.total))
}

fn page(st: &Shared, locator: &str, mut rows: Vec<Value>, offset: usize, total: usize) -> Reply {
    let size = st.config.query_page_size;
    let rest = if rows.len() > size {
        rows.split_off(size)
    } else {
        Vec::new()
    };
    let mut body = json!({"totalSize": total, "done": rest.is_empty(), "records": rows});
    if !rest.is_empty() {
        let next = offset + size;
        body["nextRecordsUrl"] = format!(
            "/services/data/v{}/query/{locator}-{next}",
            st.config.api_version
        )
        .into();
        st.cursors
            .lock()
            .unwrap()
            .insert(format!("{locator}-{next}"), rest);
    }
    Reply::json(StatusCode::OK, body)
}

/// `GET /query/{locator}-{offset}`.
pub fn more(st: &Shared, locator: &str) -> Result<Reply, ApiError> {
    let rows =
        st.cursors.lock().unwrap().remove(locator).ok_or_else(|| {
            ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator")
        })?;
    let (base, offset) = locator
        .rsplit_once('-')
        .and_then(|(b, o)| Some((b, o.parse::<usize>().ok()?)))
        .ok_or_else(|| ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator"))?;
    let total = offset + rows.len();
    Ok(page(st, base, rows, offset, total))
}
