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

/// A `BulkOperation`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
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
    /// line.
    pub async fn download_jsonl(&self, url: &str) -> Result<JsonlReader, AdminError> {
        let resp = self
            .http()
            .get(url)
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .map_err(|e| AdminError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
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
                        "download broke after line {}: {e}",
                        self.line
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
