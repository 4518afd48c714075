//! TLS for a local PostgreSQL server: a throw-away CA and a server certificate for
//! `localhost`, `127.0.0.1` and `::1`, made with rcgen and written into the server's data
//! directory (`server.crt`, `server.key`, and `wholesail-ca.crt` for clients'
//! `sslrootcert`); then `ALTER SYSTEM SET ssl = on` and a configuration reload. Works on a
//! running cluster; plain connections keep working (`sslmode=disable|prefer`).

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::postgres::{answers_with_tls, query};

/// For the tests: turns TLS on for the project's private cluster and sets `WHOLESAIL_PG_CA`
/// to its CA (the TLS tests skip themselves without it). Another server is left as it is
/// (`cargo xtask pg --tls` turns it on by request); a `WHOLESAIL_PG_CA` already set is kept.
pub fn for_tests(url: &str) {
    if std::env::var_os("WHOLESAIL_PG_CA").is_some() {
        return;
    }
    if url != crate::postgres::private_cluster_url() {
        eprintln!(
            "PostgreSQL TLS tests will be skipped: DATABASE_URL is not the private cluster \
             (run `cargo xtask pg --tls` and export WHOLESAIL_PG_CA to run them)"
        );
        return;
    }
    match enable(url) {
        Ok(ca) => std::env::set_var("WHOLESAIL_PG_CA", ca),
        Err(e) => eprintln!("PostgreSQL TLS tests will be skipped: {e:#}"),
    }
}

/// The CA certificate's file name in the data directory.
const CA_FILE: &str = "wholesail-ca.crt";

/// Turns TLS on for the server at `url` (a superuser URL of a server whose data directory is
/// on this machine) and returns the CA certificate clients verify it with. Keeps the
/// certificates of an earlier call.
pub fn enable(url: &str) -> Result<PathBuf> {
    let data = PathBuf::from(query(url, "SHOW data_directory")?);
    if !data.is_dir() {
        bail!(
            "the server's data directory {} is not on this machine",
            data.display()
        );
    }
    let ca = data.join(CA_FILE);
    let have_files = ca.is_file() && data.join("server.crt").is_file();
    if !have_files {
        write_certificates(&data)?;
    }
    if !have_files || query(url, "SHOW ssl")? != "on" {
        query(url, "ALTER SYSTEM SET ssl = on")?;
        query(url, "SELECT pg_reload_conf()")?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers_with_tls(url, &ca) {
        if Instant::now() > deadline {
            bail!("PostgreSQL did not accept TLS connections within 30 s (see its log)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ca)
}

/// Writes a new CA, and a server certificate and key signed by it, into `data`, owned like
/// the directory (the server refuses a key others can read).
fn write_certificates(data: &Path) -> Result<()> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Wholesail local PostgreSQL CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    let owner = std::fs::metadata(data)?;
    let write = |name: &str, text: String, mode: u32| -> Result<()> {
        let path = data.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        chown(&path, Some(owner.uid()), Some(owner.gid()))
            .with_context(|| format!("giving {} to the cluster's owner", path.display()))?;
        Ok(())
    };
    write("server.key", key.serialize_pem(), 0o600)?;
    write("server.crt", cert.pem(), 0o644)?;
    write(CA_FILE, ca_cert.pem(), 0o644)?;
    eprintln!("PostgreSQL TLS: certificates written to {}", data.display());
    Ok(())
}
