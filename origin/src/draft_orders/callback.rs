//! The optional callback: when a job ends, its status (the body of
//! `GET /v1/draft-orders/{job}`) is POSTed to the `callback_url` of the quote, signed like the
//! edge's envelopes (`X-Wholesail-Signature: v1,kid=<token name>,t=<unix>,sig=<base64>`,
//! HMAC-SHA256 over `wholesail-v1\n<kid>\n<t>\n<body>` with the callback secret of the
//! integrator token that submitted the quote; verify with `wholesail_webhook::Keyring`). Any 2xx is delivery; anything else is retried by
//! the job loop with backoff, up to `callback_max_attempts`.
//!
//! Requests reach public addresses only ([`super::public_addr`]), checked at connect time on
//! the resolved addresses whatever `callback_hosts` says (`"*"` included); redirects are not
//! followed (a 3xx is a failed delivery), and proxies from the environment are not used.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::Resolve;
use reqwest::redirect::Policy;
use reqwest::Url;
use sqlx::PgPool;
use wholesail_webhook::{SigningKey, SIGNATURE_HEADER};

use super::public_addr::{is_public, PublicOnly, SystemResolver};
use super::{jobs, Settings};

/// Delivers callbacks.
#[derive(Clone)]
pub struct Callbacks {
    http: reqwest::Client,
}

impl Callbacks {
    /// Callbacks to public addresses only.
    pub fn new(settings: &Settings) -> Self {
        Self::with_resolver(settings, Arc::new(PublicOnly(SystemResolver)))
    }

    /// As [`Callbacks::new`] with `resolver` used as given for host names: tests inject a
    /// fixed map here (wrapped in [`PublicOnly`], or bare to reach a local server).
    /// IP-literal hosts are still refused unless public.
    pub fn with_resolver(settings: &Settings, resolver: Arc<dyn Resolve>) -> Self {
        Callbacks {
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(settings.callback_timeout_ms))
                .redirect(Policy::none())
                .no_proxy()
                .dns_resolver2(resolver)
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    /// POSTs the status of `job` to its callback URL once, signed with the callback secret of
    /// the token that submitted it; `Err` says why it did not land.
    pub async fn deliver(&self, pool: &PgPool, job: &str) -> Result<(), String> {
        let row = sqlx::query!(
            r#"SELECT j.callback_url, t.name AS "token_name?", t.callback_secret
               FROM draft_order_jobs j LEFT JOIN api_tokens t ON t.id = j.token_id
               WHERE j.id = $1"#,
            job
        )
        .fetch_optional(pool)
        .await
        .map_err(|e| format!("database: {e}"))?
        .ok_or("the job is gone")?;
        let url = row.callback_url.ok_or("the job has no callback URL")?;
        let (Some(name), Some(secret)) = (row.token_name, row.callback_secret) else {
            return Err("the job's token has no callback secret".into());
        };
        let key = SigningKey::new(name, secret.as_bytes())
            .map_err(|e| format!("callback secret: {e}"))?;
        let status = jobs::status(pool, job)
            .await
            .map_err(|e| format!("database: {e}"))?
            .ok_or("the job is gone")?;
        let body = serde_json::to_vec(&status).expect("a status serialises");
        self.post(&url, &key, body).await?;
        tracing::info!(job, "callback delivered");
        Ok(())
    }

    /// POSTs `body` signed with `key` to `url` once.
    async fn post(&self, url: &str, key: &SigningKey, body: Vec<u8>) -> Result<(), String> {
        let parsed = Url::parse(url).map_err(|e| format!("callback_url {url}: {e}"))?;
        // `Url` has normalised IPv4 forms such as `2130706433` to dotted quads.
        let literal = parsed
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        if let Some(ip) = literal.filter(|ip| !is_public(*ip)) {
            return Err(format!(
                "POST {url}: {ip} is not a public address; callbacks only go to public addresses"
            ));
        }
        let signature = key.sign(&body, time::OffsetDateTime::now_utc().unix_timestamp());
        let resp = self
            .http
            .post(parsed)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {}", chain(&e)))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("POST {url}: HTTP {}", resp.status().as_u16()))
        }
    }
}

/// An error with its sources (reqwest's own message hides why a connect failed).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{header, StatusCode};
    use axum::routing::post;
    use axum::Router;
    use reqwest::dns::{Addrs, Name, Resolving};

    use super::*;

    /// Names to fixed addresses (the test's DNS).
    struct Map(HashMap<&'static str, IpAddr>);

    impl Resolve for Map {
        fn resolve(&self, name: Name) -> Resolving {
            let addrs: Vec<SocketAddr> = self
                .0
                .get(name.as_str())
                .map(|ip| SocketAddr::new(*ip, 0))
                .into_iter()
                .collect();
            Box::pin(async move { Ok(Box::new(addrs.into_iter()) as Addrs) })
        }
    }

    /// Serves `app` on loopback; its port.
    async fn serve(app: Router) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    /// A server on loopback that counts the requests it gets; its port and the count.
    async fn inside() -> (u16, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = Router::new().fallback(move || async move {
            h.fetch_add(1, Ordering::SeqCst);
            StatusCode::NO_CONTENT
        });
        (serve(app).await, hits)
    }

    fn callbacks(resolver: Arc<dyn Resolve>) -> Callbacks {
        Callbacks::with_resolver(&Settings::default(), resolver)
    }

    fn key() -> SigningKey {
        SigningKey::new("k", "callback-test-secret").unwrap()
    }

    #[tokio::test]
    async fn a_listed_host_redirecting_to_loopback_is_not_followed() {
        let (inside, hits) = inside().await;
        let target = format!("http://127.0.0.1:{inside}/admin");
        let redirector =
            serve(Router::new().route(
                "/hook",
                post(move || async move {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)])
                }),
            ))
            .await;
        // The test's DNS sends erp.test to the local redirector, unfiltered, so the first hop
        // connects; only the redirect is under test.
        let dns = Map(HashMap::from([("erp.test", IpAddr::from([127, 0, 0, 1]))]));
        let err = callbacks(Arc::new(dns))
            .post(
                &format!("http://erp.test:{redirector}/hook"),
                &key(),
                b"{}".to_vec(),
            )
            .await
            .unwrap_err();
        assert!(err.contains("HTTP 307"), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    }

    #[tokio::test]
    async fn a_listed_name_resolving_to_a_private_address_is_refused() {
        let dns = Map(HashMap::from([
            ("erp.test", IpAddr::from([10, 0, 0, 5])),
            ("metadata.test", IpAddr::from([169, 254, 169, 254])),
        ]));
        let callbacks = callbacks(Arc::new(PublicOnly(dns)));
        for url in ["http://erp.test/hook", "http://metadata.test/latest"] {
            let err = callbacks
                .post(url, &key(), b"{}".to_vec())
                .await
                .unwrap_err();
            assert!(err.contains("no public address"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_loopback_ip_literal_is_refused_without_connecting() {
        let (inside, hits) = inside().await;
        let callbacks = Callbacks::new(&Settings::default());
        for url in [
            format!("http://127.0.0.1:{inside}/hook"),
            format!("http://[::ffff:127.0.0.1]:{inside}/hook"),
            format!("http://2130706433:{inside}/hook"),
        ] {
            let err = callbacks
                .post(&url, &key(), b"{}".to_vec())
                .await
                .unwrap_err();
            assert!(err.contains("not a public address"), "{err}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }
}
