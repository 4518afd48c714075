//! Bulk query operations: start one, poll it until it finishes, and read its JSONL result line
//! by line as it downloads (never the whole file in memory).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::{
    check_user_errors, de_opt_u64, de_u64, AdminClient, AdminError, Request, Retry, UserError,
};

/// `BulkOperationStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BulkStatus {
    /// Accepted, not started.
    Created,
    /// Running.
    Running,
    /// Finished; `url` holds the result.
    Completed,
    /// Failed; see `error_code`.
    Failed,
    /// Being canceled.
    Canceling,
    /// Canceled.
    Canceled,
    /// The result URL expired.
    Expired,
}

impl BulkStatus {
    /// Whether the operation will not change any more.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            BulkStatus::Created | BulkStatus::Running | BulkStatus::Canceling
        )
    }
}

/// The hosts Shopify serves bulk operation results from (signed Google Cloud Storage URLs):
/// the default of every caller's allowed result hosts.
pub const SHOPIFY_RESULT_HOSTS: [&str; 2] = ["storage.googleapis.com", "storage.shopifycloud.com"];

/// A `BulkOperation`. Its `Debug` output leaves out the result URLs (they are signed: whoever
/// holds one can read the shop's export for seven days).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperation {
    /// gid.
    pub id: String,
    /// Status.
    pub status: BulkStatus,
    /// `ACCESS_DENIED`, `INTERNAL_SERVER_ERROR` or `TIMEOUT` when failed.
    pub error_code: Option<String>,
    /// Objects written so far.
    #[serde(deserialize_with = "de_u64")]
    pub object_count: u64,
    /// Top-level objects written so far.
    #[serde(default, deserialize_with = "de_u64")]
    pub root_object_count: u64,
    /// Result size in bytes.
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub file_size: Option<u64>,
    /// Result URL (expires after 7 days).
    pub url: Option<String>,
    /// Partial result of a failed operation.
    pub partial_data_url: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Completion time.
    pub completed_at: Option<String>,
}

impl std::fmt::Debug for BulkOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |u: &Option<String>| u.as_ref().map(|_| "[redacted]");
        f.debug_struct("BulkOperation")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("error_code", &self.error_code)
            .field("object_count", &self.object_count)
            .field("root_object_count", &self.root_object_count)
            .field("file_size", &self.file_size)
            .field("url", &redacted(&self.url))
            .field("partial_data_url", &redacted(&self.partial_data_url))
            .field("created_at", &self.created_at)
            .field("completed_at", &self.completed_at)
            .finish()
    }
}

/// Checks a bulk result `url` before anything is sent to it: `https` on one of `hosts`
/// (exact names; `*.example.com` for its subdomains), or the origin (scheme, host, port) of
/// the Admin API base URL `shop_url` itself, which is how the simulator serves results in
/// development and tests. Errors name the host at most, never the URL.
pub fn check_result_url(
    url: &str,
    hosts: &[String],
    shop_url: &str,
) -> Result<reqwest::Url, AdminError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| AdminError::ResultUrl("not a valid URL".into()))?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let same_origin = reqwest::Url::parse(shop_url)
        .is_ok_and(|shop| shop.origin() == parsed.origin() && parsed.username().is_empty());
    let listed = hosts.iter().any(|h| {
        let h = h.to_ascii_lowercase();
        match h.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == h,
        }
    });
    let allowed = same_origin
        || (parsed.scheme() == "https"
            && listed
            && parsed.username().is_empty()
            && parsed.password().is_none()
            && parsed.port().is_none());
    if !allowed {
        return Err(AdminError::ResultUrl(format!(
            "{}://{host} is not an allowed result host (https on {})",
            parsed.scheme(),
            hosts.join(", ")
        )));
    }
    Ok(parsed)
}

const FIELDS: &str = "id status errorCode objectCount rootObjectCount fileSize url partialDataUrl createdAt completedAt";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunPayload {
    bulk_operation: Option<BulkOperation>,
    user_errors: Vec<UserError>,
}

impl AdminClient {
    /// Starts a bulk query. `group_objects: false` (the default from 2026-01) lets children
    /// appear anywhere after their parent. Not retried when the outcome is unknown: look at
    /// [`AdminClient::current_bulk_operation`] first.
    pub async fn bulk_run_query(
        &self,
        query: &str,
        group_objects: bool,
    ) -> Result<BulkOperation, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            bulk_operation_run_query: RunPayload,
        }
        let text = format!(
            "mutation BulkRunQuery($query: String!, $groupObjects: Boolean!) {{ bulkOperationRunQuery(query: $query, groupObjects: $groupObjects) {{ bulkOperation {{ {FIELDS} }} userErrors {{ field message code }} }} }}"
        );
        let r = self
            .execute::<Data>(&Request {
                name: "BulkRunQuery",
                query: &text,
                variables: json!({"query": query, "groupObjects": group_objects}),
                estimated_cost: 10,
                retry: Retry::IfNotExecuted,
            })
            .await?;
        let p = r.data.bulk_operation_run_query;
        check_user_errors(p.user_errors)?;
        p.bulk_operation
            .ok_or_else(|| AdminError::Decode("bulkOperationRunQuery returned no operation".into()))
    }

    /// The bulk operation `id`, if it exists.
    pub async fn bulk_operation(&self, id: &str) -> Result<Option<BulkOperation>, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            bulk_operation: Option<BulkOperation>,
        }
        let text =
            format!("query BulkOperation($id: ID!) {{ bulkOperation(id: $id) {{ {FIELDS} }} }}");
        let r = self
            .execute::<Data>(&Request {
                name: "BulkOperation",
                query: &text,
                variables: json!({"id": id}),
                estimated_cost: 1,
                retry: Retry::Always,
            })
            .await?;
        Ok(r.data.bulk_operation)
    }

    /// The app's most recent bulk query on the shop.
    pub async fn current_bulk_operation(&self) -> Result<Option<BulkOperation>, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            current_bulk_operation: Option<BulkOperation>,
        }
        let text = format!(
            "query CurrentBulkOperation {{ currentBulkOperation(type: QUERY) {{ {FIELDS} }} }}"
        );
        let r = self
            .execute::<Data>(&Request {
                name: "CurrentBulkOperation",
                query: &text,
                variables: json!({}),
                estimated_cost: 1,
                retry: Retry::Always,
            })
            .await?;
        Ok(r.data.current_bulk_operation)
    }

    /// Asks Shopify to cancel bulk operation `id`; it goes `CANCELING`, then `CANCELED`.
    pub async fn bulk_cancel(&self, id: &str) -> Result<BulkOperation, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            bulk_operation_cancel: RunPayload,
        }
        let text = format!(
            "mutation BulkCancel($id: ID!) {{ bulkOperationCancel(id: $id) {{ bulkOperation {{ {FIELDS} }} userErrors {{ field message }} }} }}"
        );
        let r = self
            .execute::<Data>(&Request {
                name: "BulkCancel",
                query: &text,
                variables: json!({"id": id}),
                estimated_cost: 10,
                retry: Retry::Always,
            })
            .await?;
        let p = r.data.bulk_operation_cancel;
        check_user_errors(p.user_errors)?;
        p.bulk_operation
            .ok_or_else(|| AdminError::Decode("bulkOperationCancel returned no operation".into()))
    }

    /// Polls `id` every `interval` until it reaches a final status or `timeout` passes (then
    /// returns the last state seen).
    pub async fn wait_for_bulk_operation(
        &self,
        id: &str,
        interval: Duration,
        timeout: Duration,
    ) -> Result<BulkOperation, AdminError> {
        let start = Instant::now();
        loop {
            let op = self
                .bulk_operation(id)
                .await?
                .ok_or_else(|| AdminError::Decode(format!("bulk operation {id} not found")))?;
            if op.status.is_final() || start.elapsed() >= timeout {
                return Ok(op);
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Opens a bulk result `url` (a signed URL: no access token is sent) for reading line by
    /// line, once [`check_result_url`] allowed it against `hosts` (usually
    /// [`SHOPIFY_RESULT_HOSTS`]). Redirects are not followed, and no error carries the URL.
    pub async fn download_jsonl(
        &self,
        url: &str,
        hosts: &[String],
    ) -> Result<JsonlReader, AdminError> {
        let url = check_result_url(url, hosts, &self.config().shop_url)?;
        let resp = self
            .download_http()
            .get(url)
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .map_err(|e| AdminError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            return Err(AdminError::ResultUrl(format!(
                "answered HTTP {status} (a redirect, not followed)"
            )));
        }
        if status != 200 {
            return Err(AdminError::Http {
                status,
                body: String::new(),
            });
        }
        Ok(JsonlReader::new(Box::pin(resp.bytes_stream())))
    }
}

/// One line of a JSONL download.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number.
    pub number: u64,
    /// The line without its `\n`.
    pub bytes: &'a [u8],
    /// False for a last line that did not end in `\n` (a truncated file).
    pub terminated: bool,
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Reads a JSONL body line by line as it arrives; memory stays at the longest line plus one
/// network chunk.
///
/// A line that lies within one network chunk is handed out in place (found with `memchr`, no
/// copy); only a line cut by a chunk boundary is assembled in a side buffer.
pub struct JsonlReader {
    stream: ByteStream,
    /// The current network chunk.
    chunk: bytes::Bytes,
    /// Where the next line starts in `chunk`.
    pos: usize,
    /// The start of a line cut by a chunk boundary (or the line last handed out from it).
    carry: Vec<u8>,
    /// Whether `carry` holds the line handed out last (to be cleared on the next call).
    carry_out: bool,
    line: u64,
    bytes: u64,
    eof: bool,
}

impl JsonlReader {
    fn new(stream: ByteStream) -> Self {
        JsonlReader {
            stream,
            chunk: bytes::Bytes::new(),
            pos: 0,
            carry: Vec::new(),
            carry_out: false,
            line: 0,
            bytes: 0,
            eof: false,
        }
    }

    /// The next line, or `None` at the end of the body.
    pub async fn next_line(&mut self) -> Result<Option<Line<'_>>, AdminError> {
        if self.carry_out {
            self.carry.clear();
            self.carry_out = false;
        }
        let terminated = loop {
            let rest = &self.chunk[self.pos..];
            if let Some(k) = memchr::memchr(b'\n', rest) {
                if self.carry.is_empty() {
                    let s = self.pos;
                    self.pos = s + k + 1;
                    self.line += 1;
                    return Ok(Some(Line {
                        number: self.line,
                        bytes: &self.chunk[s..s + k],
                        terminated: true,
                    }));
                }
                // The end of a line cut by a chunk boundary.
                self.carry.extend_from_slice(&rest[..k]);
                self.pos += k + 1;
                break true;
            }
            self.carry.extend_from_slice(rest);
            self.pos = self.chunk.len();
            if self.eof {
                if self.carry.is_empty() {
                    return Ok(None);
                }
                break false;
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => {
                    self.bytes += chunk.len() as u64;
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    return Err(AdminError::Transport(format!(
                        "download broke after line {}: {}",
                        self.line,
                        e.without_url()
                    )))
                }
                None => self.eof = true,
            }
        };
        self.carry_out = true;
        self.line += 1;
        Ok(Some(Line {
            number: self.line,
            bytes: &self.carry,
            terminated,
        }))
    }

    /// Bytes received so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `body` delivered in `chunks` (lengths), returning (number, text, terminated).
    fn read(body: &[u8], chunks: &[usize]) -> Vec<(u64, String, bool)> {
        let mut parts = Vec::new();
        let mut at = 0;
        for &n in chunks {
            parts.push(Ok(bytes::Bytes::copy_from_slice(&body[at..at + n])));
            at += n;
        }
        parts.push(Ok(bytes::Bytes::copy_from_slice(&body[at..])));
        let mut reader = JsonlReader::new(Box::pin(futures_util::stream::iter(parts)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut out = Vec::new();
            while let Some(l) = reader.next_line().await.unwrap() {
                out.push((
                    l.number,
                    String::from_utf8(l.bytes.to_vec()).unwrap(),
                    l.terminated,
                ));
            }
            assert_eq!(reader.bytes_read(), body.len() as u64);
            out
        })
    }

    #[test]
    fn result_urls_must_be_https_on_an_allowed_host_or_the_simulators_origin() {
        let hosts: Vec<String> = SHOPIFY_RESULT_HOSTS.map(String::from).to_vec();
        let prod = "https://acme.myshopify.com";
        let sim = "http://127.0.0.1:8080";
        let secret = "X-Goog-Signature=0123abcdef";
        let allowed = [
            (format!("https://storage.googleapis.com/shopify-tiers-assets-prod-us-east1/bulk-operation-outputs/x.jsonl?{secret}"), prod),
            (format!("https://STORAGE.shopifycloud.com/r.jsonl?{secret}"), prod),
            (format!("http://127.0.0.1:8080/bulk/1.jsonl?{secret}"), sim),
        ];
        for (url, shop) in &allowed {
            assert!(check_result_url(url, &hosts, shop).is_ok(), "{url}");
        }
        let refused = [
            (
                format!("http://storage.googleapis.com/r.jsonl?{secret}"),
                prod,
            ),
            (
                format!("https://storage.googleapis.com.evil.example/r.jsonl?{secret}"),
                prod,
            ),
            (
                format!("https://evilstorage.googleapis.com/r.jsonl?{secret}"),
                prod,
            ),
            (
                format!("https://storage.googleapis.com@169.254.169.254/r?{secret}"),
                prod,
            ),
            (
                format!("https://user:pw@storage.googleapis.com/r?{secret}"),
                prod,
            ),
            (
                format!("https://storage.googleapis.com:8443/r?{secret}"),
                prod,
            ),
            (
                format!("https://169.254.169.254/latest/meta-data?{secret}"),
                prod,
            ),
            (format!("http://127.0.0.1:8080/bulk/1.jsonl?{secret}"), prod),
            (format!("http://127.0.0.1:9999/bulk/1.jsonl?{secret}"), sim),
            (format!("file:///etc/passwd?{secret}"), prod),
            (format!("not a url {secret}"), prod),
        ];
        for (url, shop) in &refused {
            let e = check_result_url(url, &hosts, shop).unwrap_err();
            assert!(matches!(e, AdminError::ResultUrl(_)), "{url}: {e}");
            assert!(!e.to_string().contains(secret), "{e}");
        }
        // Subdomain entries match subdomains only.
        let wild = vec!["*.example.com".to_owned()];
        assert!(check_result_url("https://a.example.com/x", &wild, prod).is_ok());
        assert!(check_result_url("https://example.com/x", &wild, prod).is_err());
        assert!(check_result_url("https://aexample.com/x", &wild, prod).is_err());
    }

    #[test]
    fn a_bulk_operations_debug_output_hides_its_result_urls() {
        let op: BulkOperation = serde_json::from_value(serde_json::json!({
            "id": "gid://shopify/BulkOperation/1", "status": "COMPLETED", "objectCount": "3",
            "url": "https://storage.googleapis.com/b/x?X-Goog-Signature=secret",
            "partialDataUrl": "https://storage.googleapis.com/b/p?X-Goog-Signature=secret",
            "createdAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        let shown = format!("{op:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("storage"),
            "{shown}"
        );
        assert!(shown.contains("gid://shopify/BulkOperation/1"), "{shown}");
    }

    #[test]
    fn lines_are_the_same_wherever_the_chunks_are_cut() {
        let body = b"{\"a\":1}\n\n{\"b\":22}\n{\"c\":333}\n";
        let expected = vec![
            (1, "{\"a\":1}".to_owned(), true),
            (2, String::new(), true),
            (3, "{\"b\":22}".to_owned(), true),
            (4, "{\"c\":333}".to_owned(), true),
        ];
        assert_eq!(read(body, &[]), expected);
        for a in 0..=body.len() {
            for b in 0..=body.len() - a {
                assert_eq!(read(body, &[a, b]), expected, "cut at {a} and {}", a + b);
            }
        }
        // One byte per chunk, with empty chunks in between.
        let ones: Vec<usize> = (0..body.len()).flat_map(|_| [1, 0]).collect();
        assert_eq!(read(body, &ones), expected);
    }

    #[test]
    fn a_last_line_without_newline_is_reported_unterminated() {
        let body = b"{\"a\":1}\n{\"b\":";
        for cut in 0..=body.len() {
            assert_eq!(
                read(body, &[cut]),
                vec![
                    (1, "{\"a\":1}".to_owned(), true),
                    (2, "{\"b\":".to_owned(), false)
                ],
                "cut at {cut}"
            );
        }
        assert_eq!(read(b"", &[]), vec![]);
    }
}
