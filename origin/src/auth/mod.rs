//! Who may call what: named API tokens with scopes ([`tokens`]), one tower layer that checks
//! them for every route ([`guard`], driven by the route table [`routes::ROUTES`]), and the
//! audit log of write actions ([`audit`]). [`cli`] is `origin tokens` and `origin audit`.
//!
//! Scopes (none implies another; a token may hold several):
//! - `ops:read`: the admin listings (dead letters, catalog runs, rules, audit) and `/metrics`;
//! - `ops:write`: replay, resync, cancel, rules edits, import and push;
//! - `integrator`: `POST /v1/carts/validate` and `/v1/draft-orders` only.
//!
//! No or an unknown, revoked or too short token: 401. A valid token without the route's scope:
//! 403. See `README.md` here.

pub mod audit;
pub mod cli;
pub mod routes;
pub mod tokens;

use std::fmt;
use std::str::FromStr;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::http_error::ApiError;

use routes::Access;

/// A permission a token can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum Scope {
    /// Read the admin listings and metrics.
    #[serde(rename = "ops:read")]
    #[value(name = "ops:read")]
    OpsRead,
    /// Operator write actions.
    #[serde(rename = "ops:write")]
    #[value(name = "ops:write")]
    OpsWrite,
    /// Cart validation and draft orders, for an integrating system.
    #[serde(rename = "integrator")]
    #[value(name = "integrator")]
    Integrator,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::OpsRead, Scope::OpsWrite, Scope::Integrator];

    /// The name stored and shown (`ops:read`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OpsRead => "ops:read",
            Scope::OpsWrite => "ops:write",
            Scope::Integrator => "integrator",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}"))
    }
}

/// The authenticated token of a request, in the request's extensions for the handlers.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's id (`api_tokens.id`).
    pub token_id: i64,
    /// The token's name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// Whether it has a callback secret (integrators whose draft-order callbacks are signed).
    pub has_callback_secret: bool,
}

impl Caller {
    /// Whether the token holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = ApiError::status_only(status, message).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
    }
    response
}

/// The layer in front of every route (`route_layer(from_fn_with_state(pool, guard))`): looks
/// the matched route up in [`routes::ROUTES`], authenticates the bearer token for the routes
/// that need a scope, puts the [`Caller`] in the request's extensions, and writes the audit row
/// of audited routes. A route missing from the table is refused (500): access is never
/// granted by omission.
pub async fn guard(State(pool): State<PgPool>, mut request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let method = if request.method() == Method::HEAD {
        Method::GET
    } else {
        request.method().clone()
    };
    let Some(route) = routes::find(method.as_str(), &path) else {
        if routes::ROUTES.iter().any(|r| r.path == path) {
            return refusal(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        tracing::error!(path, "route has no entry in the access table; refused");
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "route without access rule",
        );
    };
    let scope = match route.access {
        Access::Public | Access::Signed | Access::Console => return next.run(request).await,
        Access::Scope(scope) => scope,
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let caller = match presented {
        Some(token) => match tokens::authenticate(&pool, token).await {
            Ok(caller) => caller,
            Err(e) => {
                tracing::error!(error = %e, "token lookup failed");
                return refusal(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
            }
        },
        None => None,
    };
    let Some(caller) = caller else {
        return refusal(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
    };
    let action = format!("{method} {path}");
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if !caller.has(scope) {
        tracing::warn!(token = %caller.name, %action, %scope, "token lacks the route's scope");
        if route.audited {
            let status = StatusCode::FORBIDDEN.as_u16();
            audit::record_http(&pool, &caller, &action, &target, status, None).await;
        }
        return refusal(
            StatusCode::FORBIDDEN,
            &format!("token {} lacks scope {scope}", caller.name),
        );
    }
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    if route.audited {
        let detail = response
            .extensions()
            .get::<audit::Detail>()
            .map(|d| d.0.as_str());
        let status = response.status().as_u16();
        audit::record_http(&pool, &caller, &action, &target, status, detail).await;
    }
    response
}
