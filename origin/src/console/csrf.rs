//! The checks in front of every console write, before its form is read: the request is not
//! cross-site (`Sec-Fetch-Site`), the form's `csrf` field equals the session's secret
//! (compared in constant time), and the session's token holds `ops:write`. A refusal is 403
//! and, once a session is known, an audit row (`denied`).

use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use super::session::Session;
use super::ConsoleError;
use crate::auth::Scope;

/// Refuses a request a browser marked as coming from another site.
pub fn same_site(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    if cross_site {
        return Err(ConsoleError::Forbidden(
            "cross-site requests are refused".into(),
        ));
    }
    Ok(())
}

/// Refuses a form whose CSRF token is missing or not the session's.
pub fn matches(session: &Session, presented: Option<&str>) -> Result<(), ConsoleError> {
    let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(session.csrf.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(
            "missing or wrong CSRF token: reload the page and try again".into(),
        ))
    }
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// Checks a write of `session` (`action`, e.g. `POST /console/catalog/{id}/cancel`, on
/// `target`, the path) and only then reads its urlencoded `body` as `T`. Each refusal is
/// audited with the session's token.
pub async fn write<T: DeserializeOwned>(
    pool: &PgPool,
    session: &Session,
    headers: &HeaderMap,
    body: &[u8],
    action: &str,
    target: &str,
) -> Result<T, ConsoleError> {
    let presented = serde_urlencoded::from_bytes::<CsrfField>(body)
        .ok()
        .and_then(|f| f.csrf);
    let checked = same_site(headers)
        .and_then(|()| matches(session, presented.as_deref()))
        .and_then(|()| {
            if session.can_write() {
                Ok(())
            } else {
                Err(ConsoleError::Forbidden(format!(
                    "token {} lacks scope {}",
                    session.caller.name,
                    Scope::OpsWrite
                )))
            }
        });
    if let Err(e) = checked {
        tracing::warn!(token = %session.caller.name, action, error = %e, "console write refused");
        session
            .audit(
                pool,
                action,
                target,
                StatusCode::FORBIDDEN,
                Some(&e.to_string()),
            )
            .await;
        return Err(e);
    }
    serde_urlencoded::from_bytes(body).map_err(|e| ConsoleError::BadRequest(e.to_string()))
}
