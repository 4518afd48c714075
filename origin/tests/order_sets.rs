//! `orders/*` upserts of a worker batch applied as sets (`handlers::apply_set_in_batch`): the
//! same verdicts and rows as the events applied one by one, the newest version winning
//! whatever its place in the batch, replays writing nothing, a refused payload failing alone,
//! redacted shops and customers, the Salesforce outbox, and the workers routing a mixed batch.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use shopify_simulator::payloads::{order, OrderSpec};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_origin::config::WorkerConfig;
use wholesail_origin::handlers::{self, HandlerError, InboxEvent, Verdict};
use wholesail_origin::pipeline::runner::Workers;
use wholesail_origin::shop_lock::ShopGate;

const ONE_BY_ONE: &str = "one-by-one.myshopify.com";
const AS_SETS: &str = "as-sets.myshopify.com";
const T1: &str = "2026-11-23T10:00:00Z";
const T2: &str = "2026-11-23T11:00:00Z";
const T3: &str = "2026-11-23T12:00:00Z";

/// Order `n`'s payload at `updated_at`, its content (lines, prices, addresses) drawn from
/// `content` and `lines` lines.
fn version(n: u64, content: u64, lines: usize, updated_at: &str) -> Value {
    let mut spec = OrderSpec::new(content, lines);
    spec.id = order_id(n) as u64;
    spec.updated_at = updated_at.to_owned();
    order(&spec)
}

fn order_id(n: u64) -> i64 {
    5_000_000_000_000 + n as i64
}

/// `v` with other tags: a different change within the same second.
fn retagged(mut v: Value) -> Value {
    v["tags"] = json!("retagged");
    v
}

fn ev(shop: &str, id: i64, topic: &str, payload: &Value) -> InboxEvent {
    common::inbox_event(shop, id, topic, payload)
}

/// Results as comparable text (a `HandlerError` is not `PartialEq`), without the time of a
/// tombstone (each shop's was written by its own transaction).
fn shown(results: &[Result<Verdict, HandlerError>]) -> Vec<String> {
    const DELETED: &str = "the record was deleted at ";
    results
        .iter()
        .map(|r| match r {
            Ok(v) => {
                let text = format!("{v:?}");
                match text.find(DELETED) {
                    Some(at) => format!("{}…", &text[..at + DELETED.len()]),
                    None => text,
                }
            }
            Err(e) => format!("error: {e}"),
        })
        .collect()
}

/// Applies `events` one by one, as the per-event path does, in one committed transaction.
async fn one_by_one(pool: &PgPool, events: &[InboxEvent]) -> Vec<Result<Verdict, HandlerError>> {
    let mut tx = pool.begin().await.unwrap();
    let mut results = Vec::new();
    for e in events {
        results.push(handlers::apply_explained(&mut tx, e).await);
    }
    tx.commit().await.unwrap();
    results
}

/// Applies `events` as sets, as the workers do for a run of order upserts, under the batch's
/// shop locks, in one committed transaction.
async fn as_sets(pool: &PgPool, events: &[InboxEvent]) -> Vec<Result<Verdict, HandlerError>> {
    let mut tx = pool.begin().await.unwrap();
    let gate = ShopGate::take(&mut tx, events.iter().map(|e| &e.shop))
        .await
        .unwrap();
    assert!(events.iter().all(|e| handlers::applies_as_set(e, &gate)));
    let refs: Vec<&InboxEvent> = events.iter().collect();
    let results = handlers::apply_set_in_batch(&mut tx, &refs).await.unwrap();
    tx.commit().await.unwrap();
    results
}

/// A shop's orders and lines, every column but the shop and the times of writing
/// (`applied_at`, a tombstone's `deleted_at`), as text.
async fn tables(pool: &PgPool, shop: &str) -> (Vec<String>, Vec<String>) {
    let orders = sqlx::query_scalar(
        "SELECT (to_jsonb(o) - 'shop' - 'applied_at' - 'deleted_at')::text FROM orders o
         WHERE shop = $1 ORDER BY id",
    )
    .bind(shop)
    .fetch_all(pool)
    .await
    .unwrap();
    let lines = sqlx::query_scalar(
        "SELECT (to_jsonb(l) - 'shop')::text FROM order_lines l
         WHERE shop = $1 ORDER BY order_id, id",
    )
    .bind(shop)
    .fetch_all(pool)
    .await
    .unwrap();
    (orders, lines)
}

/// The same history applied to two shops, one event at a time in one and as sets in the
/// other: stored rows older and newer than the batch's, a tombstone, a redacted customer,
/// versions out of order, a replay, two changes within one second, a line set that shrinks,
/// an order without lines and a payload that does not parse. Verdicts (with reasons) and every
/// column of the orders and their lines come out the same.
#[sqlx::test(migrations = "../migrations")]
async fn a_batch_applied_as_sets_gives_the_verdicts_and_rows_of_one_by_one(pool: PgPool) {
    let redacted_customer = 7_000_000_000_005i64; // the customer of content seed 5
    for shop in [ONE_BY_ONE, AS_SETS] {
        let setup = [
            ev(shop, 1, "orders/create", &version(1, 1, 2, T2)),
            ev(shop, 2, "orders/create", &version(2, 2, 2, T1)),
            ev(shop, 3, "orders/delete", &json!({"id": order_id(2)})),
            ev(
                shop,
                4,
                "customers/redact",
                &json!({"shop_domain": shop, "customer": {"id": redacted_customer},
                        "orders_to_redact": []}),
            ),
        ];
        for result in one_by_one(&pool, &setup).await {
            result.unwrap();
        }
    }
    let batch = |shop: &str| {
        let o4 = version(4, 40, 3, T2);
        vec![
            ev(shop, 10, "orders/updated", &version(1, 1, 2, T1)),
            ev(shop, 11, "orders/updated", &version(1, 11, 3, T3)),
            ev(shop, 12, "orders/paid", &version(1, 11, 3, T3)),
            ev(shop, 13, "orders/updated", &version(2, 2, 2, T3)),
            ev(shop, 14, "orders/updated", &version(3, 3, 2, T2)),
            ev(shop, 15, "orders/create", &version(3, 3, 2, T1)),
            ev(shop, 16, "orders/create", &version(4, 4, 2, T1)),
            ev(shop, 17, "orders/updated", &o4),
            ev(shop, 18, "orders/fulfilled", &retagged(o4)),
            ev(shop, 19, "orders/create", &version(5, 5, 1, T1)),
            ev(shop, 20, "orders/create", &json!({"id": 42})),
            ev(shop, 21, "orders/cancelled", &version(6, 6, 0, T1)),
            ev(shop, 22, "orders/updated", &version(4, 41, 1, T3)),
        ]
    };
    let expected = one_by_one(&pool, &batch(ONE_BY_ONE)).await;
    let got = as_sets(&pool, &batch(AS_SETS)).await;
    assert_eq!(shown(&got), shown(&expected));
    assert_eq!(
        tables(&pool, AS_SETS).await,
        tables(&pool, ONE_BY_ONE).await
    );

    // And that common result is the right one.
    let verdicts = shown(&got);
    assert!(
        verdicts[0].contains("older than stored updated_at"),
        "{verdicts:?}"
    );
    assert!(
        verdicts[2].contains("same version already applied"),
        "{verdicts:?}"
    );
    assert!(
        verdicts[3].contains("the record was deleted at"),
        "{verdicts:?}"
    );
    assert!(
        verdicts[10].contains("invalid payload for orders/create"),
        "{verdicts:?}"
    );
    for i in [1, 4, 6, 7, 8, 9, 11, 12] {
        assert_eq!(verdicts[i], "Applied", "event {i}: {verdicts:?}");
    }
    let rows: Vec<(i64, String, Option<String>, i32, String)> = sqlx::query_as(
        "SELECT id, to_char(source_updated_at AT TIME ZONE 'UTC', 'HH24'), email, line_count,
                written_by
         FROM orders WHERE shop = $1 AND deleted_at IS NULL ORDER BY id",
    )
    .bind(AS_SETS)
    .fetch_all(&pool)
    .await
    .unwrap();
    let summary: Vec<(i64, &str, bool, i32, &str)> = rows
        .iter()
        .map(|(id, hour, email, lines, by)| {
            (
                *id - order_id(0),
                hour.as_str(),
                email.is_some(),
                *lines,
                by.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "12", true, 3, "inbox:11"),
            (3, "11", true, 2, "inbox:14"),
            (4, "12", true, 1, "inbox:22"),
            (5, "10", false, 1, "inbox:19"), // the redacted customer's order keeps no email
            (6, "10", true, 0, "inbox:21"),
        ]
    );
}

/// Two versions of one order in one batch: the newest is stored with its lines, whichever
/// comes first; the older one is stale only when it comes after.
#[sqlx::test(migrations = "../migrations")]
async fn the_newest_version_wins_whatever_its_place_in_the_batch(pool: PgPool) {
    let shop = AS_SETS;
    let events = [
        ev(shop, 1, "orders/updated", &version(1, 10, 3, T2)),
        ev(shop, 2, "orders/create", &version(1, 11, 1, T1)),
        ev(shop, 3, "orders/create", &version(2, 20, 1, T1)),
        ev(shop, 4, "orders/updated", &version(2, 21, 3, T2)),
    ];
    let verdicts = shown(&as_sets(&pool, &events).await);
    assert_eq!(verdicts[0], "Applied");
    assert!(
        verdicts[1].starts_with("Stale(\"older than stored"),
        "{verdicts:?}"
    );
    assert_eq!(verdicts[2..], ["Applied", "Applied"]);
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT o.written_by, count(l.id) FROM orders o
         JOIN order_lines l ON l.shop = o.shop AND l.order_id = o.id
                           AND l.written_by = o.written_by
         WHERE o.source_updated_at = $1::timestamptz GROUP BY o.id, o.written_by ORDER BY o.id",
    )
    .bind(T2)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [("inbox:1".to_owned(), 3), ("inbox:4".to_owned(), 3)],
        "both orders at T2 with T2's three lines, written by the T2 event"
    );
    let lines: i64 = sqlx::query_scalar("SELECT count(*) FROM order_lines")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(lines, 6, "no line of the T1 versions left");
}

/// A batch applied again (a replay, a redelivery under another webhook id) writes nothing:
/// every event is stale, and the rows keep their writer and their `applied_at`.
#[sqlx::test(migrations = "../migrations")]
async fn a_replayed_batch_writes_nothing(pool: PgPool) {
    let events: Vec<InboxEvent> = (1..=5)
        .map(|n| ev(AS_SETS, n as i64, "orders/create", &version(n, n, 2, T1)))
        .collect();
    assert!(as_sets(&pool, &events)
        .await
        .iter()
        .all(|r| matches!(r, Ok(Verdict::Applied))));
    let before = sqlx::query_scalar::<_, String>(
        "SELECT string_agg(applied_at::text || written_by, ',' ORDER BY id) FROM orders",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let lines_before = tables(&pool, AS_SETS).await.1;

    let replayed: Vec<InboxEvent> = events
        .iter()
        .map(|e| InboxEvent {
            id: e.id + 100,
            ..e.clone()
        })
        .collect();
    for verdict in shown(&as_sets(&pool, &replayed).await) {
        assert!(
            verdict.contains("same version already applied"),
            "{verdict}"
        );
    }
    let after = sqlx::query_scalar::<_, String>(
        "SELECT string_agg(applied_at::text || written_by, ',' ORDER BY id) FROM orders",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(after, before);
    assert_eq!(tables(&pool, AS_SETS).await.1, lines_before);
}

/// A payload the handler refuses fails alone; the events around it are applied.
#[sqlx::test(migrations = "../migrations")]
async fn a_refused_payload_fails_alone_and_the_rest_of_the_set_applies(pool: PgPool) {
    let mut dup_lines = version(2, 2, 2, T1);
    dup_lines["line_items"][1]["id"] = dup_lines["line_items"][0]["id"].clone();
    let events = [
        ev(AS_SETS, 1, "orders/create", &version(1, 1, 2, T1)),
        ev(AS_SETS, 2, "orders/create", &dup_lines),
        ev(
            AS_SETS,
            3,
            "orders/create",
            &json!({"id": order_id(3), "updated_at": T1}),
        ),
        ev(AS_SETS, 4, "orders/create", &version(4, 4, 2, T1)),
    ];
    let results = as_sets(&pool, &events).await;
    assert!(matches!(results[0], Ok(Verdict::Applied)));
    assert!(
        matches!(&results[1], Err(HandlerError::InvalidPayload { reason, .. }) if reason.contains("appears twice"))
    );
    assert!(
        matches!(&results[2], Err(HandlerError::InvalidPayload { reason, .. }) if reason.contains("line_items"))
    );
    assert!(matches!(results[3], Ok(Verdict::Applied)));
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM orders ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, [order_id(1), order_id(4)]);
}

/// A shop connected to Salesforce gets one outbox row per order applied as a set; a shop that
/// is not gets none.
#[sqlx::test(migrations = "../migrations")]
async fn orders_applied_as_sets_are_enqueued_for_a_connected_shop(pool: PgPool) {
    sqlx::query("INSERT INTO salesforce_orgs (shop) VALUES ($1)")
        .bind(AS_SETS)
        .execute(&pool)
        .await
        .unwrap();
    let events = [
        ev(AS_SETS, 1, "orders/create", &version(1, 1, 2, T1)),
        ev(ONE_BY_ONE, 2, "orders/create", &version(2, 2, 2, T1)),
        ev(AS_SETS, 3, "orders/create", &version(3, 3, 2, T1)),
        ev(AS_SETS, 4, "orders/updated", &version(3, 3, 2, T1)), // stale: not enqueued twice
    ];
    as_sets(&pool, &events).await;
    let outbox: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT shop, object, record_key FROM salesforce_outbox ORDER BY record_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        outbox,
        [
            (AS_SETS.into(), "order".into(), order_id(1).to_string()),
            (AS_SETS.into(), "order".into(), order_id(3).to_string()),
        ]
    );
}

/// An inbox row's webhook id, status, outcome, reason (or error) and attempts.
type InboxOutcome = (String, String, Option<String>, Option<String>, i32);

/// The workers on one mixed batch: a redacted shop's orders are stale without being written,
/// a delete between two order upserts of the clear shop is applied in its place (the later
/// version cannot resurrect the order), a refused payload is a dead letter at once, the rest
/// is applied, each inbox row with its outcome.
#[sqlx::test(migrations = "../migrations")]
async fn workers_apply_a_mixed_batch_in_order_and_skip_a_redacted_shop(pool: PgPool) {
    let clear = "clear.myshopify.com";
    let redacted = "redacted.myshopify.com";
    sqlx::query("INSERT INTO shops (shop, redacted_at) VALUES ($1, now())")
        .bind(redacted)
        .execute(&pool)
        .await
        .unwrap();
    let rows: Vec<(&str, &str, &str, Value)> = vec![
        ("w1", clear, "orders/create", version(1, 1, 2, T1)),
        ("w2", clear, "orders/delete", json!({"id": order_id(1)})),
        ("w3", clear, "orders/updated", version(1, 1, 2, T2)),
        ("w4", clear, "orders/create", version(2, 2, 2, T1)),
        ("w5", clear, "orders/create", json!({"id": order_id(3)})),
        ("w6", redacted, "orders/create", version(4, 4, 2, T1)),
        ("w7", redacted, "orders/updated", version(4, 4, 2, T2)),
    ];
    for (webhook_id, shop, topic, payload) in &rows {
        let stripped = match wholesail_webhook::strip(topic, payload.to_string().as_bytes()) {
            Ok(s) => s.json,
            Err(_) => payload.to_string(),
        };
        sqlx::query(
            "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                                original_bytes, payload)
             VALUES ($1, $2, $3, '2025-07', now(), 'allowlist', 100, $4::jsonb)",
        )
        .bind(webhook_id)
        .bind(shop)
        .bind(topic)
        .bind(stripped)
        .execute(&pool)
        .await
        .unwrap();
    }
    let shutdown = CancellationToken::new();
    let workers = Workers::new(
        pool.clone(),
        WorkerConfig {
            concurrency: 1,
            per_shop: 50,
            max_attempts: 5,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            poll_interval_ms: 20,
            shutdown_grace_ms: 5_000,
            ..WorkerConfig::default()
        },
        "mixed-batch".into(),
    );
    let running = tokio::spawn(workers.run(shutdown.clone()));
    common::eventually(Duration::from_secs(30), "every event finished", || async {
        common::count(&pool, "done").await + common::count(&pool, "dead").await == 7
    })
    .await;
    shutdown.cancel();
    running.await.unwrap();

    let outcomes: Vec<InboxOutcome> = sqlx::query_as(
        "SELECT webhook_id, status, outcome, coalesce(outcome_reason, last_error), attempts
         FROM inbox ORDER BY webhook_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let short: Vec<(&str, &str, Option<&str>)> = outcomes
        .iter()
        .map(|(w, s, o, _, _)| (w.as_str(), s.as_str(), o.as_deref()))
        .collect();
    assert_eq!(
        short,
        [
            ("w1", "done", Some("applied")),
            ("w2", "done", Some("applied")),
            ("w3", "done", Some("stale")),
            ("w4", "done", Some("applied")),
            ("w5", "dead", None),
            ("w6", "done", Some("stale")),
            ("w7", "done", Some("stale")),
        ]
    );
    let reason = |w: &str| {
        outcomes
            .iter()
            .find(|o| o.0 == w)
            .unwrap()
            .3
            .clone()
            .unwrap()
    };
    assert!(
        reason("w3").contains("the record was deleted at"),
        "{}",
        reason("w3")
    );
    assert!(reason("w5").contains("invalid payload for orders/create"));
    assert_eq!(outcomes[4].4, 1, "a refused payload is not retried");
    assert_eq!(reason("w6"), "the shop is redacted (shop/redact)");
    let stored: Vec<(String, i64, bool)> =
        sqlx::query_as("SELECT shop, id, deleted_at IS NOT NULL FROM orders ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        [
            (clear.into(), order_id(1), true),
            (clear.into(), order_id(2), false)
        ]
    );
}
