//! TLS for origin's tokio-postgres connections (the catalog's binary COPY), following the
//! database URL's `sslmode` and `sslrootcert` as sqlx does for the pool:
//!
//! | `sslmode` | TLS | certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked |
//! | `verify-ca` | always | chain checked against `sslrootcert` (Mozilla's roots without it) |
//! | `verify-full` | always | chain and host name checked |
//!
//! The pool's connections are sqlx's (its `tls-rustls-ring-webpki` feature), which reads the
//! same two parameters from the same URL.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use thiserror::Error;
use tokio::sync::oneshot;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why a database URL cannot be used for the COPY connections.
#[derive(Debug, Error)]
pub enum PgTlsError {
    /// tokio-postgres refused the URL.
    #[error("database_url: {0}")]
    Config(#[from] tokio_postgres::Error),
    /// An `sslmode` this module does not know.
    #[error("database_url: sslmode={0} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    Mode(String),
    /// The `sslrootcert` file cannot be read or holds no certificate.
    #[error("database_url: sslrootcert {path}: {reason}")]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("database_url: TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// How to open one tokio-postgres connection: the configuration and, unless TLS is disabled,
/// the rustls connector.
#[derive(Clone)]
pub struct PgConnect {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl From<tokio_postgres::Config> for PgConnect {
    /// Plain connections with `config` (its `ssl_mode` must not require TLS).
    fn from(config: tokio_postgres::Config) -> Self {
        PgConnect { config, tls: None }
    }
}

impl PgConnect {
    /// Reads `url` (a `postgres://` URL or a `key=value` string), TLS as its `sslmode` and
    /// `sslrootcert` say (see the module documentation).
    pub fn from_url(url: &str) -> Result<PgConnect, PgTlsError> {
        let (rest, mode, root) = split_tls_params(url);
        let mut config: tokio_postgres::Config = rest.parse()?;
        let verify = match mode.as_deref().unwrap_or("prefer") {
            "disable" => return Ok(PgConnect::from(config.ssl_mode(SslMode::Disable).clone())),
            "allow" | "prefer" => {
                config.ssl_mode(SslMode::Prefer);
                Verify::Nothing
            }
            "require" => {
                config.ssl_mode(SslMode::Require);
                Verify::Nothing
            }
            "verify-ca" => {
                config.ssl_mode(SslMode::Require);
                Verify::Chain
            }
            "verify-full" => {
                config.ssl_mode(SslMode::Require);
                Verify::ChainAndName
            }
            other => return Err(PgTlsError::Mode(other.to_owned())),
        };
        let tls = client_config(verify, root)?;
        Ok(PgConnect {
            config,
            tls: Some(MakeRustlsConnect::new(tls)),
        })
    }

    /// Whether connections use TLS (when the server offers it, for `prefer`).
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The same settings, with TCP keepalives probing after `idle` (so that a dead peer is
    /// noticed within about that, not after the OS default of two hours).
    pub fn keepalives(mut self, idle: Duration) -> Self {
        self.config.keepalives(true).keepalives_idle(idle);
        self
    }

    /// Opens a connection, driven by a spawned task.
    pub fn connect(
        &self,
    ) -> impl std::future::Future<Output = Result<Client, tokio_postgres::Error>> + Send + 'static
    {
        let connecting = self.connect_watched();
        async move { connecting.await.map(|(client, _)| client) }
    }

    /// Opens a connection, driven by a spawned task; the receiver resolves when the connection
    /// ends.
    pub fn connect_watched(
        &self,
    ) -> impl std::future::Future<
        Output = Result<(Client, oneshot::Receiver<()>), tokio_postgres::Error>,
    > + Send
           + 'static {
        // Owned, so the future borrows nothing (callers' futures stay `Send` for any lifetime).
        let this = self.clone();
        async move {
            let (done, ended) = oneshot::channel();
            let client = match this.tls {
                Some(tls) => {
                    let (client, connection) = this.config.connect(tls).await?;
                    tokio::spawn(drive(connection, done));
                    client
                }
                None => {
                    let (client, connection) = this.config.connect(NoTls).await?;
                    tokio::spawn(drive(connection, done));
                    client
                }
            };
            Ok((client, ended))
        }
    }
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(
    connection: F,
    done: oneshot::Sender<()>,
) {
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "PostgreSQL connection ended");
    }
    let _ = done.send(());
}

/// `url` without `sslmode` and `sslrootcert` (which tokio-postgres reads differently or not
/// at all), and their values.
fn split_tls_params(url: &str) -> (String, Option<String>, Option<PathBuf>) {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let Some(mut parsed) = is_url.then(|| url::Url::parse(url).ok()).flatten() else {
        // key=value form: tokio-postgres reads sslmode itself; sslrootcert is not supported.
        let mode = url
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("sslmode=").map(str::to_owned));
        let rest: Vec<&str> = url
            .split_whitespace()
            .filter(|kv| !kv.starts_with("sslmode=") && !kv.starts_with("sslrootcert="))
            .collect();
        let root = url
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("sslrootcert=").map(PathBuf::from));
        return (rest.join(" "), mode, root);
    };
    let (mut mode, mut root, mut rest) = (None, None, Vec::new());
    for (k, v) in parsed.query_pairs() {
        match k.as_ref() {
            "sslmode" => mode = Some(v.into_owned()),
            "sslrootcert" => root = Some(PathBuf::from(v.as_ref())),
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    (parsed.into(), mode, root)
}

/// What a client checks of the server's certificate.
#[derive(Clone, Copy)]
enum Verify {
    Nothing,
    Chain,
    ChainAndName,
}

fn client_config(verify: Verify, root: Option<PathBuf>) -> Result<ClientConfig, PgTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient {
                provider,
                chain: None,
            })),
        Verify::Chain | Verify::ChainAndName => {
            let roots = Arc::new(roots(root)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            match verify {
                Verify::Chain => builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Lenient {
                        provider,
                        chain: Some(webpki),
                    })),
                _ => builder.with_webpki_verifier(webpki),
            }
        }
    };
    Ok(config.with_no_client_auth())
}

/// The CA certificates of `path`, or Mozilla's roots without one.
fn roots(path: Option<PathBuf>) -> Result<RootCertStore, PgTlsError> {
    let Some(path) = path else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let bad = |reason: String| PgTlsError::RootCert {
        path: path.clone(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("no usable certificate".into()));
    }
    Ok(store)
}

/// The verifier of `sslmode` `prefer`/`require` (`chain: None`: any certificate) and
/// `verify-ca` (the chain, not the host name). Handshake signatures are always checked.
#[derive(Debug)]
struct Lenient {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (rest, mode, root) = split_tls_params(
            "postgres://u:p%40ss@db.example:6543/app?sslmode=verify-full&application_name=o&sslrootcert=/ca.pem",
        );
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db.example:6543/app?application_name=o"
        );
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root, Some(PathBuf::from("/ca.pem")));
        let (rest, mode, _) = split_tls_params("postgres://u@h/db?sslmode=disable");
        assert_eq!(
            (rest.as_str(), mode.as_deref()),
            ("postgres://u@h/db", Some("disable"))
        );
        assert!(matches!(
            PgConnect::from_url("postgres://u@h/db?sslmode=sometimes"),
            Err(PgTlsError::Mode(_))
        ));
        assert!(!PgConnect::from_url("postgres://u@h/db?sslmode=disable")
            .unwrap()
            .tls());
        assert!(PgConnect::from_url("postgres://u@h/db").unwrap().tls());
        assert!(matches!(
            PgConnect::from_url("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent"),
            Err(PgTlsError::RootCert { .. })
        ));
    }
}
