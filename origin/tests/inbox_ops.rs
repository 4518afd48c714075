//! What operators need to see and recover: listings that say how many rows match, quarantined
//! rows replayed through today's parsing, and the inbox retention purge.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_origin::pipeline::retention::{self, Purged, Settings};

const SHOP: &str = "acme-wholesale.myshopify.com";

/// Inserts a row straight into the inbox (`status`, `raw_body`, age in days).
async fn row(pool: &PgPool, webhook_id: &str, status: &str, raw: Option<&[u8]>, age_days: f64) {
    let payload = raw.is_none().then(|| json!({"id": 1}));
    sqlx::query(
        "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                            original_bytes, payload, raw_body, status, last_error, inserted_at)
         VALUES ($1, $2, 'orders/create', '2025-07', now(), 'allowlist', 10, $3, $4, $5,
                 CASE WHEN $5 IN ('dead', 'quarantined') THEN 'broken' END,
                 now() - $6 * interval '1 day')",
    )
    .bind(webhook_id)
    .bind(SHOP)
    .bind(payload)
    .bind(raw)
    .bind(status)
    .bind(age_days)
    .execute(pool)
    .await
    .unwrap();
}

/// A shop is parsed where it enters: a CLI filter that is not a `*.myshopify.com` domain is
/// refused with the reason, before anything is read (it used to match nothing, silently).
#[sqlx::test(migrations = "../migrations")]
async fn a_shop_that_is_not_a_myshopify_domain_is_refused_by_name(pool: PgPool) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .args(["dead-letters", "list", "--shop", "acme.example.com"])
        .env_clear()
        .env("WHOLESAIL_DATABASE_URL", database_url(&pool))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("acme.example.com") && stderr.contains("not a .myshopify.com domain"),
        "{stderr}"
    );
}

/// A limited listing says how many rows match in all: the CLI on stderr, the admin API in
/// `X-Total-Count`. (Before, 100 rows were shown without a word about the rest.)
#[sqlx::test(migrations = "../migrations")]
async fn dead_letter_listings_say_how_many_match(pool: PgPool) {
    for i in 0..3 {
        row(&pool, &format!("d-{i}"), "dead", None, 0.0).await;
    }
    let url = database_url(&pool);
    let (out, err) = origin_cli(&url, &["dead-letters", "list", "--json", "--limit", "2"]);
    assert_eq!(out.lines().count(), 2);
    assert!(err.contains("showing 2 of 3; --limit to see more"), "{err}");
    let (out, err) = origin_cli(&url, &["dead-letters", "list", "--json"]);
    assert_eq!(out.lines().count(), 3);
    assert!(!err.contains("showing"), "{err}");
    // For people: an aligned table with a header, the same cut notice.
    let (out, err) = origin_cli(&url, &["dead-letters", "list", "--limit", "2"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ID  ") && lines[0].contains("TOPIC"),
        "{out}"
    );
    let topic = lines[0].find("TOPIC").unwrap();
    assert!(
        lines[1..].iter().all(|l| l[topic..].starts_with("orders/")),
        "{out}"
    );
    assert!(err.contains("showing 2 of 3; --limit to see more"), "{err}");

    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/admin/dead-letters?limit=1"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "3");
    let rows: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(rows.len(), 1);
}

/// A quarantined body that today's parser accepts becomes a pending row with the stripped
/// payload; one it still refuses stays quarantined with today's reason; a second replay
/// changes nothing. Through the admin API and the CLI. (Before, quarantined rows could not be
/// replayed at all.)
#[sqlx::test(migrations = "../migrations")]
async fn quarantined_rows_are_replayed_through_todays_parsing(pool: PgPool) {
    // Stored quarantined by an older origin although it is JSON, with a field the allowlist
    // drops.
    let body = json!({"id": 42, "browser_ip": "203.0.113.9", "line_items": [],
                      "updated_at": "2026-11-23T10:00:00Z"});
    row(
        &pool,
        "q-ok",
        "quarantined",
        Some(body.to_string().as_bytes()),
        0.0,
    )
    .await;
    row(&pool, "q-bad", "quarantined", Some(b"{not json"), 0.0).await;
    row(&pool, "q-cli", "quarantined", Some(b"{\"id\": 7}"), 0.0).await;
    let id = |w: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM inbox WHERE webhook_id = $1")
                .bind(w)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (ok, bad) = (id("q-ok").await, id("q-bad").await);

    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let client = reqwest::Client::new();
    let replay = |body: Value| {
        let client = client.clone();
        async move {
            let resp = client
                .post(format!("http://{addr}/admin/dead-letters/replay"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let done = replay(json!({"ids": [ok, bad], "quarantined": true})).await;
    assert_eq!(done["replayed"], json!([ok]));
    assert_eq!(done["still_quarantined"][0]["id"], json!(bad));
    let (status, payload, raw, replays): (String, Value, Option<Vec<u8>>, i32) =
        sqlx::query_as("SELECT status, payload, raw_body, replays FROM inbox WHERE id = $1")
            .bind(ok)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), raw, replays), ("pending", None, 1));
    assert_eq!(payload["id"], 42);
    assert!(payload.get("browser_ip").is_none(), "stripped: {payload}");
    assert_eq!(count(&pool, "quarantined").await, 2);

    // Idempotent: the replayed row is no longer quarantined.
    let again = replay(json!({"ids": [ok, bad], "quarantined": true})).await;
    assert_eq!(again["replayed"], json!([]));

    let (out, _) = origin_cli(
        &database_url(&pool),
        &[
            "dead-letters",
            "replay",
            "--quarantined",
            "--id",
            &id("q-cli").await.to_string(),
        ],
    );
    let out: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out["replayed"].as_array().unwrap().len(), 1);
    assert_eq!(count(&pool, "quarantined").await, 1);
}

/// The purge deletes done rows past the retention in batches and the finished rows of a
/// redacted shop, and nothing else.
#[sqlx::test(migrations = "../migrations")]
async fn retention_purges_old_done_rows_and_redacted_shops_rows(pool: PgPool) {
    for i in 0..7 {
        row(&pool, &format!("old-{i}"), "done", None, 40.0).await;
    }
    row(&pool, "recent", "done", None, 1.0).await;
    row(&pool, "old-dead", "dead", None, 40.0).await;
    row(&pool, "old-pending", "pending", None, 40.0).await;
    let settings = Settings {
        retention_days: 30,
        purge_batch: 3,
        purge_interval_ms: 1_000,
    };
    let stop = CancellationToken::new();
    let purged = retention::purge(&pool, &settings, &stop).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            retention: 7,
            redacted_shop: 0
        }
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT webhook_id FROM inbox ORDER BY webhook_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["old-dead", "old-pending", "recent"]);

    // Once the shop is redacted, its finished rows go whatever their age.
    sqlx::query("INSERT INTO shops (shop, redacted_at) VALUES ($1, now())")
        .bind(SHOP)
        .execute(&pool)
        .await
        .unwrap();
    let purged = retention::purge(&pool, &settings, &stop).await.unwrap();
    assert_eq!(purged.redacted_shop, 2);
    assert_eq!(count(&pool, "pending").await, 1);
}

/// `origin serve` runs the purge in the background.
#[sqlx::test(migrations = "../migrations")]
async fn origin_serve_purges_in_the_background(pool: PgPool) {
    for i in 0..5 {
        row(&pool, &format!("old-{i}"), "done", None, 31.0).await;
    }
    let origin = Origin::spawn(
        &database_url(&pool),
        &[
            ("WHOLESAIL_INBOX__PURGE_INTERVAL_MS", "100"),
            ("WHOLESAIL_INBOX__PURGE_BATCH", "2"),
        ],
    );
    eventually(Duration::from_secs(20), "old rows purged", || async {
        count(&pool, "done").await == 0
    })
    .await;
    drop(origin);
}
