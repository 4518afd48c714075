//! Composite: `POST /composite` runs up to 25 subrequests in order; later ones refer to
//! earlier results with `@{referenceId.path}`; with `allOrNone` every subrequest shares one
//! transaction that is rolled back when any fails.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{route, Body, Reply, Request, Scope};
use crate::errors::ApiError;
use crate::state::Shared;

/// The most subrequests one Composite request may carry.
pub const MAX_SUBREQUESTS: usize = 25;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Composite {
    #[serde(default)]
    all_or_none: bool,
    composite_request: Vec<Subrequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subrequest {
    method: String,
    url: String,
    reference_id: String,
    body: Option<Value>,
}

fn halted() -> Value {
    json!([{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}])
}

/// Runs a Composite request.
pub async fn run(st: &Arc<Shared>, req: &Request) -> Result<Reply, ApiError> {
    let composite: Composite = req.json()?;
    if composite.composite_request.len() > MAX_SUBREQUESTS {
        return Err(ApiError::bad_request(
            "INVALID_INPUT",
            format!("Composite request can contain a maximum of {MAX_SUBREQUESTS} subrequests"),
        ));
    }
    let mut scope = Scope {
        txn: composite.all_or_none.then(Default::default),
        in_composite: true,
        client: req.client.clone(),
    };
    let mut bodies: HashMap<String, Value> = HashMap::new();
    let mut responses: Vec<Value> = Vec::new();
    let mut failed = false;
    for sub in &composite.composite_request {
        if failed && composite.all_or_none {
            responses.push(json!({"body": halted(), "httpHeaders": {}, "httpStatusCode": 400, "referenceId": sub.reference_id}));
            continue;
        }
        let reply = match subrequest(st, sub, &bodies, &mut scope).await {
            Ok(r) => r,
            Err(e) => Reply::from(e),
        };
        let body = match reply.body {
            Body::Json(v) => v,
            Body::Csv(s) => Value::String(s),
            Body::Empty => Value::Null,
        };
        if reply.status.is_client_error() || reply.status.is_server_error() {
            failed = true;
        } else {
            bodies.insert(sub.reference_id.clone(), body.clone());
        }
        responses.push(json!({
            "body": body,
            "httpHeaders": {},
            "httpStatusCode": reply.status.as_u16(),
            "referenceId": sub.reference_id,
        }));
    }
    if let Some(txn) = scope.txn.take() {
        if failed {
            st.org.lock().unwrap().rollback(txn);
            for r in &mut responses {
                if r["httpStatusCode"].as_u64().is_some_and(|s| s < 400) {
                    r["httpStatusCode"] = 400.into();
                    r["body"] = halted();
                }
            }
        } else {
            st.commit(txn, &st.api_origin(scope.client.as_deref()));
        }
    }
    Ok(Reply::json(
        StatusCode::OK,
        json!({"compositeResponse": responses}),
    ))
}

async fn subrequest(
    st: &Arc<Shared>,
    sub: &Subrequest,
    bodies: &HashMap<String, Value>,
    scope: &mut Scope,
) -> Result<Reply, ApiError> {
    let url = substitute_text(&sub.url, bodies)?;
    let body = sub
        .body
        .as_ref()
        .map(|b| substitute(b, bodies))
        .transpose()?;
    let method = Method::from_bytes(sub.method.as_bytes())
        .map_err(|_| ApiError::bad_request("INVALID_INPUT", "unknown method"))?;
    let prefix = format!("/services/data/v{}/", st.config.api_version);
    let rest = url.strip_prefix(&prefix).ok_or_else(ApiError::not_found)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let req = Request {
        method,
        path: path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        params: crate::server::parse_query(query),
        body: body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
        client: scope.client.clone(),
    };
    route(st, &req, scope).await
}

fn substitute(value: &Value, bodies: &HashMap<String, Value>) -> Result<Value, ApiError> {
    Ok(match value {
        Value::String(s) => Value::String(substitute_text(s, bodies)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| substitute(v, bodies))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, bodies)?)))
                .collect::<Result<_, ApiError>>()?,
        ),
        other => other.clone(),
    })
}

/// Replaces every `@{ref.path}` in `text`.
fn substitute_text(text: &str, bodies: &HashMap<String, Value>) -> Result<String, ApiError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ApiError::bad_request("INVALID_INPUT", "unterminated reference"))?;
        let expr = &after[..end];
        let value = resolve(expr, bodies).ok_or_else(|| {
            ApiError::bad_request(
                "PROCESSING_HALTED",
                format!("Invalid reference specified. No value for {expr} found."),
            )
        })?;
        match value {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `ref.records[0].Id` against the stored bodies.
fn resolve(expr: &str, bodies: &HashMap<String, Value>) -> Option<Value> {
    let mut parts = expr.split('.');
    let mut current = bodies.get(parts.next()?)?.clone();
    for part in parts {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, Some(i.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        current = current.get(name)?.clone();
        if let Some(i) = index {
            current = current.get(i)?.clone();
        }
    }
    Some(current)
}
