//! Problems (#16): every kind of failure in one grouped listing, with actions that resolve it,
//! dismissals that hold until a recurrence, scopes and the audit log, keyset pages, the CLI.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{database_url, origin_cli, serve_routes, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_origin::auth::{tokens, Scope};
use wholesail_origin::config::WorkerConfig;
use wholesail_origin::pipeline::runner::Workers;
use wholesail_origin::problems::{self, Filter, Kind};

const SHOP: &str = "acme.myshopify.com";
const READ_TOKEN: &str = "wso_problems-read-only-token-0000000001";

/// An inbox row of `status` with `error`; a dead one carries a valid `orders/create` body.
async fn inbox_row(pool: &PgPool, webhook_id: &str, status: &str, error: &str) -> i64 {
    let order = common::order(1042);
    let (payload, raw): (Option<Value>, Option<Vec<u8>>) = if status == "quarantined" {
        (None, Some(serde_json::to_vec(&order).unwrap()))
    } else {
        (Some(order), None)
    };
    sqlx::query_scalar(
        "INSERT INTO inbox (webhook_id, shop, topic, api_version, received_at, stripping,
                            original_bytes, payload, raw_body, status, last_error, processed_at)
         VALUES ($1, $2, 'orders/create', '2025-07', now(), 'allowlist', 10, $3, $4, $5, $6,
                 now())
         RETURNING id",
    )
    .bind(webhook_id)
    .bind(SHOP)
    .bind(payload)
    .bind(raw)
    .bind(status)
    .bind(error)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sql).execute(pool).await.unwrap();
}

/// One or more rows of every kind.
async fn seed_every_kind(pool: &PgPool) {
    inbox_row(pool, "d1", "dead", "handler refused: missing line items").await;
    inbox_row(pool, "d2", "dead", "handler refused: missing line items").await;
    inbox_row(pool, "q1", "quarantined", "topic not allowed").await;
    exec(
        pool,
        "INSERT INTO rules_push_errors (shop, company_location, error)
         VALUES ('acme.myshopify.com', 'gid://shopify/CompanyLocation/1', 'rules too large');
         INSERT INTO catalog_runs (shop, status, error, finished_at)
         VALUES ('acme.myshopify.com', 'failed', 'bulk operation failed', now());
         INSERT INTO draft_order_jobs (id, shop, quote_id, company_location_id, request, status,
                                       error, finished_at)
         VALUES ('dq_1', 'acme.myshopify.com', 'Q-1', 'gid://shopify/CompanyLocation/1', '{}',
                 'failed', 'draft order refused', now());
         INSERT INTO salesforce_outbox (shop, object, record_key, status, last_error)
         VALUES ('acme.myshopify.com', 'account', 'gid://shopify/Company/1', 'dead',
                 'FIELD_INTEGRITY_EXCEPTION');
         INSERT INTO salesforce_links (shop, company, decision, candidates)
         VALUES ('acme.myshopify.com', 'gid://shopify/Company/2', 'review',
                 '[{\"id\": \"001A\"}, {\"id\": \"001B\"}]');
         WITH r AS (INSERT INTO reconcile_runs (shop, scope, trigger, mode, finished_at)
                    VALUES ('acme.myshopify.com', 'orders', 'operator', 'report', now())
                    RETURNING shop, id)
         INSERT INTO reconcile_findings (shop, run_id, kind, record)
         SELECT shop, id, 'missing', 'gid://shopify/Order/9' FROM r;",
    )
    .await;
}

async fn send(method: &str, url: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn open(pool: &PgPool, kind: Kind) -> Vec<problems::Problem> {
    let filter = Filter {
        kind: Some(kind),
        ..Filter::default()
    };
    problems::list(pool, &filter, None, 100).await.unwrap().rows
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn every_kind_appears_grouped_with_its_reason_and_count(pool: PgPool) {
    seed_every_kind(&pool).await;
    let page = problems::list(&pool, &Filter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(page.total, 8, "{:#?}", page.rows);
    let by_kind = |k: Kind| page.rows.iter().find(|p| p.kind == k).unwrap();
    let dead = by_kind(Kind::DeadLetter);
    assert_eq!(dead.count, 2);
    assert_eq!(dead.reason, "handler refused: missing line items");
    assert!(dead.first_seen <= dead.last_seen);
    assert_eq!(dead.sample.len(), 2);
    assert_eq!(by_kind(Kind::Quarantined).reason, "topic not allowed");
    assert_eq!(by_kind(Kind::RulesPushError).reason, "rules too large");
    assert_eq!(
        by_kind(Kind::CatalogRunFailed).reason,
        "bulk operation failed"
    );
    assert_eq!(
        by_kind(Kind::DraftOrderFailed).reason,
        "draft order refused"
    );
    assert_eq!(
        by_kind(Kind::SalesforceDead).reason,
        "FIELD_INTEGRITY_EXCEPTION"
    );
    assert!(by_kind(Kind::SalesforceReview)
        .reason
        .contains("2 Salesforce Accounts"));
    assert!(by_kind(Kind::ReconcileFinding).reason.contains("missing"));
    for p in &page.rows {
        assert_eq!(p.count, if p.kind == Kind::DeadLetter { 2 } else { 1 });
        assert_eq!(p.actions, p.kind.actions());
    }
    let counts = problems::open_counts(&pool).await.unwrap();
    assert_eq!(counts.len(), Kind::ALL.len());
    assert!(counts.contains(&(Kind::DeadLetter, 2)), "{counts:?}");
    // A failed catalog run stops being a problem once a later run completes.
    exec(
        &pool,
        "INSERT INTO catalog_runs (shop, status) VALUES ('acme.myshopify.com', 'completed')",
    )
    .await;
    assert!(open(&pool, Kind::CatalogRunFailed).await.is_empty());
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn replaying_a_dead_letter_problem_applies_it_and_the_audit_row_names_the_token(
    pool: PgPool,
) {
    let id = inbox_row(&pool, "d1", "dead", "handler refused once").await;
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let problem = open(&pool, Kind::DeadLetter).await.remove(0);
    let (status, done) = send(
        "POST",
        &format!("http://{addr}/admin/problems/{}/replay", problem.id),
        ADMIN_TOKEN,
        Some(json!({"reason": "handler fixed in 1.4"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["result"]["replayed"], json!([id]));

    let shutdown = CancellationToken::new();
    let workers = Workers::new(
        pool.clone(),
        WorkerConfig {
            concurrency: 1,
            batch_size: 10,
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            poll_interval_ms: 50,
            shutdown_grace_ms: 1_000,
            ..WorkerConfig::default()
        },
        "problems-test".into(),
    );
    tokio::spawn(workers.run(shutdown.clone()));
    common::eventually(
        Duration::from_secs(20),
        "the replayed order applied",
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders WHERE shop = $1")
                    .bind(SHOP)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                    == 1
            }
        },
    )
    .await;
    shutdown.cancel();
    assert!(open(&pool, Kind::DeadLetter).await.is_empty());

    let audit: Vec<(Option<i64>, String, String, String)> = sqlx::query_as(
        "SELECT token_id, actor, action, coalesce(detail, '') FROM audit_log ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let action_row = audit
        .iter()
        .find(|r| r.2 == "problems replay")
        .expect("the action's audit row");
    assert_eq!(action_row.1, "test-admin");
    assert!(action_row.0.is_some());
    assert!(
        action_row.3.contains("handler fixed in 1.4"),
        "{action_row:?}"
    );
    assert!(
        audit
            .iter()
            .any(|r| r.1 == "test-admin" && r.2 == "POST /admin/problems/{id}/replay"),
        "{audit:?}"
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_quarantined_row_replays_when_today_s_parser_accepts_it_and_stays_otherwise(
    pool: PgPool,
) {
    // A valid body (quarantined under an older allowlist) and one that is still not JSON.
    let good = inbox_row(&pool, "q-good", "quarantined", "topic not allowed then").await;
    let bad = inbox_row(&pool, "q-bad", "quarantined", "not JSON").await;
    sqlx::query("UPDATE inbox SET raw_body = 'not json at all' WHERE id = $1")
        .bind(bad)
        .execute(&pool)
        .await
        .unwrap();
    let reasons: BTreeSet<String> = open(&pool, Kind::Quarantined)
        .await
        .into_iter()
        .map(|p| p.reason)
        .collect();
    assert_eq!(reasons.len(), 2);
    for p in open(&pool, Kind::Quarantined).await {
        let done = problems::perform(
            &pool,
            &problems::Request {
                problem: p.id,
                action: problems::Action::Replay,
                item: None,
                reason: None,
                account: None,
            },
            None,
        )
        .await
        .unwrap();
        assert!(done.result.get("replayed").is_some());
    }
    let status: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, status, last_error FROM inbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(status[0], (good, "pending".into(), None));
    assert_eq!(status[1].1, "quarantined");
    let left = open(&pool, Kind::Quarantined).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        Some(&left[0].reason),
        status[1].2.as_ref(),
        "today's reason"
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_dismissed_problem_leaves_the_open_list_until_it_recurs(pool: PgPool) {
    inbox_row(&pool, "d1", "dead", "known vendor bug").await;
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let problem = open(&pool, Kind::DeadLetter).await.remove(0);
    let url = format!("http://{addr}/admin/problems/{}/dismiss", problem.id);
    let (status, answer) = send("POST", &url, ADMIN_TOKEN, Some(json!({}))).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a reason is required: {answer}"
    );
    let (status, _) = send("POST", &url, ADMIN_TOKEN, Some(json!({"reason": "vendor"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(open(&pool, Kind::DeadLetter).await.is_empty());
    let all = problems::list(
        &pool,
        &Filter {
            include_dismissed: true,
            ..Filter::default()
        },
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(all.rows.len(), 1);
    assert!(all.rows[0].dismissed);
    assert_eq!(all.rows[0].dismissal.as_ref().unwrap().reason, "vendor");
    let gauge = problems::open_counts(&pool).await.unwrap();
    assert!(gauge.contains(&(Kind::DeadLetter, 0)), "{gauge:?}");

    // The same failure again, after the dismissal: the problem is back, with both items.
    tokio::time::sleep(Duration::from_millis(5)).await;
    inbox_row(&pool, "d2", "dead", "known vendor bug").await;
    let back = open(&pool, Kind::DeadLetter).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].id, problem.id);
    assert_eq!(back[0].count, 2);
    assert!(!back[0].dismissed);
    let gauge = problems::open_counts(&pool).await.unwrap();
    assert!(gauge.contains(&(Kind::DeadLetter, 2)), "{gauge:?}");
    let scrape = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape.contains("wholesail_problems_open{kind=\"dead_letter\"} 2"),
        "{scrape}"
    );
    assert!(scrape.contains("wholesail_problems_open{kind=\"salesforce_review\"} 0"));
}

fn request(p: &problems::Problem, action: problems::Action) -> problems::Request {
    problems::Request {
        problem: p.id.clone(),
        action,
        item: None,
        reason: Some("operator test".into()),
        account: None,
    }
}

async fn scalar(pool: &PgPool, sql: &str) -> String {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn retry_link_and_replay_go_through_each_feature_and_refuse_the_wrong_action(pool: PgPool) {
    use problems::Action::{Create, Link, Replay, Retry};
    seed_every_kind(&pool).await;
    let one = |k: Kind| {
        let pool = pool.clone();
        async move { open(&pool, k).await.remove(0) }
    };
    // The wrong action for a kind is refused and names the right ones.
    let finding = one(Kind::ReconcileFinding).await;
    let e = problems::perform(&pool, &request(&finding, Retry), None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("resolved by dismiss, not retry"),
        "{e}"
    );

    let run = one(Kind::CatalogRunFailed).await;
    problems::perform(&pool, &request(&run, Retry), None)
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &pool,
            "SELECT status FROM catalog_runs ORDER BY id DESC LIMIT 1"
        )
        .await,
        "starting"
    );
    let job = one(Kind::DraftOrderFailed).await;
    problems::perform(&pool, &request(&job, Retry), None)
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &pool,
            "SELECT status FROM draft_order_jobs WHERE id = 'dq_1'"
        )
        .await,
        "processing"
    );
    assert!(open(&pool, Kind::DraftOrderFailed).await.is_empty());
    let push = one(Kind::RulesPushError).await;
    problems::perform(&pool, &request(&push, Retry), None)
        .await
        .unwrap();
    assert_eq!(
        scalar(&pool, "SELECT company_location FROM rules_dirty LIMIT 1").await,
        "gid://shopify/CompanyLocation/1"
    );
    let dead = one(Kind::SalesforceDead).await;
    problems::perform(&pool, &request(&dead, Replay), None)
        .await
        .unwrap();
    assert_eq!(
        scalar(&pool, "SELECT status FROM salesforce_outbox LIMIT 1").await,
        "pending"
    );

    let review = one(Kind::SalesforceReview).await;
    let e = problems::perform(&pool, &request(&review, Link), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Account id"), "{e}");
    let link = problems::Request {
        item: Some("gid://shopify/Company/2".into()),
        account: Some("001B".into()),
        ..request(&review, Link)
    };
    problems::perform(&pool, &link, None).await.unwrap();
    assert_eq!(
        scalar(
            &pool,
            "SELECT decision || ' ' || account_id FROM salesforce_links"
        )
        .await,
        "linked 001B"
    );
    assert!(open(&pool, Kind::SalesforceReview).await.is_empty());
    // Deciding again: the problem is gone, and the error says where to look.
    let e = problems::perform(&pool, &request(&review, Create), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("origin problems list"), "{e}");
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE actor = 'cli' AND outcome = 'error'
           AND action LIKE 'problems %'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(failed, 3, "refusals are audited too");
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn an_ops_read_token_lists_problems_but_is_refused_every_action(pool: PgPool) {
    seed_every_kind(&pool).await;
    tokens::insert(&pool, "viewer", &[Scope::OpsRead], READ_TOKEN, None)
        .await
        .unwrap();
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let (status, page) = send(
        "GET",
        &format!("http://{addr}/admin/problems"),
        READ_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = page["rows"][0]["id"].as_str().unwrap().to_owned();
    let (status, detail) = send(
        "GET",
        &format!("http://{addr}/admin/problems/{id}"),
        READ_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!detail["items"]["rows"].as_array().unwrap().is_empty());
    for action in ["replay", "retry", "link", "create", "dismiss"] {
        let (status, _) = send(
            "POST",
            &format!("http://{addr}/admin/problems/{id}/{action}"),
            READ_TOKEN,
            Some(json!({"reason": "x"})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
    }
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE actor = 'viewer' AND outcome = 'denied'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(denied, 5);
    let dismissals: i64 = sqlx::query_scalar("SELECT count(*) FROM problem_dismissals")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(dismissals, 0);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn keyset_pages_return_every_problem_exactly_once(pool: PgPool) {
    // 53 problems, several seen at the same instant (ties broken by id).
    exec(
        &pool,
        "INSERT INTO rules_push_errors (shop, company_location, error, recorded_at)
         SELECT 'acme.myshopify.com', 'gid://shopify/CompanyLocation/' || g, 'error ' || g,
                '2026-12-01T00:00:00Z'::timestamptz + (g % 7) * interval '1 minute'
         FROM generate_series(1, 53) g",
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = problems::list(&pool, &Filter::default(), cursor.as_ref(), 10)
            .await
            .unwrap();
        assert_eq!(page.total, 53);
        seen.extend(page.rows.iter().map(|p| p.id.to_string()));
        match page.next {
            Some(next) => cursor = Some(next.parse().unwrap()),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 53);
    assert_eq!(unique.len(), 53);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_cli_prints_a_table_json_with_json_and_says_what_to_do_with_a_bad_id(pool: PgPool) {
    seed_every_kind(&pool).await;
    let url = database_url(&pool);
    let (out, err) = origin_cli(&url, &["problems", "list", "--limit", "3"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows: {out}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("REASON"),
        "{out}"
    );
    let column = lines[0].find("KIND").unwrap();
    assert!(
        lines[1..].iter().all(|l| l[column - 2..column] == *"  "),
        "{out}"
    );
    assert!(err.contains("showing 3 of 8; --limit to see more"), "{err}");
    let (out, _) = origin_cli(&url, &["problems", "list", "--json"]);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 8);
    let id = rows[0]["id"].as_str().unwrap();
    let (out, _) = origin_cli(&url, &["problems", "show", id]);
    assert!(out.contains("ITEM") && out.contains(id), "{out}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .args([
            "problems",
            "show",
            "dead_letter:acme.myshopify.com:0000000000000000",
        ])
        .env_clear()
        .env("WHOLESAIL_DATABASE_URL", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`origin problems list` shows them"),
        "{stderr}"
    );
}
