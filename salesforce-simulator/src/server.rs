//! The HTTP side: OAuth token endpoint and the REST entry point, which authenticates,
//! enforces the daily and concurrent request limits, injects faults, dispatches to
//! [`crate::rest::route`], logs the call and adds `Sforce-Limit-Info`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{DefaultBodyLimit, Form, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde_json::json;

use crate::bulk::ingest::MAX_UPLOAD_BYTES;
use crate::clock::epoch_millis;
use crate::errors::ApiError;
use crate::rest::{self, Body, Reply, Request, Scope};
use crate::state::{Fault, Shared};
use crate::{AfterApply, Call};

/// The router of the simulator's HTTP endpoints.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data/{version}/{*rest}", any(api))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024 * 1024))
        .with_state(shared)
}

/// Decodes `a=1&b=2`.
pub fn parse_query(query: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str(query).unwrap_or_default()
}

async fn token(
    State(st): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"})),
        )
            .into_response();
    }
    if field("client_id") != st.config.client_id
        || field("client_secret") != st.config.client_secret
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client", "error_description": "invalid client credentials"})),
        )
            .into_response();
    }
    let now = st.now();
    let access_token = st
        .tokens
        .issue(&st.config.org_id, now, st.config.token_lifetime);
    let user = st.org.lock().unwrap().user_id.clone();
    Json(json!({
        "access_token": access_token,
        "signature": uuid::Uuid::new_v4().simple().to_string(),
        "scope": "api",
        "instance_url": st.base_url,
        "id": format!("{}/id/{}/{user}", st.base_url, st.config.org_id),
        "token_type": "Bearer",
        "issued_at": epoch_millis(now).to_string(),
    }))
    .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("OAuth "))
        .map(str::trim)
}

fn into_response(reply: Reply) -> Response {
    let mut response = match reply.body {
        Body::Json(v) => (reply.status, Json(v)).into_response(),
        Body::Csv(text) => (
            reply.status,
            [(header::CONTENT_TYPE, "text/csv; charset=UTF-8")],
            text,
        )
            .into_response(),
        Body::Empty => (reply.status, HttpBody::empty()).into_response(),
    };
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

/// `Sforce-Call-Options: client=NAME[, defaultNamespace=…]` → `NAME`.
fn call_options_client(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("sforce-call-options")?.to_str().ok()?;
    value
        .split(',')
        .filter_map(|option| option.trim().split_once('='))
        .find(|(name, _)| name.trim() == "client")
        .map(|(_, client)| client.trim().to_owned())
        .filter(|client| !client.is_empty())
}

fn limit_exceeded(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", message)
}

fn server_error(code: u16) -> Reply {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let error = if status == StatusCode::SERVICE_UNAVAILABLE {
        ApiError::new(
            status,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable, try again later",
        )
    } else {
        ApiError::new(
            status,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support",
        )
    };
    Reply::from(error)
}

async fn api(
    State(st): State<Arc<Shared>>,
    Path((version, rest)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if version.strip_prefix('v') != Some(st.config.api_version.as_str()) {
        return into_response(ApiError::not_found().into());
    }
    let now = st.now();
    if !bearer(&headers).is_some_and(|t| st.tokens.is_valid(t, now)) {
        return into_response(ApiError::invalid_session().into());
    }
    let Some(_in_flight) = st.in_flight.admit() else {
        return with_usage(
            &st,
            into_response(
                limit_exceeded("ConcurrentRequests (Concurrent API Requests) Limit exceeded.")
                    .into(),
            ),
        );
    };
    if !st.budget.try_use(now) {
        return with_usage(
            &st,
            into_response(limit_exceeded("TotalRequests Limit exceeded.").into()),
        );
    }
    let req = Request {
        method: method.clone(),
        path: rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        params: parse_query(query.as_deref().unwrap_or_default()),
        body,
        client: call_options_client(&headers),
    };
    let kind = req.kind();
    let fault = st.faults.lock().unwrap().before.pop_front();
    let mut delay = None;
    let reply = match fault {
        Some(Fault::Status(code)) => server_error(code),
        other => {
            if let Some(Fault::Delay(d)) = other {
                delay = Some(d);
            }
            let mut scope = Scope {
                client: req.client.clone(),
                ..Scope::default()
            };
            let reply = rest::route(&st, &req, &mut scope)
                .await
                .unwrap_or_else(Reply::from);
            let wrote = method != Method::GET && reply.status.is_success();
            let after = if wrote {
                st.faults.lock().unwrap().after_apply.pop_front()
            } else {
                None
            };
            match after {
                Some(AfterApply::Status(code)) => server_error(code),
                Some(AfterApply::Delay(d)) => {
                    delay = Some(d);
                    reply
                }
                None => reply,
            }
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    st.calls.lock().unwrap().push(Call {
        at: st.now(),
        method: method.to_string(),
        path: format!("/services/data/{version}/{rest}"),
        kind,
        status: reply.status.as_u16(),
    });
    with_usage(&st, into_response(reply))
}

fn with_usage(st: &Shared, mut response: Response) -> Response {
    let (used, max) = st.budget.usage(st.now());
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        response.headers_mut().insert("Sforce-Limit-Info", v);
    }
    response
}
