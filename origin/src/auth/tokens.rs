//! The token store (`api_tokens`, `migrations/0041_api_tokens.sql`): create, list, rotate,
//! revoke, and authenticate a presented bearer token.
//!
//! A token is `wso_` and 32 random bytes in base64url; only its SHA-256 is stored (a fast hash
//! is enough for a high-entropy secret: there is nothing to brute-force), looked up by hash
//! and confirmed in constant time. Presented tokens shorter than [`MIN_TOKEN_BYTES`] are
//! refused without a lookup, and so are such tokens given to [`insert`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{Caller, Scope};

/// Shortest token accepted, in bytes.
pub const MIN_TOKEN_BYTES: usize = 32;

/// Why a token could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name is not usable.
    #[error("token name {0:?}: 1 to 63 of A-Z a-z 0-9 . _ -, starting with a letter or digit")]
    BadName(String),
    /// No scope given.
    #[error("a token needs at least one scope")]
    NoScope,
    /// The secret is too short.
    #[error("a token must be at least {MIN_TOKEN_BYTES} bytes")]
    TooShort,
    /// A callback secret for a token that cannot submit draft orders.
    #[error("only integrator tokens have a callback secret")]
    CallbackWithoutIntegrator,
    /// The name is taken by a live token.
    #[error("a live token named {0} exists")]
    Exists(String),
    /// No live token has this name.
    #[error("no live token named {0}")]
    NotFound(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A token just created or rotated: the only time its secret is shown.
#[derive(Debug, Serialize)]
pub struct Issued {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The bearer token.
    pub token: String,
    /// The key its draft-order callbacks are signed with (`kid` = the token's name), when one
    /// was issued now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_secret: Option<String>,
}

/// A token as listed (no secrets).
#[derive(Debug, Serialize)]
pub struct TokenInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Whether its callbacks are signed (it has a callback secret).
    pub callback_secret: bool,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last rotated.
    #[serde(with = "time::serde::rfc3339::option")]
    pub rotated_at: Option<OffsetDateTime>,
    /// Until when the secret before the last rotation is still accepted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub previous_valid_until: Option<OffsetDateTime>,
    /// Revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A new random secret: `wso_` and 32 random bytes, base64url (47 characters).
pub fn generate() -> String {
    format!("wso_{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then_some(())
        .ok_or_else(|| TokenError::BadName(name.to_owned()))
}

fn scope_names(scopes: &[Scope]) -> Vec<String> {
    let mut names: Vec<_> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Creates a token with a random secret and, with `callback_secret`, a random callback
/// secret (integrators only).
pub async fn create(
    pool: &PgPool,
    name: &str,
    scopes: &[Scope],
    callback_secret: bool,
) -> Result<Issued, TokenError> {
    let token = generate();
    let callback = callback_secret.then(generate);
    let id = insert(pool, name, scopes, &token, callback.as_deref()).await?;
    Ok(Issued {
        id,
        name: name.to_owned(),
        scopes: scopes.to_vec(),
        token,
        callback_secret: callback,
    })
}

/// Stores a token whose secret the caller chose (at least [`MIN_TOKEN_BYTES`]); its id.
pub async fn insert(
    pool: &PgPool,
    name: &str,
    scopes: &[Scope],
    token: &str,
    callback_secret: Option<&str>,
) -> Result<i64, TokenError> {
    check_name(name)?;
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    if token.len() < MIN_TOKEN_BYTES {
        return Err(TokenError::TooShort);
    }
    if callback_secret.is_some() && !scopes.contains(&Scope::Integrator) {
        return Err(TokenError::CallbackWithoutIntegrator);
    }
    sqlx::query_scalar!(
        "INSERT INTO api_tokens (name, scopes, secret_hash, callback_secret)
         VALUES ($1, $2, $3, $4) RETURNING id",
        name,
        &scope_names(scopes),
        hash(token),
        callback_secret
    )
    .fetch_one(pool)
    .await
    .map_err(|e| {
        let taken = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "23505");
        if taken {
            TokenError::Exists(name.to_owned())
        } else {
            TokenError::Database(e)
        }
    })
}

/// Every token, live and revoked, by id.
pub async fn list(pool: &PgPool) -> Result<Vec<TokenInfo>, sqlx::Error> {
    sqlx::query_as!(
        TokenInfo,
        r#"SELECT id, name, scopes, callback_secret IS NOT NULL AS "callback_secret!", created_at,
                  rotated_at, previous_valid_until, revoked_at
           FROM api_tokens ORDER BY id"#
    )
    .fetch_all(pool)
    .await
}

/// Gives the live token `name` a new secret. The old one stays valid for `grace_secs` (0: it
/// stops working now). With `callback_secret`, also a new callback secret, used for every
/// callback from now on.
pub async fn rotate(
    pool: &PgPool,
    name: &str,
    grace_secs: u32,
    callback_secret: bool,
) -> Result<Issued, TokenError> {
    if callback_secret {
        let scopes = sqlx::query_scalar!(
            "SELECT scopes FROM api_tokens WHERE name = $1 AND revoked_at IS NULL",
            name
        )
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| TokenError::NotFound(name.to_owned()))?;
        if !scopes.iter().any(|s| s == Scope::Integrator.as_str()) {
            return Err(TokenError::CallbackWithoutIntegrator);
        }
    }
    let token = generate();
    let callback = callback_secret.then(generate);
    let row = sqlx::query!(
        "UPDATE api_tokens
         SET previous_hash = CASE WHEN $3::float8 > 0 THEN secret_hash END,
             previous_valid_until = CASE WHEN $3 > 0 THEN now() + make_interval(secs => $3) END,
             secret_hash = $2, rotated_at = now(),
             callback_secret = COALESCE($4, callback_secret)
         WHERE name = $1 AND revoked_at IS NULL
         RETURNING id, scopes",
        name,
        hash(&token),
        f64::from(grace_secs),
        callback.as_deref()
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| TokenError::NotFound(name.to_owned()))?;
    Ok(Issued {
        id: row.id,
        name: name.to_owned(),
        scopes: row.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        token,
        callback_secret: callback,
    })
}

/// Revokes the live token `name` (at once, with any grace period of a rotation); its id.
pub async fn revoke(pool: &PgPool, name: &str) -> Result<i64, TokenError> {
    sqlx::query_scalar!(
        "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
         RETURNING id",
        name
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| TokenError::NotFound(name.to_owned()))
}

/// A token row as [`authenticate`] reads it.
struct Stored {
    id: i64,
    name: String,
    scopes: Vec<String>,
    secret_hash: Vec<u8>,
    previous_hash: Option<Vec<u8>>,
    has_callback_secret: bool,
}

/// The live token `presented` is, if any (its current secret, or the previous one within the
/// rotation's grace period).
pub async fn authenticate(pool: &PgPool, presented: &str) -> Result<Option<Caller>, sqlx::Error> {
    if presented.len() < MIN_TOKEN_BYTES {
        return Ok(None);
    }
    let hash = hash(presented);
    let row = sqlx::query_as!(
        Stored,
        r#"SELECT id, name, scopes, secret_hash, previous_hash,
                  callback_secret IS NOT NULL AS "has_callback_secret!"
           FROM api_tokens
           WHERE revoked_at IS NULL
             AND (secret_hash = $1 OR (previous_hash = $1 AND previous_valid_until > now()))"#,
        hash
    )
    .fetch_optional(pool)
    .await?;
    let Some(Stored {
        id: token_id,
        name,
        scopes,
        secret_hash: current,
        previous_hash: previous,
        has_callback_secret,
    }) = row
    else {
        return Ok(None);
    };
    let matches = current.ct_eq(&hash) | previous.unwrap_or_default().ct_eq(&hash);
    Ok(bool::from(matches).then(|| Caller {
        token_id,
        name,
        scopes: scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        has_callback_secret,
    }))
}
