//! PostgreSQL over TLS: the sqlx pool and the tokio-postgres connections the catalog's COPY
//! uses, with `sslmode=require` and `verify-full` against the CA `cargo xtask test` (or
//! `cargo xtask pg --tls`) made for the local cluster and names in `WHOLESAIL_PG_CA`; and
//! `disable` still plain. Skipped, saying so, when that variable is not set.

mod common;

use common::database_url;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use wholesail_origin::pg_tls::PgConnect;

const SSL_IN_USE: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

async fn pool_ssl(url: &str) -> bool {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("sqlx connects with {url}: {e}"));
    let ssl = sqlx::query_scalar(SSL_IN_USE)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    ssl
}

async fn copy_ssl(url: &str) -> bool {
    let client = PgConnect::from_url(url)
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("tokio-postgres connects with {url}: {e}"));
    client.query_one(SSL_IN_USE, &[]).await.unwrap().get(0)
}

#[sqlx::test(migrations = false)]
async fn pool_and_copy_connections_follow_sslmode(pool: PgPool) {
    let Ok(ca) = std::env::var("WHOLESAIL_PG_CA") else {
        eprintln!(
            "SKIPPED pool_and_copy_connections_follow_sslmode: WHOLESAIL_PG_CA is not set \
             (cargo xtask test sets it for its private cluster; or `cargo xtask pg --tls`)"
        );
        return;
    };
    let base = database_url(&pool);
    for params in [
        "sslmode=require".to_owned(),
        format!("sslmode=verify-full&sslrootcert={ca}"),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
    ] {
        let url = format!("{base}?{params}");
        assert!(pool_ssl(&url).await, "pool over TLS with {params}");
        assert!(
            copy_ssl(&url).await,
            "COPY connection over TLS with {params}"
        );
    }
    let plain = format!("{base}?sslmode=disable");
    assert!(!pool_ssl(&plain).await);
    assert!(!copy_ssl(&plain).await);

    // A CA that did not sign the server's certificate is refused by verify-full.
    let other = std::env::temp_dir().join(format!("wholesail-other-ca-{}.pem", std::process::id()));
    std::fs::write(&other, OTHER_CA).unwrap();
    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", other.display());
    assert!(PgConnect::from_url(&url).unwrap().connect().await.is_err());
    assert!(PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&url)
        .await
        .is_err());
    let _ = std::fs::remove_file(other);
}

/// A self-signed CA certificate unrelated to the test cluster's.
const OTHER_CA: &str = include_str!("data/unrelated-ca.pem");
