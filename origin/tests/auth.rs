//! Scoped tokens and the audit log against real PostgreSQL: every route × every kind of caller
//! answers 401 / 403 / past-auth as the access table says, and the table lists every route in
//! the source; rotation, revocation and short tokens; write actions (HTTP and CLI) land in the
//! audit log.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_origin::auth::routes::{Access, ROUTES};
use wholesail_origin::auth::tokens::{self, TokenError};
use wholesail_origin::auth::Scope;

const READ: &str = "wso_read-token-for-the-route-matrix-0001";
const WRITE: &str = "wso_write-token-for-the-route-matrix-001";
const INTEGRATOR: &str = "wso_integrator-token-for-the-matrix-0001";

async fn grant(pool: &PgPool) {
    for (name, scope, token) in [
        ("ops-read", Scope::OpsRead, READ),
        ("ops-write", Scope::OpsWrite, WRITE),
        ("erp", Scope::Integrator, INTEGRATOR),
    ] {
        tokens::insert(pool, name, &[scope], token, None)
            .await
            .unwrap();
    }
}

async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// What a caller must get from a route.
#[derive(Debug, PartialEq)]
enum Expect {
    Unauthorized,
    Forbidden,
    /// Past authentication: 2xx, or the route's own 4xx for the empty body and made-up ids.
    Past,
    Success,
}

fn meets(status: StatusCode, expect: &Expect) -> bool {
    match expect {
        Expect::Unauthorized => status == StatusCode::UNAUTHORIZED,
        Expect::Forbidden => status == StatusCode::FORBIDDEN,
        Expect::Success => status.is_success(),
        Expect::Past => {
            (status.is_success() || status.is_client_error())
                && ![
                    StatusCode::UNAUTHORIZED,
                    StatusCode::FORBIDDEN,
                    StatusCode::METHOD_NOT_ALLOWED,
                ]
                .contains(&status)
        }
    }
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn every_route_answers_every_kind_of_caller_as_the_access_table_says(pool: PgPool) {
    grant(&pool).await;
    let addr = common::serve_routes(pool.clone(), 1 << 20).await;
    let callers: [(&str, Option<&str>); 6] = [
        ("no token", None),
        (
            "unknown token",
            Some("wso_no-such-token-but-long-enough-0000000"),
        ),
        ("short token", Some("wso_short")),
        ("ops:read", Some(READ)),
        ("ops:write", Some(WRITE)),
        ("integrator", Some(INTEGRATOR)),
    ];
    let mut wrong = Vec::new();
    for route in ROUTES {
        let path = route
            .path
            .replace("{id}", "1")
            .replace("{job}", "dq_00000000000000000000");
        let body = (route.method != "GET").then(|| json!({}));
        for (who, token) in callers {
            let expect = match route.access {
                Access::Public => Expect::Success,
                // HMAC-signed intake: no signature, 401, whatever token comes along.
                Access::Signed => Expect::Unauthorized,
                // The console ignores bearer tokens: without a session a page redirects to
                // the sign-in form (followed: 200), a write is 401; the sign-in form itself
                // refuses the JSON body.
                Access::Console if route.method == "GET" => Expect::Success,
                Access::Console if route.path == "/console/sign-in" => Expect::Past,
                Access::Console => Expect::Unauthorized,
                Access::Scope(scope) => match token {
                    Some(_) if who == scope.as_str() => Expect::Past,
                    Some(_) if who.starts_with("ops:") || who == "integrator" => Expect::Forbidden,
                    _ => Expect::Unauthorized,
                },
            };
            let url = format!("http://{addr}{path}");
            let (status, answer) = send(route.method, &url, token, body.as_ref()).await;
            if !meets(status, &expect) {
                wrong.push(format!(
                    "{} {path} as {who}: {status} {answer}, expected {expect:?}",
                    route.method
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The string literal right after each `.route(` in `origin/src`, outside unit tests.
fn routes_in_source(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            routes_in_source(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests serve routes of their own.
            let text = text.split("#[cfg(test)]").next().unwrap();
            for (_, rest) in text
                .match_indices(".route(")
                .map(|(i, _)| text.split_at(i + 7))
            {
                let rest = rest.trim_start();
                if let Some(literal) = rest.strip_prefix('"') {
                    found.insert(literal.split('"').next().unwrap().to_owned());
                }
            }
        }
    }
}

#[test]
fn the_access_table_lists_every_route_in_the_source() {
    let mut in_source = BTreeSet::new();
    routes_in_source(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut in_source,
    );
    let in_table: BTreeSet<String> = ROUTES.iter().map(|r| r.path.to_owned()).collect();
    assert!(in_source.len() > 15, "the scan found routes: {in_source:?}");
    assert_eq!(
        in_source, in_table,
        "every route must have an entry in auth::routes::ROUTES (and the matrix test)"
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn rotation_keeps_the_old_secret_only_for_its_grace_period_and_revocation_is_immediate(
    pool: PgPool,
) {
    let auth = |token: String| {
        let pool = pool.clone();
        async move { tokens::authenticate(&pool, &token).await.unwrap().is_some() }
    };
    let first = tokens::create(&pool, "ops", &[Scope::OpsRead], false)
        .await
        .unwrap();
    assert!(first.token.starts_with("wso_") && first.token.len() >= 40);
    assert!(auth(first.token.clone()).await);
    let second = tokens::rotate(&pool, "ops", 0, false).await.unwrap();
    assert!(
        !auth(first.token.clone()).await,
        "no grace: the old one stops"
    );
    assert!(auth(second.token.clone()).await);
    let third = tokens::rotate(&pool, "ops", 3600, false).await.unwrap();
    assert!(auth(second.token.clone()).await, "within the grace period");
    assert!(auth(third.token.clone()).await);
    assert!(!auth(first.token.clone()).await);
    tokens::revoke(&pool, "ops").await.unwrap();
    assert!(!auth(second.token).await && !auth(third.token).await);
    // The name is free again; the stored row holds no secret in clear.
    tokens::create(&pool, "ops", &[Scope::OpsRead], false)
        .await
        .unwrap();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens WHERE encode(secret_hash, 'escape') LIKE 'wso_%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 0);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn short_tokens_bad_names_and_misplaced_callback_secrets_are_refused(pool: PgPool) {
    let short = "x".repeat(31);
    let long = "x".repeat(32);
    let r = tokens::insert(&pool, "short", &[Scope::OpsRead], &short, None).await;
    assert!(matches!(r, Err(TokenError::TooShort)), "{r:?}");
    assert!(tokens::authenticate(&pool, &short).await.unwrap().is_none());
    tokens::insert(&pool, "long", &[Scope::OpsRead], &long, None)
        .await
        .unwrap();
    assert!(tokens::authenticate(&pool, &long).await.unwrap().is_some());
    let r = tokens::insert(&pool, "long", &[Scope::OpsRead], &"y".repeat(40), None).await;
    assert!(matches!(r, Err(TokenError::Exists(_))), "{r:?}");
    let r = tokens::create(&pool, "bad name", &[Scope::OpsRead], false).await;
    assert!(matches!(r, Err(TokenError::BadName(_))), "{r:?}");
    let r = tokens::create(&pool, "nothing", &[], false).await;
    assert!(matches!(r, Err(TokenError::NoScope)), "{r:?}");
    let r = tokens::create(&pool, "ops", &[Scope::OpsWrite], true).await;
    assert!(
        matches!(r, Err(TokenError::CallbackWithoutIntegrator)),
        "{r:?}"
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn write_actions_land_in_the_audit_log_with_token_action_target_and_outcome(pool: PgPool) {
    grant(&pool).await;
    let addr = common::serve_routes(pool.clone(), 1 << 20).await;
    let url = |p: &str| format!("http://{addr}{p}");
    let (s, _) = send(
        "POST",
        &url("/admin/dead-letters/replay"),
        Some(WRITE),
        Some(&json!({"all": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = send(
        "POST",
        &url("/admin/dead-letters/replay"),
        Some(READ),
        Some(&json!({"all": true})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = send(
        "POST",
        &url("/admin/rules/import?shop=a.myshopify.com&format=xml"),
        Some(WRITE),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Reads are not audited.
    send("GET", &url("/admin/dead-letters"), Some(READ), None).await;

    let (s, rows) = send("GET", &url("/admin/audit"), Some(READ), None).await;
    assert_eq!(s, StatusCode::OK);
    let rows: Vec<(String, String, String, String, i64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    let row = |actor: &str, action: &str, target: &str, outcome: &str, status: i64| {
        (
            actor.to_owned(),
            action.to_owned(),
            target.to_owned(),
            outcome.to_owned(),
            status,
        )
    };
    assert_eq!(
        rows,
        [
            row(
                "ops-write",
                "POST /admin/rules/import",
                "/admin/rules/import?shop=a.myshopify.com&format=xml",
                "error",
                400
            ),
            row(
                "ops-read",
                "POST /admin/dead-letters/replay",
                "/admin/dead-letters/replay",
                "denied",
                403
            ),
            row(
                "ops-write",
                "POST /admin/dead-letters/replay",
                "/admin/dead-letters/replay",
                "success",
                200
            ),
        ]
    );
    let detail: Option<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE outcome = 'success'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(detail.as_deref(), Some("replayed []"));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_cli_creates_a_token_that_works_once_printed_and_audits_its_write_commands(
    pool: PgPool,
) {
    let db = common::database_url(&pool);
    let origin = |args: &[&str]| common::origin_cli(&db, args).0;
    let created: Value = serde_json::from_str(&origin(&[
        "tokens",
        "create",
        "--name",
        "erp",
        "--scope",
        "integrator",
        "--callback-secret",
    ]))
    .unwrap();
    let token = created["token"].as_str().unwrap();
    assert_eq!(created["scopes"], json!(["integrator"]));
    assert!(created["callback_secret"].as_str().unwrap().len() >= 32);
    let caller = tokens::authenticate(&pool, token).await.unwrap().unwrap();
    assert!(caller.has(Scope::Integrator) && caller.has_callback_secret);

    let listed = origin(&["tokens", "list", "--json"]);
    assert!(
        listed.contains("\"erp\"") && !listed.contains(token),
        "{listed}"
    );
    let rotated: Value = serde_json::from_str(&origin(&["tokens", "rotate", "erp"])).unwrap();
    assert!(tokens::authenticate(&pool, token).await.unwrap().is_none());
    let new = rotated["token"].as_str().unwrap();
    assert!(tokens::authenticate(&pool, new).await.unwrap().is_some());
    origin(&["tokens", "revoke", "erp"]);
    assert!(tokens::authenticate(&pool, new).await.unwrap().is_none());

    origin(&["dead-letters", "replay", "--all"]);

    let audit = origin(&["audit", "list", "--json"]);
    let actions: Vec<(String, String, String)> = audit
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let cli = |a: &str| ("cli".to_owned(), a.to_owned(), "success".to_owned());
    assert_eq!(
        actions,
        [
            cli("dead-letters replay"),
            cli("tokens revoke"),
            cli("tokens rotate"),
            cli("tokens create")
        ]
    );
    assert!(
        audit.contains(r#""target":"dead-letters replay --all""#),
        "{audit}"
    );
    assert!(!audit.contains(token) && !audit.contains(new));
}
