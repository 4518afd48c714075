//! The console in a real browser: a real `origin serve` on a fresh database with seeded data
//! and tokens, driven by `origin/tests/browser/console.test.mjs` (node's test runner,
//! playwright-core, Debian's headless Chromium). `cargo xtask setup` installs both; the
//! screenshots land in `<target>/console-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sqlx::PgPool;
use wholesail_origin::auth::{tokens, Scope};

const OPERATOR: &str = "wso_browser-operator-token-read-and-write-01";
const READER: &str = "wso_browser-reader-token-with-ops-read-only-1";
const SHOP: &str = "browser-test.myshopify.com";
const CHROMIUM: &str = "/usr/bin/chromium";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Where the screenshots go: `<target>/console-screenshots`.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots")
}

async fn seed(pool: &PgPool) -> i64 {
    tokens::insert(
        pool,
        "ops-alice",
        &[Scope::OpsRead, Scope::OpsWrite],
        OPERATOR,
        None,
    )
    .await
    .unwrap();
    tokens::insert(pool, "ops-viewer", &[Scope::OpsRead], READER, None)
        .await
        .unwrap();
    // 120 finished catalog runs to page through, and one under way.
    sqlx::query(
        "INSERT INTO catalog_runs (shop, status, lines_read, bytes_read, file_size, inserted,
                                   updated, deleted, finished_at)
         SELECT $1, 'completed', 4200, 900000, 900000, 12, 30, 1, now() FROM generate_series(1, 120)",
    )
    .bind(SHOP)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query_scalar(
        "INSERT INTO catalog_runs (shop, status, bulk_operation_id, lines_read, bytes_read,
                                   file_size)
         VALUES ($1, 'importing', 'gid://shopify/BulkOperation/77', 18000, 3100000, 8000000)
         RETURNING id",
    )
    .bind(SHOP)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_console_signs_in_pages_and_refuses_forged_or_read_only_writes_in_chromium(
    pool: PgPool,
) {
    let playwright = repo_root().join("node_modules/playwright-core/package.json");
    assert!(
        Path::new(CHROMIUM).is_file() && playwright.is_file(),
        "the browser test needs Debian's chromium and npm's playwright-core: cargo xtask setup"
    );
    let active_run = seed(&pool).await;
    let origin = common::Origin::spawn(&common::database_url(&pool), &[]);
    // A dead letter from the edge's queue: an order that an operator will replay.
    let envelope = common::envelope("browser-dlq-1", SHOP, 104_201);
    let order_id = envelope["payload"]["json"]["body"]["id"].to_string();
    let dead = json!({"envelopes": [envelope]});
    let resp = common::post_signed(&origin.url("/internal/dead-letters"), &dead).await;
    assert_eq!(resp.status(), 200);

    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let script = repo_root().join("origin/tests/browser/console.test.mjs");
    let status = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["--kill-after=10", "240", "node", "--test"])
            .arg(&script)
            .current_dir(repo_root())
            .env("CONSOLE_URL", origin.url("/console"))
            .env("OPERATOR_TOKEN", OPERATOR)
            .env("READER_TOKEN", READER)
            .env("ACTIVE_RUN", active_run.to_string())
            .env("DEAD_ORDER_ID", order_id)
            .env("DEAD_WEBHOOK_ID", "browser-dlq-1")
            .env("SCREENSHOT_DIR", &shots)
            .status()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(status.success(), "the browser test failed: {status}");
}
