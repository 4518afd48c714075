//! The web console against real PostgreSQL, over HTTP like a browser: sign-in sets a session
//! cookie with the right attributes, a wrong token opens nothing, every write needs the
//! session's CSRF token and `ops:write`, a revoked token's session is dead, and lists page by
//! keyset cursors.

mod common;

use std::net::SocketAddr;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, Client, StatusCode};
use sqlx::PgPool;
use wholesail_origin::auth::tokens;
use wholesail_origin::auth::Scope;

const OPERATOR: &str = "wso_console-operator-token-read-and-write-01";
const READER: &str = "wso_console-reader-token-with-ops-read-only-1";
const INTEGRATOR: &str = "wso_console-integrator-token-no-console-0001";

fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

async fn grant(pool: &PgPool) {
    let tokens: [(&str, &[Scope], &str); 3] = [
        ("ops-alice", &[Scope::OpsRead, Scope::OpsWrite], OPERATOR),
        ("ops-viewer", &[Scope::OpsRead], READER),
        ("erp", &[Scope::Integrator], INTEGRATOR),
    ];
    for (name, scopes, token) in tokens {
        tokens::insert(pool, name, scopes, token, None)
            .await
            .unwrap();
    }
}

async fn start(pool: &PgPool) -> SocketAddr {
    grant(pool).await;
    common::serve_routes(pool.clone(), 1 << 20).await
}

async fn post_sign_in(addr: SocketAddr, token: &str) -> reqwest::Response {
    client()
        .post(format!("http://{addr}/console/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// Signs in with `token`; the `name=value` of the session cookie.
async fn sign_in(addr: SocketAddr, token: &str) -> String {
    let resp = post_sign_in(addr, token).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()[SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn get(addr: SocketAddr, path: &str, cookie: &str) -> (StatusCode, String) {
    let resp = client()
        .get(format!("http://{addr}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn post(addr: SocketAddr, path: &str, cookie: &str, form: &[(&str, &str)]) -> StatusCode {
    client()
        .post(format!("http://{addr}{path}"))
        .header(COOKIE, cookie)
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF field")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

async fn active_run(pool: &PgPool) -> i64 {
    sqlx::query_scalar("INSERT INTO catalog_runs (shop, status) VALUES ('a.myshopify.com', 'importing') RETURNING id")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn cancel_requested(pool: &PgPool, run: i64) -> bool {
    sqlx::query_scalar("SELECT cancel_requested FROM catalog_runs WHERE id = $1")
        .bind(run)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// (actor, outcome, status) of the audit rows of `action`, oldest first.
async fn audited(pool: &PgPool, action: &str) -> Vec<(String, String, Option<i32>)> {
    sqlx::query_as("SELECT actor, outcome, status FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn sign_in_sets_an_http_only_secure_strict_cookie_for_the_console_only(pool: PgPool) {
    let addr = start(&pool).await;
    let resp = post_sign_in(addr, OPERATOR).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/console");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    for wanted in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(attributes.contains(&wanted), "{wanted} missing in {set}");
    }
    let cookie = attributes[0];
    let (name, id) = cookie.split_once('=').unwrap();
    assert_eq!(name, "wholesail_console");
    assert!(id.len() >= 43, "a 32-byte random id: {id}");
    // Only the id's hash is stored.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT id_hash FROM console_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(stored, id.as_bytes());

    let (status, page) = get(addr, "/console", cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Overview") && page.contains("ops-alice"),
        "{page}"
    );
    assert_eq!(
        audited(&pool, "POST /console/sign-in").await,
        vec![("ops-alice".into(), "success".into(), Some(303))]
    );

    // Sign-out ends the session (with its CSRF token).
    let csrf = csrf_of(&page);
    let out = post(addr, "/console/sign-out", cookie, &[("csrf", &csrf)]).await;
    assert_eq!(out, StatusCode::SEE_OTHER);
    let (status, _) = get(addr, "/console", cookie).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "signed out: back to the form"
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_wrong_token_or_one_without_ops_read_opens_no_session(pool: PgPool) {
    let addr = start(&pool).await;
    for (token, status) in [
        (
            "wso_not-a-token-anyone-was-given-000000000",
            StatusCode::UNAUTHORIZED,
        ),
        ("short", StatusCode::UNAUTHORIZED),
        (INTEGRATOR, StatusCode::FORBIDDEN),
    ] {
        let resp = post_sign_in(addr, token).await;
        assert_eq!(resp.status(), status, "{token}");
        assert!(resp.headers().get(SET_COOKIE).is_none());
        assert!(resp.text().await.unwrap().contains("role=\"alert\""));
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    // No cookie, or a made-up one: pages send to the form, writes are refused.
    for cookie in ["", "wholesail_console=made-up-session-id"] {
        let (status, _) = get(addr, "/console/catalog", cookie).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let status = post(addr, "/console/catalog/1/cancel", cookie, &[("csrf", "x")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // A bearer token is no session.
    let resp = client()
        .get(format!("http://{addr}/console"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/console/sign-in");
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_write_without_or_with_a_wrong_csrf_token_is_refused_and_audited(pool: PgPool) {
    let addr = start(&pool).await;
    let run = active_run(&pool).await;
    let cookie = sign_in(addr, OPERATOR).await;
    let (_, page) = get(addr, &format!("/console/catalog/{run}"), &cookie).await;
    assert!(page.contains("Cancel this run"), "{page}");
    let csrf = csrf_of(&page);
    let path = format!("/console/catalog/{run}/cancel");

    assert_eq!(post(addr, &path, &cookie, &[]).await, StatusCode::FORBIDDEN);
    let wrong = format!("{}x", &csrf[..csrf.len() - 1]);
    assert_eq!(
        post(addr, &path, &cookie, &[("csrf", &wrong)]).await,
        StatusCode::FORBIDDEN
    );
    // Another session's token does not fit this one.
    let other = sign_in(addr, OPERATOR).await;
    let (_, other_page) = get(addr, "/console", &other).await;
    let other_csrf = csrf_of(&other_page);
    assert_ne!(other_csrf, csrf);
    assert_eq!(
        post(addr, &path, &cookie, &[("csrf", &other_csrf)]).await,
        StatusCode::FORBIDDEN
    );
    assert!(!cancel_requested(&pool, run).await);
    // A browser's cross-site POST is refused even with the right token.
    let cross = client()
        .post(format!("http://{addr}{path}"))
        .header(COOKIE, &cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    assert_eq!(
        post(addr, &path, &cookie, &[("csrf", &csrf)]).await,
        StatusCode::SEE_OTHER
    );
    assert!(cancel_requested(&pool, run).await);
    let rows = audited(&pool, "POST /console/catalog/{id}/cancel").await;
    let outcomes: Vec<&str> = rows.iter().map(|(_, o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["denied", "denied", "denied", "denied", "success"]
    );
    assert!(rows.iter().all(|(actor, _, _)| actor == "ops-alice"));
    let token_ids: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT token_id FROM audit_log WHERE action = 'POST /console/catalog/{id}/cancel'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let alice: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'ops-alice'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(token_ids.iter().all(|t| *t == Some(alice)));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_read_only_session_sees_no_write_button_and_is_refused_when_it_posts(pool: PgPool) {
    let addr = start(&pool).await;
    let run = active_run(&pool).await;
    let cookie = sign_in(addr, READER).await;
    let (status, page) = get(addr, &format!("/console/catalog/{run}"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("read only"));
    assert!(!page.contains("/cancel\""), "no cancel form: {page}");
    // The sign-out form still carries the session's CSRF token: post with it anyway.
    let csrf = csrf_of(&page);
    let path = format!("/console/catalog/{run}/cancel");
    assert_eq!(
        post(addr, &path, &cookie, &[("csrf", &csrf)]).await,
        StatusCode::FORBIDDEN
    );
    assert!(!cancel_requested(&pool, run).await);
    assert_eq!(
        audited(&pool, "POST /console/catalog/{id}/cancel").await,
        vec![("ops-viewer".into(), "denied".into(), Some(403))]
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_session_of_a_revoked_or_rotated_token_is_dead(pool: PgPool) {
    let addr = start(&pool).await;
    let alice = sign_in(addr, OPERATOR).await;
    let viewer = sign_in(addr, READER).await;
    assert_eq!(get(addr, "/console", &alice).await.0, StatusCode::OK);
    assert_eq!(get(addr, "/console", &viewer).await.0, StatusCode::OK);

    tokens::revoke(&pool, "ops-alice").await.unwrap();
    assert_eq!(get(addr, "/console", &alice).await.0, StatusCode::SEE_OTHER);
    let csrf = "irrelevant";
    assert_eq!(
        post(addr, "/console/catalog/1/cancel", &alice, &[("csrf", csrf)]).await,
        StatusCode::UNAUTHORIZED
    );
    // Rotation (even with a grace period for the API) ends the sessions opened before it.
    tokens::rotate(&pool, "ops-viewer", 3600, false)
        .await
        .unwrap();
    assert_eq!(
        get(addr, "/console", &viewer).await.0,
        StatusCode::SEE_OTHER
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn lists_page_by_keyset_cursors_through_every_row_once(pool: PgPool) {
    let addr = start(&pool).await;
    sqlx::query(
        "INSERT INTO catalog_runs (shop, status, finished_at)
         SELECT 'a.myshopify.com', 'completed', now() FROM generate_series(1, 120)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // 70 jobs submitted at the same instant: the id breaks the tie.
    sqlx::query(
        "INSERT INTO draft_order_jobs (id, shop, quote_id, company_location_id, request, created_at)
         SELECT 'dq_' || lpad(n::text, 20, '0'), 'a.myshopify.com', 'Q-' || n,
                'gid://shopify/CompanyLocation/1', '{}', '2026-12-01T10:00:00Z'
         FROM generate_series(1, 70) n",
    )
    .execute(&pool)
    .await
    .unwrap();
    let cookie = sign_in(addr, READER).await;

    for (list, marker, total) in [
        ("/console/catalog", "href=\"/console/catalog/", 120_usize),
        ("/console/drafts", "<code>dq_", 70),
    ] {
        let mut seen = Vec::new();
        let mut path = list.to_owned();
        let mut pages = 0;
        loop {
            let (status, page) = get(addr, &path, &cookie).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            pages += 1;
            let keys: Vec<String> = page
                .match_indices(marker)
                .map(|(i, _)| {
                    page[i + marker.len()..]
                        .split(['"', '<'])
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            assert!(keys.len() <= 50, "a page holds at most 50 rows");
            seen.extend(keys);
            let Some(at) = page.find("rel=\"next\" href=\"") else {
                break;
            };
            let href = page[at + 17..]
                .split('"')
                .next()
                .unwrap()
                .replace("&amp;", "&");
            assert!(!href.contains("offset"), "{href}");
            path = href;
        }
        assert_eq!(pages, total.div_ceil(50), "{list}");
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), total, "{list}: every row exactly once");
        assert_eq!(seen.len(), total, "{list}: no row twice");
    }
}
