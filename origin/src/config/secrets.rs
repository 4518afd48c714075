//! Start-up checks of the configured secrets: origin refuses to run with an empty or short
//! shared secret or token (fewer than [`MIN_SECRET_BYTES`] bytes). The error names the
//! setting, never the value.

use secrecy::{ExposeSecret, SecretString};
pub use wholesail_webhook::{WeakSecret, MIN_SECRET_BYTES};

use super::Config;

/// Checks the secret configured as `name` (e.g. `"admin.token"`): set to at least
/// [`MIN_SECRET_BYTES`] bytes, not only whitespace.
pub fn require_strong(name: &str, secret: &SecretString) -> Result<(), WeakSecret> {
    wholesail_webhook::require_strong(name, secret.expose_secret().as_bytes())
}

/// Checks every secret `config` holds that origin shares with a peer: the Shopify client
/// secrets, the envelope keys, the admin token, the draft-order callback secret and the metrics token. Shop
/// access tokens are issued by Shopify, not chosen here, and are not checked.
pub fn check(config: &Config) -> Result<(), WeakSecret> {
    let optional = [
        ("shopify.secret", &config.shopify.secret),
        ("shopify.previous_secret", &config.shopify.previous_secret),
        ("admin.token", &config.admin.token),
        (
            "draft_orders.callback_secret",
            &config.draft_orders.callback_secret,
        ),
        ("metrics.token", &config.metrics.token),
    ];
    for (name, secret) in optional {
        if let Some(secret) = secret {
            require_strong(name, secret)?;
        }
    }
    for key in &config.internal.keys {
        require_strong(
            &format!("internal.keys[id={:?}].secret", key.id),
            &key.secret,
        )?;
    }
    Ok(())
}
