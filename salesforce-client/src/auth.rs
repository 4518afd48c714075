//! OAuth 2.0 client credentials: one cached session per client, fetched on first use and
//! replaced once when Salesforce answers `401 INVALID_SESSION_ID` (the token expired or was
//! revoked). The token response has no lifetime, so expiry is only learnt from that 401.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{Config, Error};

/// A logged-in session.
#[derive(Debug)]
pub struct Session {
    /// The access token (redacted in `Debug`).
    pub access_token: SecretString,
    /// `instance_url`: where the org's API lives.
    pub instance_url: String,
    /// The org id (from the identity URL `…/id/{orgId}/{userId}`), the Pub/Sub `tenantid`.
    pub org_id: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    instance_url: String,
    id: String,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The cached session.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    current: Mutex<Option<Arc<Session>>>,
}

impl Sessions {
    /// The cached session, or a new one.
    pub(crate) async fn get(
        &self,
        http: &reqwest::Client,
        config: &Config,
    ) -> Result<Arc<Session>, Error> {
        let mut current = self.current.lock().await;
        if let Some(s) = &*current {
            return Ok(s.clone());
        }
        let session = Arc::new(login(http, config).await?);
        tracing::info!(org = %config.org, "Salesforce session opened");
        *current = Some(session.clone());
        Ok(session)
    }

    /// Forgets `stale` (unless another call already replaced it).
    pub(crate) async fn invalidate(&self, stale: &Session) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|s| s.access_token.expose_secret() == stale.access_token.expose_secret())
        {
            *current = None;
        }
    }
}

async fn login(http: &reqwest::Client, config: &Config) -> Result<Session, Error> {
    let resp = http
        .post(format!("{}/services/oauth2/token", config.login_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.expose_secret()),
        ])
        .send()
        .await
        .map_err(|e| crate::http::transport_error(&e, false))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| crate::http::transport_error(&e, false))?;
    if status.is_server_error() {
        return Err(Error::Transient {
            message: format!("token endpoint answered {status}"),
            outcome_unknown: false,
        });
    }
    if !status.is_success() {
        let reason = serde_json::from_slice::<TokenError>(&body).map_or_else(
            |_| status.to_string(),
            |e| format!("{}: {}", e.error, e.error_description),
        );
        return Err(Error::Login(reason));
    }
    let token: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| Error::Decode(format!("token response: {e}")))?;
    let org_id = token
        .id
        .rsplit('/')
        .nth(1)
        .filter(|id| id.starts_with("00D"))
        .ok_or_else(|| Error::Decode(format!("no org id in identity URL {}", token.id)))?
        .to_owned();
    Ok(Session {
        access_token: token.access_token,
        instance_url: token.instance_url.trim_end_matches('/').to_owned(),
        org_id,
    })
}
