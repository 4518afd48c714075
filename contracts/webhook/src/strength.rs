//! The minimum strength of a shared secret (Shopify client secret, envelope signing key,
//! bearer token), checked where the secret is configured so a service refuses to run with a
//! guessable one.

use thiserror::Error;

/// The fewest bytes a secret may have: 256 bits, the HMAC-SHA256 key size.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a secret was refused. Names the setting, never the value.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum WeakSecret {
    /// Set but empty (or only whitespace).
    #[error("{0} is empty")]
    Empty(String),
    /// Shorter than [`MIN_SECRET_BYTES`].
    #[error(
        "{0} is shorter than {MIN_SECRET_BYTES} bytes; generate one with `openssl rand -base64 32`"
    )]
    TooShort(String),
}

/// Checks the secret configured as `name`: non-empty and at least [`MIN_SECRET_BYTES`] long.
pub fn require_strong(name: &str, secret: &[u8]) -> Result<(), WeakSecret> {
    if secret.trim_ascii().is_empty() {
        return Err(WeakSecret::Empty(name.to_owned()));
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(WeakSecret::TooShort(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_short_and_long_secrets() {
        assert_eq!(
            require_strong("admin.token", b"  "),
            Err(WeakSecret::Empty("admin.token".into()))
        );
        let short = "x".repeat(MIN_SECRET_BYTES - 1);
        let err = require_strong("admin.token", short.as_bytes()).unwrap_err();
        assert_eq!(err, WeakSecret::TooShort("admin.token".into()));
        assert!(!err.to_string().contains(&short), "{err}");
        assert!(require_strong("admin.token", "x".repeat(MIN_SECRET_BYTES).as_bytes()).is_ok());
    }
}
