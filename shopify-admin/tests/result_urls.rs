//! Bulk result downloads: refused off the allowed hosts, no redirects followed, and the
//! (signed, secret) URL never in an error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wholesail_shopify_admin::bulk::SHOPIFY_RESULT_HOSTS;
use wholesail_shopify_admin::{AdminClient, AdminConfig, AdminError};

/// The part of a signed URL that must never leak.
const SECRET: &str = "X-Goog-Signature=deadbeef0123";

/// An HTTP server answering every request with `answer`; counts its connections.
async fn server(answer: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, hits)
}

/// A client whose Admin API base URL is `base` (so results served there are allowed, as the
/// simulator's are).
fn client(base: &str) -> AdminClient {
    AdminClient::new(AdminConfig::new(
        base,
        "2026-01",
        SecretString::from("shpat_x"),
    ))
    .unwrap()
}

fn hosts() -> Vec<String> {
    SHOPIFY_RESULT_HOSTS.map(String::from).to_vec()
}

fn assert_no_url(e: &AdminError, base: &str) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains(&format!("{base}/")), "{shown}");
}

#[tokio::test]
async fn a_redirecting_result_url_is_not_followed() {
    let (target, target_hits) = server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into()).await;
    let (base, _) = server(format!(
        "HTTP/1.1 302 Found\r\nLocation: {target}/stolen?{SECRET}\r\nContent-Length: 0\r\n\r\n"
    ))
    .await;
    let e = client(&base)
        .download_jsonl(&format!("{base}/bulk/1.jsonl?{SECRET}"), &hosts())
        .await
        .err()
        .expect("a redirect is an error");
    assert!(matches!(e, AdminError::ResultUrl(_)), "{e}");
    assert_no_url(&e, &base);
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn a_result_url_off_the_allowed_hosts_is_refused_before_any_request() {
    let (base, hits) = server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".into()).await;
    // A production client (Shopify's own Admin API URL): only https on the storage hosts.
    let production = client("https://acme.myshopify.com");
    for url in [
        format!("{base}/bulk/1.jsonl?{SECRET}"),
        format!("http://storage.googleapis.com/b/r.jsonl?{SECRET}"),
        format!("https://storage.googleapis.com.evil.example/r.jsonl?{SECRET}"),
    ] {
        let e = production
            .download_jsonl(&url, &hosts())
            .await
            .err()
            .expect("refused");
        assert!(matches!(e, AdminError::ResultUrl(_)), "{url}: {e}");
        assert_no_url(&e, &base);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn download_errors_never_carry_the_result_url() {
    // Connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let e = client(&closed)
        .download_jsonl(&format!("{closed}/bulk/1.jsonl?{SECRET}"), &hosts())
        .await
        .err()
        .expect("refused connection");
    assert!(matches!(e, AdminError::Transport(_)), "{e}");
    assert_no_url(&e, &closed);
    // The body ends before its Content-Length.
    let (base, _) =
        server("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"a\":1}\n{\"b\":".into()).await;
    let mut reader = client(&base)
        .download_jsonl(&format!("{base}/bulk/1.jsonl?{SECRET}"), &hosts())
        .await
        .unwrap();
    let mut error = None;
    loop {
        match reader.next_line().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let e = error.expect("the cut body is an error");
    assert!(e.to_string().contains("download broke after line 1"), "{e}");
    assert_no_url(&e, &base);
}
