//! Signing in to the console with an API token, and the session that follows.
//!
//! `POST /console/sign-in` takes the token from a form, authenticates it like the bearer guard
//! does ([`tokens::authenticate`]) and requires `ops:read` (every page is a read). A session is
//! a random id in a cookie (`HttpOnly; Secure; SameSite=Strict; Path=/console`) and a row in
//! `console_sessions` keyed by the id's SHA-256, with the token and the session's CSRF secret.
//! It lasts [`SESSION_TTL`], ends at sign-out, and is dead as soon as its token is revoked or
//! rotated. Sign-in and sign-out are written to the audit log.

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use maud::{html, Markup};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::Duration;

use super::{csrf, layout, Console, ConsoleError};
use crate::auth::audit::{self, Outcome};
use crate::auth::{tokens, Caller, Scope};

/// The session cookie's name.
pub const COOKIE: &str = "wholesail_console";

const SIGN_IN: &str = "POST /console/sign-in";
const SIGN_IN_PATH: &str = "/console/sign-in";

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::hours(8);

/// A live console session: the token it was opened with and its CSRF secret.
#[derive(Clone, Debug)]
pub struct Session {
    /// The signed-in token.
    pub caller: Caller,
    /// The value every form of this session carries in its `csrf` field.
    pub csrf: String,
    id_hash: Vec<u8>,
}

impl Session {
    /// Whether the session may act (its token holds `ops:write`); pages show write buttons
    /// only then.
    pub fn can_write(&self) -> bool {
        self.caller.has(Scope::OpsWrite)
    }

    /// Writes the audit row of an action of this session that answered `status`.
    pub async fn audit(
        &self,
        pool: &PgPool,
        action: &str,
        target: &str,
        status: StatusCode,
        detail: Option<&str>,
    ) {
        record(pool, &self.caller, action, target, status, detail).await;
    }
}

/// Writes an audit row for a console action of `caller`: a redirect after a POST is the
/// console's success, 403 a refusal. A failure is logged (the action happened either way).
async fn record(
    pool: &PgPool,
    caller: &Caller,
    action: &str,
    target: &str,
    status: StatusCode,
    detail: Option<&str>,
) {
    let outcome = if status.is_success() || status.is_redirection() {
        Outcome::Success
    } else if status == StatusCode::FORBIDDEN {
        Outcome::Denied
    } else {
        Outcome::Error
    };
    let code = Some(status.as_u16());
    if let Err(e) = audit::record(pool, Some(caller), action, target, outcome, code, detail).await {
        tracing::error!(error = %e, token = %caller.name, action, target, "audit row not written");
    }
}

fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.as_bytes()).to_vec()
}

/// The session id in the request's cookies, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn set_cookie(id: &str, max_age: i64) -> String {
    format!("{COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/console; Max-Age={max_age}")
}

/// Opens a session for `caller`; returns the cookie's value (the id, shown nowhere else).
/// Expired sessions are swept on the way.
pub async fn open(pool: &PgPool, caller: &Caller) -> Result<String, sqlx::Error> {
    sqlx::query!("DELETE FROM console_sessions WHERE expires_at < now()")
        .execute(pool)
        .await?;
    let id = random_secret();
    sqlx::query!(
        "INSERT INTO console_sessions (id_hash, token_id, csrf_secret, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        hash(&id),
        caller.token_id,
        random_secret(),
        SESSION_TTL.as_seconds_f64(),
    )
    .execute(pool)
    .await?;
    Ok(id)
}

/// The live session with cookie value `id`: unexpired, its token neither revoked nor rotated
/// since sign-in.
pub async fn load(pool: &PgPool, id: &str) -> Result<Option<Session>, sqlx::Error> {
    let id_hash = hash(id);
    let row = sqlx::query!(
        r#"SELECT s.csrf_secret, t.id, t.name, t.scopes,
                  t.callback_secret IS NOT NULL AS "has_callback_secret!"
           FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id
           WHERE s.id_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL
             AND (t.rotated_at IS NULL OR t.rotated_at <= s.created_at)"#,
        id_hash
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Session {
        caller: Caller {
            token_id: r.id,
            name: r.name,
            scopes: r.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
            has_callback_secret: r.has_callback_secret,
        },
        csrf: r.csrf_secret,
        id_hash,
    }))
}

impl<S> FromRequestParts<S> for Session
where
    Console: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ConsoleError> {
        let console = Console::from_ref(state);
        let page = parts.method == Method::GET || parts.method == Method::HEAD;
        let Some(id) = cookie_value(&parts.headers) else {
            return Err(ConsoleError::SignIn { page });
        };
        load(&console.pool, id)
            .await?
            .ok_or(ConsoleError::SignIn { page })
    }
}

/// `GET /console/sign-in`: the form.
pub async fn sign_in_page() -> Markup {
    sign_in_form(None)
}

fn sign_in_form(error: Option<&str>) -> Markup {
    layout::bare(
        "Sign in",
        html! {
            h1 { "Wholesail console" }
            p { "Sign in with an API token that holds " code { "ops:read" } " (and "
                code { "ops:write" } " to act). Create one with "
                code { "origin tokens create --name ops-you --scope ops:read --scope ops:write" } "." }
            @if let Some(e) = error { p.flash.error role="alert" { (e) } }
            form method="post" action="/console/sign-in" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /console/sign-in`: a valid token with `ops:read` opens a session (cookie set, then to
/// the overview); anything else shows the form again with 401 (or 403 for a token without
/// `ops:read`).
pub async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, ConsoleError> {
    csrf::same_site(&headers)?;
    let Some(caller) = tokens::authenticate(&console.pool, form.token.trim()).await? else {
        tracing::info!("console sign-in with an unknown token refused");
        let page = sign_in_form(Some("That token is unknown, revoked or rotated out."));
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    if !caller.has(Scope::OpsRead) {
        let message = format!("Token {} lacks scope ops:read.", caller.name);
        let forbidden = StatusCode::FORBIDDEN;
        record(
            &console.pool,
            &caller,
            SIGN_IN,
            SIGN_IN_PATH,
            forbidden,
            None,
        )
        .await;
        return Ok((StatusCode::FORBIDDEN, sign_in_form(Some(&message))).into_response());
    }
    let id = open(&console.pool, &caller).await?;
    record(
        &console.pool,
        &caller,
        SIGN_IN,
        SIGN_IN_PATH,
        StatusCode::SEE_OTHER,
        None,
    )
    .await;
    tracing::info!(token = %caller.name, "console session opened");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                set_cookie(&id, SESSION_TTL.whole_seconds()),
            ),
            (header::LOCATION, "/console".to_owned()),
        ],
    )
        .into_response())
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub struct SignOut {
    csrf: Option<String>,
}

/// `POST /console/sign-out`: deletes the session (CSRF-checked; any session may sign out).
pub async fn sign_out(
    State(console): State<Console>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Result<Response, ConsoleError> {
    csrf::same_site(&headers)?;
    csrf::matches(&session, form.csrf.as_deref())?;
    sqlx::query!(
        "DELETE FROM console_sessions WHERE id_hash = $1",
        session.id_hash
    )
    .execute(&console.pool)
    .await?;
    session
        .audit(
            &console.pool,
            "POST /console/sign-out",
            "/console/sign-out",
            StatusCode::SEE_OTHER,
            None,
        )
        .await;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, set_cookie("", 0)),
            (header::LOCATION, "/console/sign-in".to_owned()),
        ],
    )
        .into_response())
}
