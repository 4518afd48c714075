//! OAuth 2.0 client credentials: access tokens issued by `POST /services/oauth2/token`,
//! valid for a configurable lifetime on the simulator clock, revocable from tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::distributions::Alphanumeric;
use rand::Rng;
use time::OffsetDateTime;

/// The issued tokens.
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, OffsetDateTime>>,
}

impl Tokens {
    /// A new token for `org_id`, valid until `now + lifetime`.
    pub fn issue(&self, org_id: &str, now: OffsetDateTime, lifetime: Duration) -> String {
        let secret: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(96)
            .map(char::from)
            .collect();
        let token = format!("{}!{secret}", &org_id[..15]);
        self.issued
            .lock()
            .unwrap()
            .insert(token.clone(), now + lifetime);
        token
    }

    /// Whether `token` is known and not expired at `now`.
    pub fn is_valid(&self, token: &str, now: OffsetDateTime) -> bool {
        self.issued
            .lock()
            .unwrap()
            .get(token)
            .is_some_and(|expires| now < *expires)
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        self.issued.lock().unwrap().clear();
    }

    /// Revokes one token.
    pub fn revoke(&self, token: &str) {
        self.issued.lock().unwrap().remove(token);
    }
}
