//! The real `origin serve` under abuse: unsigned and trickled bodies, slow headers, a flood of
//! large bodies, load shedding, probes under a full pool, and who may read `/metrics`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    database_url, envelope, grant_admin, now, post_signed, Origin, ADMIN_TOKEN, KEY_ID, KEY_SECRET,
};
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wholesail_origin::auth::{tokens, Scope};
use wholesail_webhook::{SigningKey, SIGNATURE_HEADER};

/// A token with the `integrator` scope only.
const INTEGRATOR: &str = "wso_erp-integrator-token-0123456789abcdef";

/// How a raw request ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// A status line came back.
    Status(u16),
    /// The connection closed (or was reset) without a response.
    Closed,
    /// Nothing came back within 20 s.
    NoAnswer,
}

/// Sends `head` (request line and headers, without the blank line), then `body` in the
/// background, and returns what came back.
async fn raw(addr: SocketAddr, head: &str, body: Option<Bytes>) -> Outcome {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return Outcome::Closed;
    };
    let (mut read, mut write) = stream.into_split();
    let head = format!("{head}\r\n\r\n");
    if write.write_all(head.as_bytes()).await.is_err() {
        return Outcome::Closed;
    }
    let writer = tokio::spawn(async move {
        if let Some(body) = body {
            let _ = write.write_all(&body).await;
        }
        write
    });
    // A server that waited for the whole body would never answer: give up after a while.
    let outcome = tokio::time::timeout(Duration::from_secs(20), status(&mut read))
        .await
        .unwrap_or(Outcome::NoAnswer);
    writer.abort();
    outcome
}

async fn status(read: &mut (impl AsyncReadExt + Unpin)) -> Outcome {
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match read.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return Outcome::Closed,
            Ok(n) => got += n,
        }
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    Outcome::Status(line[9..12].parse().expect("a status code"))
}

/// A signature header that passes the pre-check (known key, fresh timestamp) but not the MAC.
fn plausible_signature() -> String {
    SigningKey::new(KEY_ID, KEY_SECRET)
        .unwrap()
        .sign(b"some other body", now())
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

#[sqlx::test(migrations = false)]
async fn unsigned_request_is_refused_before_its_body_is_read(pool: PgPool) {
    let origin = Origin::spawn(&database_url(&pool), &[]);
    let start = Instant::now();
    // Headers only: a server that waited for the 16 MB body would never answer.
    let head = format!(
        "POST /internal/webhooks HTTP/1.1\r\nHost: origin\r\nContent-Length: {}",
        16 * 1024 * 1024
    );
    assert_eq!(raw(origin.addr, &head, None).await, Outcome::Status(401));
    let bad_key = SigningKey::new("unknown-key", KEY_SECRET)
        .unwrap()
        .sign(b"x", now());
    let head = format!("{head}\r\n{SIGNATURE_HEADER}: {bad_key}");
    assert_eq!(raw(origin.addr, &head, None).await, Outcome::Status(401));
    let stale = SigningKey::new(KEY_ID, KEY_SECRET)
        .unwrap()
        .sign(b"x", now() - 3600);
    let head = format!(
        "POST /internal/dead-letters HTTP/1.1\r\nHost: origin\r\nContent-Length: 100\r\n{SIGNATURE_HEADER}: {stale}"
    );
    assert_eq!(raw(origin.addr, &head, None).await, Outcome::Status(401));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[sqlx::test(migrations = false)]
async fn trickled_body_is_cut_at_the_request_timeout(pool: PgPool) {
    let origin = Origin::spawn(
        &database_url(&pool),
        &[("WHOLESAIL_HTTP__REQUEST_TIMEOUT_MS", "1000")],
    );
    let stream = TcpStream::connect(origin.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /internal/webhooks HTTP/1.1\r\nHost: origin\r\nContent-Length: 1000000\r\n{SIGNATURE_HEADER}: {}\r\n\r\n",
        plausible_signature()
    );
    write.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    // One byte every 100 ms: never idle long enough for the body idle timeout.
    let trickle = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            interval.tick().await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let outcome = status(&mut read).await;
    let elapsed = start.elapsed();
    assert_eq!(outcome, Outcome::Status(408));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stays open after the 408");
    trickle.abort();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "cut after {elapsed:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn slow_headers_are_cut_at_the_header_timeout(pool: PgPool) {
    let origin = Origin::spawn(
        &database_url(&pool),
        &[("WHOLESAIL_HTTP__HEADER_TIMEOUT_MS", "1000")],
    );
    let stream = TcpStream::connect(origin.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        write.write_all(b"GET /livez HTTP/1.1\r\n").await.unwrap();
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            interval.tick().await;
            if write.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return;
            }
        }
    });
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut rest)).await;
    let elapsed = start.elapsed();
    trickle.abort();
    assert!(closed.is_ok(), "slow headers kept the connection open");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn parallel_unsigned_16_mb_bodies_are_refused_quickly_with_bounded_memory(pool: PgPool) {
    let origin = Origin::spawn(&database_url(&pool), &[]);
    let pid = origin.child.id();
    let client = reqwest::Client::new();
    let livez = origin.url("/livez");
    let readyz = origin.url("/readyz");
    assert_eq!(client.get(&readyz).send().await.unwrap().status(), 200);
    let before_kib = vm_kib(pid, "VmRSS:");

    let body = Bytes::from(vec![b'{'; 16 * 1024 * 1024]);
    let head = format!(
        "POST /internal/webhooks HTTP/1.1\r\nHost: origin\r\nContent-Type: application/json\r\nContent-Length: {}",
        body.len()
    );
    let head = Arc::new(head);
    let start = Instant::now();
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let (head, body, addr) = (head.clone(), body.clone(), origin.addr);
            tokio::spawn(async move { raw(addr, &head, Some(body)).await })
        })
        .collect();
    // The probes answer during the flood.
    let probes = [livez.as_str(), readyz.as_str()];
    for url in probes {
        let res = tokio::time::timeout(Duration::from_secs(5), client.get(url).send()).await;
        assert_eq!(res.expect("probe answered").unwrap().status(), 200, "{url}");
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for task in flood {
        let outcome = task.await.unwrap();
        assert!(
            !matches!(outcome, Outcome::Status(200..=299)),
            "an unsigned body was accepted"
        );
        *outcomes.entry(format!("{outcome:?}")).or_default() += 1;
    }
    let elapsed = start.elapsed();
    let peak_kib = vm_kib(pid, "VmHWM:");
    eprintln!(
        "200 × 16 MB unsigned: {outcomes:?} in {elapsed:?}; origin RSS before {} MiB, peak {} MiB",
        before_kib / 1024,
        peak_kib / 1024
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    // 200 bodies read whole would be 3.2 GB.
    assert!(peak_kib < 256 * 1024, "peak RSS {} MiB", peak_kib / 1024);
    assert_eq!(client.get(&readyz).send().await.unwrap().status(), 200);
}

#[sqlx::test(migrations = "../migrations")]
async fn over_the_limit_requests_get_503_at_once_while_probes_answer_from_their_own_pool(
    pool: PgPool,
) {
    grant_admin(&pool).await;
    let origin = Origin::spawn(
        &database_url(&pool),
        &[
            ("WHOLESAIL_POOL_SIZE", "2"),
            ("WHOLESAIL_HTTP__CONCURRENCY_LIMIT", "2"),
            ("WHOLESAIL_WORKER__CONCURRENCY", "0"),
            ("WHOLESAIL_DRAFT_ORDERS__CONCURRENCY", "0"),
        ],
    );
    // Inserts wait for this lock (reads do not): two intake requests then hold both pool
    // connections and both concurrency slots.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE inbox IN SHARE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let url = origin.url("/internal/webhooks");
    let held: Vec<_> = (0..2)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                post_signed(&url, &envelope(&format!("held-{i}"), "a.myshopify.com", i)).await
            })
        })
        .collect();
    common::eventually(Duration::from_secs(10), "two inserts waiting", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%inbox%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        waiting == 2
    })
    .await;

    let client = reqwest::Client::new();
    let start = Instant::now();
    let shed = post_signed(&url, &envelope("shed", "a.myshopify.com", 9)).await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let shed: Value = shed.json().await.unwrap();
    assert_eq!(shed["error"]["code"], "unavailable", "{shed}");
    let probes: Vec<_> = (0..20)
        .map(|i| {
            let url = origin.url(if i % 2 == 0 { "/readyz" } else { "/livez" });
            let client = client.clone();
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    for p in probes {
        assert_eq!(p.await.unwrap(), 200);
    }
    let metrics = client.get(origin.url("/metrics")).bearer_auth(ADMIN_TOKEN);
    let metrics = metrics.send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("wholesail_http_shed_total 1"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    lock.commit().await.unwrap();
    for h in held {
        assert_eq!(h.await.unwrap().status(), 200);
    }
}

#[sqlx::test(migrations = false)]
async fn metrics_need_an_ops_read_token_and_can_move_to_their_own_address(pool: PgPool) {
    let reader = "wso_prometheus-reader-token-0123456789ab";
    let client = reqwest::Client::new();
    let origin = Origin::spawn(&database_url(&pool), &[]);
    // `origin serve` has migrated the database by now.
    tokens::insert(&pool, "prometheus", &[Scope::OpsRead], reader, None)
        .await
        .unwrap();
    tokens::insert(&pool, "erp", &[Scope::Integrator], INTEGRATOR, None)
        .await
        .unwrap();
    let url = origin.url("/metrics");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let wrong = client
        .get(&url)
        .bearer_auth("wso_prometheus-reader-token-0123456789aX");
    assert_eq!(wrong.send().await.unwrap().status(), 401);
    let integrator = client.get(&url).bearer_auth(INTEGRATOR);
    assert_eq!(integrator.send().await.unwrap().status(), 403);
    let right = client.get(&url).bearer_auth(reader).send().await.unwrap();
    assert_eq!(right.status(), 200);
    drop(origin);

    let origin = Origin::spawn(
        &database_url(&pool),
        &[("WHOLESAIL_METRICS__BIND", "127.0.0.1:0")],
    );
    let metrics_addr = origin
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "metrics listening")
        .map(|v| v["fields"]["addr"].as_str().unwrap().to_owned())
        .expect("a metrics listening line");
    let main = client.get(origin.url("/metrics")).bearer_auth(reader);
    assert_eq!(main.send().await.unwrap().status(), 404);
    let own = format!("http://{metrics_addr}/metrics");
    assert_eq!(client.get(&own).send().await.unwrap().status(), 401);
    let own = client.get(&own).bearer_auth(reader).send().await.unwrap();
    assert_eq!(own.status(), 200);
    assert!(
        own.text().await.unwrap().contains("# TYPE"),
        "Prometheus text"
    );
}

#[sqlx::test(migrations = false)]
async fn every_refusal_has_the_one_error_shape_whichever_layer_made_it(pool: PgPool) {
    let origin = Origin::spawn(
        &database_url(&pool),
        &[("WHOLESAIL_HTTP__DIRECT_MAX_BODY_BYTES", "1024")],
    );
    let client = reqwest::Client::new();
    let refusal = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        assert_eq!(headers["content-type"], "application/json", "{status}");
        let body: Value = r.json().await.unwrap();
        let error = &body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        (status, error["code"].as_str().unwrap().to_owned(), headers)
    };
    // axum's fallback: no such route.
    let (status, code, _) = refusal(client.get(origin.url("/nope")).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    // axum's method router, keeping its Allow header.
    let wrong_method = client
        .get(origin.url("/internal/webhooks"))
        .send()
        .await
        .unwrap();
    let (status, code, headers) = refusal(wrong_method).await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert!(headers.contains_key("allow"));
    // tower-http's body limit, before the handler.
    let big = client
        .post(origin.url("/webhooks/shopify"))
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    let (status, code, _) = refusal(big).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    // The auth layer, keeping WWW-Authenticate.
    let anonymous = client
        .get(origin.url("/admin/dead-letters"))
        .send()
        .await
        .unwrap();
    let (status, code, headers) = refusal(anonymous).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert_eq!(headers["www-authenticate"], "Bearer");
    // A handler's own refusal: intake without a signature.
    let unsigned = client
        .post(origin.url("/internal/webhooks"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, code, _) = refusal(unsigned).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
}
