//! Bulk query operations: `CREATED` → `RUNNING` → `COMPLETED` (or `FAILED` with an error
//! code), taking a configurable time; the result is the shop's generated catalog as JSONL,
//! served by the simulator over HTTP and generated while it streams, or for a query of the
//! `orders` connection, the shop's stored orders as they were when it was created
//! ([`crate::orders`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::catalog::{CatalogSpec, ChildOrder, GroundTruth, Selection};

/// Failures a test can inject into the next bulk operation of a shop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BulkFault {
    /// The operation ends `FAILED` with `code` (`ACCESS_DENIED`, `INTERNAL_SERVER_ERROR`,
    /// `TIMEOUT`); with `partial_lines`, a `partialDataUrl` serves that many lines.
    Fail {
        /// The `errorCode`.
        code: &'static str,
        /// Lines of partial data, if any.
        partial_lines: Option<u64>,
    },
    /// The operation completes but the file is cut after `at_byte` bytes (mid-line, usually).
    Truncate {
        /// Bytes served.
        at_byte: u64,
    },
    /// The operation completes but line `line` (1-based) is not valid JSON.
    CorruptLine {
        /// The corrupted line.
        line: u64,
    },
}

/// The status of a bulk operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkStatus {
    /// Accepted, not started.
    Created,
    /// Running.
    Running,
    /// Finished; `url` serves the result.
    Completed,
    /// Failed; see `errorCode`.
    Failed,
    /// `bulkOperationCancel` was called; it ends `CANCELED` when it would have finished.
    Canceling,
    /// Canceled.
    Canceled,
}

impl BulkStatus {
    /// The GraphQL enum value.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkStatus::Created => "CREATED",
            BulkStatus::Running => "RUNNING",
            BulkStatus::Completed => "COMPLETED",
            BulkStatus::Failed => "FAILED",
            BulkStatus::Canceling => "CANCELING",
            BulkStatus::Canceled => "CANCELED",
        }
    }

    /// Whether the operation still counts against the concurrency limit.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            BulkStatus::Created | BulkStatus::Running | BulkStatus::Canceling
        )
    }
}

/// One bulk query operation.
#[derive(Clone, Debug)]
pub struct BulkOperation {
    /// Numeric id (`gid://shopify/BulkOperation/<id>`).
    pub id: u64,
    /// The bulk query text.
    pub query: String,
    /// When it was created.
    pub created: Instant,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Completion time, RFC 3339.
    pub completed_at: Option<String>,
    /// Status.
    pub status: BulkStatus,
    /// `errorCode` when failed.
    pub error_code: Option<&'static str>,
    /// The catalog exported (fixed when the operation was created).
    pub spec: CatalogSpec,
    /// What the query selected.
    pub selection: Selection,
    /// The JSONL's child order.
    pub order: ChildOrder,
    /// An injected failure.
    pub fault: Option<BulkFault>,
    /// What the file contains, once computed.
    pub truth: Option<GroundTruth>,
    /// How long the operation runs.
    pub duration: Duration,
    /// The result of an `orders` query, taken when it was created (`None`: the catalog).
    pub export: Option<Arc<Export>>,
    /// The catalog result written while the operation ran (`BulkConfig::result_dir`).
    pub file: Option<std::path::PathBuf>,
}

/// A result computed when the operation was created.
#[derive(Debug)]
pub struct Export {
    /// The JSONL.
    pub jsonl: Vec<u8>,
    /// Its objects (lines).
    pub objects: u64,
    /// Its root objects.
    pub roots: u64,
}

impl Export {
    /// What the file contains.
    pub fn truth(&self) -> GroundTruth {
        use sha2::{Digest, Sha256};
        GroundTruth {
            counts: Default::default(),
            lines: self.objects,
            bytes: self.jsonl.len() as u64,
            sha256: hex::encode(Sha256::digest(&self.jsonl)),
        }
    }
}

impl BulkOperation {
    /// The operation's gid.
    pub fn gid(&self) -> String {
        format!("gid://shopify/BulkOperation/{}", self.id)
    }

    /// The `BulkOperation` object as the simulator answers it; `base` is the shop's result
    /// URL prefix.
    pub fn to_json(&self, base: &str) -> Value {
        let done = matches!(self.status, BulkStatus::Completed | BulkStatus::Failed);
        let (objects, roots) = match (&self.truth, self.status) {
            (Some(_), BulkStatus::Completed) if self.export.is_some() => {
                let e = self.export.as_deref().expect("checked");
                (e.objects, e.roots)
            }
            (Some(t), BulkStatus::Completed) => (t.lines, t.counts.products),
            (Some(t), BulkStatus::Running) => {
                let f = (self.created.elapsed().as_secs_f64()
                    / self.duration.as_secs_f64().max(1e-3))
                .min(0.99);
                (
                    (t.lines as f64 * f) as u64,
                    (t.counts.products as f64 * f) as u64,
                )
            }
            (Some(_), BulkStatus::Failed) => match &self.fault {
                Some(BulkFault::Fail {
                    partial_lines: Some(n),
                    ..
                }) => (*n, 0),
                _ => (0, 0),
            },
            _ => (0, 0),
        };
        let partial = match (&self.fault, self.status) {
            (
                Some(BulkFault::Fail {
                    partial_lines: Some(_),
                    ..
                }),
                BulkStatus::Failed,
            ) => Some(format!("{base}/{}.partial.jsonl", self.id)),
            _ => None,
        };
        json!({
            "id": self.gid(),
            "status": self.status.as_str(),
            "errorCode": self.error_code,
            "createdAt": self.created_at,
            "completedAt": self.completed_at,
            "objectCount": objects.to_string(),
            "rootObjectCount": roots.to_string(),
            "fileSize": (done && self.status == BulkStatus::Completed)
                .then(|| self.truth.as_ref().map(|t| t.bytes.to_string())).flatten(),
            "url": (self.status == BulkStatus::Completed).then(|| format!("{base}/{}.jsonl", self.id)),
            "partialDataUrl": partial,
            "query": self.query,
            "type": "QUERY",
        })
    }

    /// The `bulk_operations/finish` webhook body.
    pub fn finish_webhook(&self) -> Value {
        json!({
            "admin_graphql_api_id": self.gid(),
            "completed_at": self.completed_at,
            "created_at": self.created_at,
            "error_code": self.error_code.map(str::to_ascii_lowercase),
            "status": self.status.as_str().to_ascii_lowercase(),
            "type": "query",
        })
    }
}

/// Writes the result file (or the partial one) chunk by chunk into `send`, applying an
/// injected truncation or corruption; stops early if `send` returns false (client gone).
pub fn write_result(op: &BulkOperation, partial: bool, mut send: impl FnMut(Vec<u8>) -> bool) {
    let limit_lines = match (&op.fault, partial) {
        (
            Some(BulkFault::Fail {
                partial_lines: Some(n),
                ..
            }),
            true,
        ) => *n,
        _ => u64::MAX,
    };
    let limit_bytes = match &op.fault {
        Some(BulkFault::Truncate { at_byte }) if !partial => *at_byte,
        _ => u64::MAX,
    };
    let corrupt = match &op.fault {
        Some(BulkFault::CorruptLine { line }) if !partial => *line,
        _ => 0,
    };
    if let Some(export) = &op.export {
        let end = export
            .jsonl
            .len()
            .min(usize::try_from(limit_bytes).unwrap_or(usize::MAX));
        for chunk in export.jsonl[..end].chunks(crate::catalog::CHUNK) {
            if !send(chunk.to_vec()) {
                return;
            }
        }
        return;
    }
    let chunk = crate::catalog::CHUNK;
    let mut buf = Vec::with_capacity(chunk + 4096);
    let mut sent = 0u64;
    for (n, row) in op.spec.rows(op.selection, op.order).enumerate() {
        let line = n as u64 + 1;
        if line > limit_lines {
            break;
        }
        if line == corrupt {
            buf.extend_from_slice(b"{\"id\":\"gid://shopify/Product/\x01\",\"title\":\n");
        } else {
            row.write_json(&mut buf);
        }
        if sent + buf.len() as u64 >= limit_bytes {
            buf.truncate((limit_bytes - sent) as usize);
            send(std::mem::take(&mut buf));
            return;
        }
        if buf.len() >= chunk {
            sent += buf.len() as u64;
            if !send(std::mem::replace(
                &mut buf,
                Vec::with_capacity(chunk + 4096),
            )) {
                return;
            }
        }
    }
    if !buf.is_empty() {
        send(buf);
    }
}
