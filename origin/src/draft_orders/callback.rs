//! The optional callback: when a job ends, its status (the body of
//! `GET /v1/draft-orders/{job}`) is POSTed to the `callback_url` of the quote, signed like the
//! edge's envelopes (`X-Wholesail-Signature: v1,kid=<callback_key_id>,t=<unix>,sig=<base64>`,
//! HMAC-SHA256 over `wholesail-v1\n<kid>\n<t>\n<body>` with `draft_orders.callback_secret`;
//! verify with `wholesail_webhook::Keyring`). Any 2xx is delivery; anything else is retried by
//! the job loop with backoff, up to `callback_max_attempts`.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use wholesail_webhook::{SigningKey, SIGNATURE_HEADER};

use super::{jobs, Settings};

/// Delivers callbacks.
#[derive(Clone)]
pub struct Callbacks {
    http: reqwest::Client,
    key: Option<Arc<SigningKey>>,
}

impl Callbacks {
    /// Callbacks signed with the configured secret (none configured: every delivery fails,
    /// which submission prevents by refusing a `callback_url`).
    pub fn new(settings: &Settings) -> Self {
        let key = settings.callback_secret.as_ref().and_then(|s| {
            SigningKey::new(
                settings.callback_key_id.clone(),
                s.expose_secret().as_bytes(),
            )
            .map(Arc::new)
            .ok()
        });
        Callbacks {
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(settings.callback_timeout_ms))
                .build()
                .expect("a plain HTTP client builds"),
            key,
        }
    }

    /// POSTs the status of `job` to its callback URL once; `Err` says why it did not land.
    pub async fn deliver(&self, pool: &PgPool, job: &str) -> Result<(), String> {
        let key = self
            .key
            .as_ref()
            .ok_or("no draft_orders.callback_secret configured")?;
        let url: Option<String> =
            sqlx::query_scalar("SELECT callback_url FROM draft_order_jobs WHERE id = $1")
                .bind(job)
                .fetch_optional(pool)
                .await
                .map_err(|e| format!("database: {e}"))?
                .flatten();
        let url = url.ok_or("the job has no callback URL")?;
        let status = jobs::status(pool, job)
            .await
            .map_err(|e| format!("database: {e}"))?
            .ok_or("the job is gone")?;
        let body = serde_json::to_vec(&status).expect("a status serialises");
        let signature = key.sign(&body, time::OffsetDateTime::now_utc().unix_timestamp());
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        if resp.status().is_success() {
            tracing::info!(job, "callback delivered");
            Ok(())
        } else {
            Err(format!("POST {url}: HTTP {}", resp.status().as_u16()))
        }
    }
}
