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
        Ok(JsonlReader {
            stream: Box::pin(resp.bytes_stream()),
            buf: Vec::with_capacity(1 << 20),
            start: 0,
            line: 0,
            bytes: 0,
            eof: false,
        })
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
pub struct JsonlReader {
    stream: ByteStream,
    buf: Vec<u8>,
    start: usize,
    line: u64,
    bytes: u64,
    eof: bool,
}

impl JsonlReader {
    /// The next line, or `None` at the end of the body.
    pub async fn next_line(&mut self) -> Result<Option<Line<'_>>, AdminError> {
        let (s, e, terminated) = loop {
            if let Some(k) = self.buf[self.start..].iter().position(|b| *b == b'\n') {
                let s = self.start;
                self.start = s + k + 1;
                break (s, s + k, true);
            }
            if self.eof {
                if self.start < self.buf.len() {
                    let s = self.start;
                    self.start = self.buf.len();
                    break (s, self.buf.len(), false);
                }
                return Ok(None);
            }
            self.buf.drain(..self.start);
            self.start = 0;
            match self.stream.next().await {
                Some(Ok(chunk)) => {
                    self.bytes += chunk.len() as u64;
                    self.buf.extend_from_slice(&chunk);
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
        self.line += 1;
        Ok(Some(Line {
            number: self.line,
            bytes: &self.buf[s..e],
            terminated,
        }))
    }

    /// Bytes received so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }
}
