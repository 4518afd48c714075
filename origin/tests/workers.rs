//! The workers, run as real `origin` processes against a real PostgreSQL: exactly-once
//! processing across processes, crash recovery (SIGKILL), graceful shutdown (SIGTERM),
//! durable backoff, dead letters and replay, NOTIFY wake-up and per-shop fairness.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Posts `n` events (ids `prefix-0..n`) for `shops` round-robin, in signed batches of 100.
async fn post_events(origin: &Origin, prefix: &str, n: usize, shops: &[&str]) {
    let url = origin.url("/internal/webhooks");
    let all: Vec<Value> = (0..n)
        .map(|i| {
            envelope(
                &format!("{prefix}-{i}"),
                shops[i % shops.len()],
                1_000 + i as u64,
            )
        })
        .collect();
    for chunk in all.chunks(100) {
        let resp = post_signed(&url, &json!({ "envelopes": chunk })).await;
        assert_eq!(resp.status(), 200);
    }
}

async fn processed_counts(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), coalesce(sum(processed_count), 0)::int8,
                coalesce(max(processed_count), 0)::int8 FROM inbox",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Makes every completion slow (a trigger sleeping per row), so batches are in flight long
/// enough to be interrupted. This slows the database, not origin's code path.
async fn slow_completions(pool: &PgPool, secs_per_row: f64) {
    sqlx::query(&format!(
        "CREATE FUNCTION slow_done() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN PERFORM pg_sleep({secs_per_row}); RETURN NEW; END $$"
    ))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER slow_done BEFORE UPDATE ON inbox FOR EACH ROW
         WHEN (OLD.status = 'processing' AND NEW.status = 'done') EXECUTE FUNCTION slow_done()",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn table_rows(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

fn processed_lines(origin: &Origin) -> usize {
    origin
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"event processed\""))
        .count()
}

#[sqlx::test(migrations = "../migrations")]
async fn two_processes_on_one_database_process_each_event_exactly_once(pool: PgPool) {
    let url = database_url(&pool);
    let env = [
        ("WHOLESAIL_WORKER__BATCH_SIZE", "20"),
        ("WHOLESAIL_WORKER__CONCURRENCY", "2"),
    ];
    let a = Origin::spawn(&url, &env);
    let b = Origin::spawn(&url, &env);
    let shops = ["a.myshopify.com", "b.myshopify.com", "c.myshopify.com"];
    // Half through each process, so both are busy at once.
    let (first, second) = tokio::join!(
        post_events(&a, "two-a", 600, &shops),
        post_events(&b, "two-b", 600, &shops)
    );
    let _ = (first, second);
    eventually(Duration::from_secs(60), "all 1200 events done", || async {
        count(&pool, "done").await == 1200
    })
    .await;
    assert_eq!(processed_counts(&pool).await, (1200, 1200, 1));
    // `two-a-i` and `two-b-i` carry the same order (as two subscriptions would): one effect.
    assert_eq!(table_rows(&pool, "orders").await, 600);
    assert_eq!(table_rows(&pool, "order_lines").await, 1200);
    let (by_a, by_b) = (processed_lines(&a), processed_lines(&b));
    assert_eq!(by_a + by_b, 1200, "each event logged as processed once");
    assert!(
        by_a > 0 && by_b > 0,
        "both processes worked: {by_a} / {by_b}"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn worker_killed_mid_batch_loses_nothing_and_doubles_nothing(pool: PgPool) {
    slow_completions(&pool, 0.01).await;
    let url = database_url(&pool);
    let env = [
        ("WHOLESAIL_WORKER__BATCH_SIZE", "50"),
        ("WHOLESAIL_WORKER__LEASE_MS", "1500"),
    ];
    let first = Origin::spawn(&url, &env);
    post_events(&first, "kill", 400, &["k.myshopify.com", "l.myshopify.com"]).await;
    eventually(
        Duration::from_secs(30),
        "some done, a batch in flight",
        || async { count(&pool, "done").await > 0 && count(&pool, "processing").await > 0 },
    )
    .await;
    first.kill();
    let held = count(&pool, "processing").await;
    assert!(held > 0, "the killed process held claimed rows");
    let done_before = count(&pool, "done").await;
    assert!(done_before < 400);

    let second = Origin::spawn(&url, &env);
    eventually(Duration::from_secs(60), "all 400 events done", || async {
        count(&pool, "done").await == 400
    })
    .await;
    assert_eq!(processed_counts(&pool).await, (400, 400, 1));
    assert_eq!(table_rows(&pool, "orders").await, 400);
    assert_eq!(table_rows(&pool, "order_lines").await, 800);
    let reclaimed = second
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("expired leases reclaimed"));
    assert!(reclaimed, "the killed process's leases were reclaimed");
}

#[sqlx::test(migrations = "../migrations")]
async fn sigterm_finishes_in_flight_batches_and_releases_the_rest(pool: PgPool) {
    slow_completions(&pool, 0.01).await;
    let url = database_url(&pool);
    let env = [
        ("WHOLESAIL_WORKER__BATCH_SIZE", "50"),
        ("WHOLESAIL_WORKER__LEASE_MS", "60000"),
        ("WHOLESAIL_WORKER__SHUTDOWN_GRACE_MS", "10000"),
    ];
    let first = Origin::spawn(&url, &env);
    post_events(&first, "term", 400, &["t.myshopify.com"]).await;
    eventually(Duration::from_secs(30), "a batch in flight", || async {
        count(&pool, "processing").await > 0
    })
    .await;
    assert!(
        first.terminate(Duration::from_secs(15)),
        "clean exit on SIGTERM"
    );
    // Nothing is left leased to the stopped process (the lease is 60 s: no expiry helped).
    assert_eq!(count(&pool, "processing").await, 0);
    let done = count(&pool, "done").await;
    assert!(
        done > 0 && done < 400,
        "in-flight work finished, the rest waits ({done})"
    );
    let max_attempts_pending: i32 =
        sqlx::query_scalar("SELECT coalesce(max(attempts), 0) FROM inbox WHERE status = 'pending'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        max_attempts_pending, 0,
        "released claims are not counted as attempts"
    );

    let _second = Origin::spawn(&url, &env);
    eventually(Duration::from_secs(60), "all 400 done", || async {
        count(&pool, "done").await == 400
    })
    .await;
    assert_eq!(processed_counts(&pool).await, (400, 400, 1));
}

#[sqlx::test(migrations = "../migrations")]
async fn failing_event_is_retried_with_growing_delay_then_dead_then_replayed_once(pool: PgPool) {
    // The database refuses to complete this one event (a real transient error to origin).
    sqlx::query(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'poisoned event %', NEW.webhook_id; END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER poison BEFORE UPDATE ON inbox FOR EACH ROW
         WHEN (NEW.status = 'done' AND NEW.webhook_id = 'w-poison') EXECUTE FUNCTION poison()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let url = database_url(&pool);
    let origin = Origin::spawn(
        &url,
        &[
            ("WHOLESAIL_WORKER__MAX_ATTEMPTS", "4"),
            ("WHOLESAIL_WORKER__BACKOFF_BASE_MS", "300"),
            ("WHOLESAIL_WORKER__BACKOFF_MAX_MS", "10000"),
        ],
    );
    let resp = post_signed(
        &origin.url("/internal/webhooks"),
        &envelope("w-poison", "p.myshopify.com", 77),
    )
    .await;
    assert_eq!(resp.status(), 200);

    // Record run_at after each failed attempt.
    let mut schedule: Vec<(i32, time::OffsetDateTime)> = Vec::new();
    let start = std::time::Instant::now();
    let (id, last_error) = loop {
        let (id, status, attempts, run_at, err): (i64, String, i32, time::OffsetDateTime, Option<String>) =
            sqlx::query_as(
                "SELECT id, status, attempts, run_at, last_error FROM inbox WHERE webhook_id = 'w-poison'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "pending" && attempts > 0 && schedule.last().map(|s| s.0) != Some(attempts) {
            schedule.push((attempts, run_at));
        }
        if status == "dead" {
            assert_eq!(attempts, 4);
            break (id, err.unwrap());
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never died: {schedule:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        last_error.contains("poisoned event w-poison"),
        "{last_error}"
    );
    assert_eq!(
        schedule.len(),
        3,
        "three retries were scheduled: {schedule:?}"
    );
    let gaps: Vec<f64> = schedule
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).as_seconds_f64())
        .collect();
    // Ceilings 300/600/1200 ms, jitter in [d/2, d]. run_at(n+1) - run_at(n) ≥ delay(n+1), so
    // the gaps are at least 300 and 600 ms: a constant 300 ms backoff would give 150–300 ms
    // (plus the poll), and the second bound would fail.
    assert!(gaps[0] >= 0.3 && gaps[1] >= 0.6, "gaps {gaps:?}");

    let cli = |args: &[&str]| common::origin_cli(&url, args).0;
    let listed = cli(&[
        "dead-letters",
        "list",
        "--json",
        "--shop",
        "p.myshopify.com",
    ]);
    let row: Value = serde_json::from_str(listed.lines().next().expect("one dead letter")).unwrap();
    assert_eq!(row["id"], id);
    assert!(cli(&[
        "dead-letters",
        "list",
        "--json",
        "--topic",
        "products/update"
    ])
    .is_empty());
    let shown: Value =
        serde_json::from_str(&cli(&["dead-letters", "show", &id.to_string()])).unwrap();
    assert_eq!(shown["status"], "dead");

    // The cause is fixed; replay applies it exactly once.
    sqlx::query("DROP TRIGGER poison ON inbox")
        .execute(&pool)
        .await
        .unwrap();
    let replayed: Value =
        serde_json::from_str(&cli(&["dead-letters", "replay", "--id", &id.to_string()])).unwrap();
    assert_eq!(replayed["replayed"], json!([id]));
    eventually(Duration::from_secs(10), "replayed event done", || async {
        count(&pool, "done").await == 1
    })
    .await;
    let (processed, replays): (i32, i32) =
        sqlx::query_as("SELECT processed_count, replays FROM inbox WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((processed, replays), (1, 1));
    // A second replay finds nothing dead: no second effect.
    let again: Value =
        serde_json::from_str(&cli(&["dead-letters", "replay", "--id", &id.to_string()])).unwrap();
    assert_eq!(again["replayed"], json!([]));
    drop(origin);
}

#[sqlx::test(migrations = "../migrations")]
async fn invalid_payload_is_a_dead_letter_at_once_and_others_in_the_batch_still_apply(
    pool: PgPool,
) {
    let url = database_url(&pool);
    let origin = Origin::spawn(&url, &[("WHOLESAIL_WORKER__MAX_ATTEMPTS", "5")]);
    let mut bad = envelope("w-invalid", "v.myshopify.com", 1);
    bad["payload"]["json"]["body"] = json!({"id": 42});
    let batch = json!({"envelopes": [bad, envelope("w-valid", "v.myshopify.com", 2)]});
    assert_eq!(
        post_signed(&origin.url("/internal/webhooks"), &batch)
            .await
            .status(),
        200
    );
    eventually(Duration::from_secs(10), "one dead, one done", || async {
        count(&pool, "dead").await == 1 && count(&pool, "done").await == 1
    })
    .await;
    let (attempts, err): (i32, String) =
        sqlx::query_as("SELECT attempts, last_error FROM inbox WHERE webhook_id = 'w-invalid'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1, "a permanent error is not retried");
    assert!(err.contains("invalid payload for orders/create"), "{err}");
    assert_eq!(table_rows(&pool, "orders").await, 1);
}

/// An origin whose workers poll only every 60 s, once they listen for wake-ups: they go idle
/// on the poll after the LISTEN, so wait for it, not a guessed time.
async fn listening_origin(pool: &PgPool) -> Origin {
    let origin = Origin::spawn(
        &database_url(pool),
        &[("WHOLESAIL_WORKER__POLL_INTERVAL_MS", "60000")],
    );
    eventually(Duration::from_secs(10), "the inbox LISTEN", || async {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND query = $1",
        )
        .bind(format!(
            "LISTEN \"{}\"",
            wholesail_origin::pipeline::inbox::CHANNEL
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        listening > 0
    })
    .await;
    origin
}

#[sqlx::test(migrations = "../migrations")]
async fn notify_wakes_the_workers_without_waiting_for_the_poll(pool: PgPool) {
    let origin = listening_origin(&pool).await;
    let started = std::time::Instant::now();
    post_events(&origin, "wake", 1, &["n.myshopify.com"]).await;
    eventually(
        Duration::from_secs(5),
        "event done well before the poll",
        || async { count(&pool, "done").await == 1 },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_burst_of_single_events_is_applied_without_waiting_for_the_poll(pool: PgPool) {
    // Intake's wake-ups are coalesced (one NOTIFY per 5 ms at most): the last events of a
    // burst, stored after the workers drained the first ones, must still get one.
    let origin = listening_origin(&pool).await;
    let url = origin.url("/internal/webhooks");
    let sends = (0..200).map(|i| {
        let url = url.clone();
        async move {
            let body = envelope(&format!("burst-{i}"), "b.myshopify.com", 5_000 + i);
            assert_eq!(post_signed(&url, &body).await.status(), 200);
        }
    });
    futures_util::stream::iter(sends)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    eventually(
        Duration::from_secs(20),
        "every event of the burst done well before the poll",
        || async { count(&pool, "done").await == 200 },
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn one_shops_flood_does_not_starve_another_shop(pool: PgPool) {
    // 3,000 events of a flash sale in one shop are already waiting when 10 of another arrive.
    sqlx::query(
        "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                            original_bytes, payload)
         SELECT 'flood-' || g, 'flood.myshopify.com', 'orders/create', '2025-07', now(),
                'allowlist', 10, $1::jsonb
         FROM generate_series(1, 3000) g",
    )
    .bind(envelope("x", "flood.myshopify.com", 1)["payload"]["json"]["body"].clone())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                            original_bytes, payload, run_at)
         SELECT 'quiet-' || g, 'quiet.myshopify.com', 'orders/create', '2025-07', now(),
                'allowlist', 10, $1::jsonb, now() + interval '1 millisecond'
         FROM generate_series(1, 10) g",
    )
    .bind(envelope("y", "quiet.myshopify.com", 2)["payload"]["json"]["body"].clone())
    .execute(&pool)
    .await
    .unwrap();
    let url = database_url(&pool);
    let _origin = Origin::spawn(
        &url,
        &[
            ("WHOLESAIL_WORKER__CONCURRENCY", "1"),
            ("WHOLESAIL_WORKER__BATCH_SIZE", "20"),
            ("WHOLESAIL_WORKER__PER_SHOP", "5"),
        ],
    );
    let quiet_done = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM inbox WHERE shop = 'quiet.myshopify.com' AND status = 'done'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
            == 10
    };
    eventually(
        Duration::from_secs(60),
        "the quiet shop's events done",
        quiet_done,
    )
    .await;
    let flood_done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inbox WHERE shop = 'flood.myshopify.com' AND status = 'done'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        flood_done < 300,
        "quiet shop served after only {flood_done} flood events"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn health_and_metrics_report_the_inbox(pool: PgPool) {
    grant_admin(&pool).await;
    let url = database_url(&pool);
    let origin = Origin::spawn(&url, &[]);
    post_events(&origin, "m", 5, &["m.myshopify.com"]).await;
    eventually(Duration::from_secs(10), "done", || async {
        count(&pool, "done").await == 5
    })
    .await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(origin.url("/livez"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = client.get(origin.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let text = client
        .get(origin.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "wholesail_inbox_depth{status=\"pending\"} 0",
        "wholesail_inbox_lag_seconds",
        "wholesail_intake_events_total{source=\"edge\",result=\"accepted\"} 5",
        "wholesail_intake_wakeups_total{result=\"sent\"}",
        "wholesail_handler_duration_seconds_bucket",
        "wholesail_processing_lag_seconds_count 5",
        "wholesail_event_attempts_bucket",
        "wholesail_events_processed_total",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    // Every worker log line about an event names the webhook and the shop.
    let lines: Vec<String> = origin
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"event processed\""))
        .cloned()
        .collect();
    assert_eq!(lines.len(), 5);
    for l in lines {
        assert!(
            l.contains("\"webhook_id\":\"m-") && l.contains("\"shop\":\"m.myshopify.com\""),
            "{l}"
        );
    }

    origin.kill();

    // A backlog older than the threshold makes a process not ready (one without workers, so
    // nothing drains it meanwhile).
    sqlx::query(
        "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                            original_bytes, payload, run_at)
         VALUES ('old', 'm.myshopify.com', 'orders/create', '2025-07', now(), 'allowlist', 1,
                 '{}', now() - interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let idle = Origin::spawn(
        &url,
        &[
            ("WHOLESAIL_WORKER__CONCURRENCY", "0"),
            ("WHOLESAIL_READINESS__MAX_LAG_SECS", "60"),
        ],
    );
    let lagging = client.get(idle.url("/readyz")).send().await.unwrap();
    assert_eq!(lagging.status(), 503);
    let body: Value = lagging.json().await.unwrap();
    assert_eq!(body["status"], "lagging");
}
