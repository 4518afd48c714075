//! Start-up checks of the real `origin` binary: weak secrets refused by name, `DATABASE_URL`
//! honoured and reported without credentials.

mod common;

use std::process::Command;

use common::{database_url, Origin};
use sqlx::PgPool;
use wholesail_origin::app;

#[test]
fn origin_refuses_to_start_with_a_weak_secret_and_names_only_the_setting() {
    for (var, value, setting) in [
        ("WHOLESAIL_ADMIN__TOKEN", "tiny-admin-token", "admin.token"),
        (
            "WHOLESAIL_SHOPIFY__SECRET",
            "tiny-shopify-secret",
            "shopify.secret",
        ),
        (
            "WHOLESAIL_INTERNAL__KEYS",
            r#"[{id="k1",secret="tiny-key"}]"#,
            r#"internal.keys[id="k1"].secret"#,
        ),
        (
            "WHOLESAIL_SHOPIFY__PREVIOUS_SECRET",
            "",
            "shopify.previous_secret is empty",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_origin"))
            .arg("serve")
            .env_clear()
            .env("WHOLESAIL_BIND", "127.0.0.1:0")
            // Never reached: the configuration is refused first.
            .env(
                "WHOLESAIL_DATABASE_URL",
                "postgres://nobody@127.0.0.1:9/none",
            )
            .env(var, value)
            .output()
            .expect("origin runs");
        assert!(!out.status.success(), "{var}: origin started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(setting), "{var}: {stderr}");
        assert!(
            !stderr.contains("tiny-"),
            "{var}: the value leaked: {stderr}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn database_url_is_used_and_logged_without_credentials(pool: PgPool) {
    let url = database_url(&pool);
    let (scheme, rest) = url.split_once("://").expect("a URL");
    // A password the trust-authenticated test server ignores, to see that it is not logged.
    let (user, host) = rest.split_once('@').expect("user@host");
    let with_password = format!("{scheme}://{user}:hunter2-password@{host}");
    let mut cmd = Origin::command(&with_password, &[]);
    cmd.env_remove("WHOLESAIL_DATABASE_URL")
        .env("DATABASE_URL", &with_password);
    let origin = Origin::start(cmd);
    let logs = origin.logs.lock().unwrap().join("\n");
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("using PostgreSQL"))
        .unwrap_or_else(|| panic!("no database line in {logs}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["fields"]["database"], db.as_str());
    assert_eq!(line["fields"]["host"], pool.connect_options().get_host());
    assert!(!logs.contains("hunter2"), "{logs}");
}

#[sqlx::test(migrations = false)]
async fn a_pooled_connection_that_died_while_idle_is_replaced_before_use(pool: PgPool) {
    let options = pool.connect_options().as_ref().clone();
    let origin_pool = app::pool_options(1).connect_with(options).await.unwrap();
    let first = backend_pid(&origin_pool).await;
    // The server ends the pooled connection while it sits idle (as a restart would).
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(killed);
    // Idle long enough to be pinged: the dead connection is found and a new one used.
    tokio::time::sleep(app::PING_IDLE_AFTER).await;
    let second = backend_pid(&origin_pool).await;
    assert_ne!(first, second);
}

async fn backend_pid(pool: &PgPool) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap()
}
