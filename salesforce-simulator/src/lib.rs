//! A local simulator of the Salesforce behaviour Wholesail depends on — the Salesforce
//! counterpart of `shopify-simulator`. Tests, the demo and benchmarks run against it; it
//! enforces Salesforce's limits so that code which passes here respects them there.
//!
//! - [`server`]: OAuth 2.0 client credentials and the REST API under
//!   `/services/data/v62.0/` ([`rest`]: sObjects, sObject Collections, Composite, SOQL
//!   ([`soql`]), limits; [`bulk`]: Bulk API 2.0 ingest and query jobs), with the daily and
//!   concurrent request limits ([`limits`]), row locks ([`locks`]) and fault injection.
//! - [`org`]: the in-memory org ([`schema`] lists its objects) with Salesforce's save
//!   rules, external ids and rollback.
//! - [`cdc`]: Change Data Capture over the real Pub/Sub API (gRPC, Avro payloads).
//! - [`Simulator`]: the handle tests start, inspect and inject faults through.

pub mod auth;
pub mod bulk;
pub mod cdc;
pub mod clock;
pub mod errors;
pub mod ids;
pub mod limits;
pub mod locks;
pub mod org;
pub mod rest;
pub mod schema;
pub mod server;
pub mod soql;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

pub use cdc::bus::StoredEvent;
pub use errors::RecordError;
pub use org::Record;

/// Everything the simulator needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address of the HTTP API; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Address of the Pub/Sub API (gRPC); port 0 picks a free one.
    pub grpc_bind: SocketAddr,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret.
    pub client_secret: String,
    /// The org id (18 characters, `00D…`), also the Pub/Sub `tenantid`.
    pub org_id: String,
    /// The REST API version served (`62.0`).
    pub api_version: String,
    /// How long an access token stays valid (the session timeout).
    pub token_lifetime: Duration,
    /// API requests per day (Enterprise Edition: 100,000 + 1,000 per Salesforce licence).
    pub daily_api_requests: u64,
    /// Long-running requests allowed at once (25).
    pub max_long_running: usize,
    /// How long a request runs before it counts as long-running (20 s).
    pub long_running_after: Duration,
    /// How long a write holds its row locks (0: only while it runs).
    pub lock_hold: Duration,
    /// Bulk API ingest speed, records per second.
    pub bulk_records_per_second: f64,
    /// Rows per page of a REST query (2,000).
    pub query_page_size: usize,
    /// How long change events stay replayable (72 h).
    pub event_retention: Duration,
    /// How often an idle subscription gets an empty keepalive `FetchResponse` (270 s).
    pub keepalive: Duration,
    /// The simulator clock's start.
    pub start_time: OffsetDateTime,
}

/// The default consumer key.
pub const DEFAULT_CLIENT_ID: &str = "wholesail_simulator_client";
/// The default consumer secret.
pub const DEFAULT_CLIENT_SECRET: &str = "wholesail_simulator_secret";

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            org_id: ids::with_checksum("00DWh0000000001"),
            api_version: "62.0".into(),
            token_lifetime: Duration::from_secs(2 * 3600),
            daily_api_requests: 100_000,
            max_long_running: 25,
            long_running_after: Duration::from_secs(20),
            lock_hold: Duration::ZERO,
            bulk_records_per_second: 10_000.0,
            query_page_size: 2_000,
            event_retention: Duration::from_secs(72 * 3600),
            keepalive: Duration::from_secs(270),
            start_time: OffsetDateTime::now_utc(),
        }
    }
}

/// What an API call was, for the call log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// Single-record sObject calls and `/limits`.
    Rest,
    /// SOQL `/query`.
    Query,
    /// sObject Collections (`/composite/sobjects`).
    Collections,
    /// Composite (`/composite`).
    Composite,
    /// Bulk API 2.0 (`/jobs`).
    Bulk,
}

/// One answered API call.
#[derive(Clone, Debug)]
pub struct Call {
    /// Simulated time of the answer.
    pub at: OffsetDateTime,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Kind.
    pub kind: CallKind,
    /// HTTP status answered.
    pub status: u16,
}

/// What happens to a write after it was applied (see [`Simulator::fail_after_applying`]).
#[derive(Clone, Copy, Debug)]
pub enum AfterApply {
    /// Answer with this 5xx.
    Status(u16),
    /// Hold the answer this long (past the client's timeout).
    Delay(Duration),
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A change event schema is invalid (a bug).
    #[error(transparent)]
    Schema(cdc::avro::EncodeError),
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    shared: Arc<state::Shared>,
    grpc_addr: SocketAddr,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, local))
}

impl Simulator {
    /// Starts the HTTP and gRPC servers (inside the current tokio runtime).
    pub async fn start(config: Config) -> Result<Simulator, StartError> {
        let (http, http_addr) = bind(config.bind).await?;
        let (grpc, grpc_addr) = bind(config.grpc_bind).await?;
        let shared = state::Shared::new(config, format!("http://{http_addr}"))?;
        let (stop_http, stopped_http) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(http, app)
                .with_graceful_shutdown(async {
                    let _ = stopped_http.await;
                })
                .await;
        });
        let (stop_grpc, stopped_grpc) = tokio::sync::oneshot::channel::<()>();
        let service = cdc::proto::pub_sub_server::PubSubServer::new(
            cdc::pubsub::PubSubService::new(shared.clone()),
        );
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(grpc),
                    async {
                        let _ = stopped_grpc.await;
                    },
                )
                .await;
        });
        Ok(Simulator {
            shared,
            grpc_addr,
            stop: vec![stop_http, stop_grpc],
        })
    }

    /// `http://127.0.0.1:<port>`: the login URL and the `instance_url`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `http://127.0.0.1:<port>` of the Pub/Sub API.
    pub fn pubsub_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// `{base_url}/services/data/v{version}`.
    pub fn data_url(&self) -> String {
        format!(
            "{}/services/data/v{}",
            self.shared.base_url, self.shared.config.api_version
        )
    }

    /// Simulated now.
    pub fn now(&self) -> OffsetDateTime {
        self.shared.now()
    }

    /// Moves the simulator clock forward (token expiry, new API day, event retention).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Moves the clock to the start of the next UTC day: the daily API budget starts over.
    pub fn advance_to_next_day(&self) {
        let now = self.now();
        let next = now
            .date()
            .next_day()
            .expect("not the end of time")
            .midnight()
            .assume_utc();
        let by = next - now;
        self.advance_clock(by.unsigned_abs() + Duration::from_millis(1));
    }

    /// Revokes every access token issued so far.
    pub fn revoke_tokens(&self) {
        self.shared.tokens.revoke_all();
    }

    /// Revokes one access token.
    pub fn revoke_token(&self, token: &str) {
        self.shared.tokens.revoke(token);
    }

    /// `(used, max)` of today's API requests.
    pub fn api_usage(&self) -> (u64, u64) {
        self.shared.budget.usage(self.now())
    }

    /// Every API call answered so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Calls of `kind` answered so far.
    pub fn call_count(&self, kind: CallKind) -> usize {
        self.shared
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.kind == kind)
            .count()
    }

    /// The most API requests ever in flight at once.
    pub fn max_concurrency(&self) -> u64 {
        self.shared.in_flight.max_seen()
    }

    /// API requests in flight now that count as long-running.
    pub fn long_running(&self) -> usize {
        self.shared.in_flight.long_running()
    }

    /// Rows locked by writes in flight now.
    pub fn locked_rows(&self) -> usize {
        self.shared.locks.held()
    }

    /// Records of `object`.
    pub fn count(&self, object: &str) -> usize {
        self.shared.org.lock().unwrap().count(object)
    }

    /// The record of `object` whose external id `field` is `value`.
    pub fn record_by_external_id(&self, object: &str, field: &str, value: &str) -> Option<Record> {
        self.shared
            .org
            .lock()
            .unwrap()
            .find_external(object, field, value)
            .cloned()
    }

    /// The record `id` of `object`.
    pub fn record(&self, object: &str, id: &str) -> Option<Record> {
        self.shared.org.lock().unwrap().get(object, id).cloned()
    }

    /// Every record of `object`.
    pub fn records(&self, object: &str) -> Vec<Record> {
        self.shared
            .org
            .lock()
            .unwrap()
            .records(object)
            .cloned()
            .collect()
    }

    /// The id of the standard price book.
    pub fn standard_pricebook_id(&self) -> String {
        self.shared.org.lock().unwrap().standard_pricebook.clone()
    }

    /// Every retained change event.
    pub fn change_events(&self) -> Vec<StoredEvent> {
        self.shared.bus.all()
    }

    /// Runs `f` as a Salesforce user; the change events are published when `publish`.
    fn as_user<T>(
        &self,
        publish: bool,
        f: impl FnOnce(&mut org::Org, &mut org::Txn, &str) -> Result<T, RecordError>,
    ) -> Result<T, RecordError> {
        let user = ids::with_checksum("005Wh0000000SAL");
        let mut org = self.shared.org.lock().unwrap();
        let mut txn = org::Txn::default();
        let result = f(&mut org, &mut txn, &user);
        match result {
            Ok(v) => {
                drop(org);
                if publish {
                    self.shared.commit(txn, "");
                }
                Ok(v)
            }
            Err(e) => {
                org.rollback(txn);
                Err(e)
            }
        }
    }

    /// Creates a record as a Salesforce user would in the UI (emits change events).
    pub fn user_create(&self, object: &str, fields: Value) -> Result<String, RecordError> {
        let now = self.now();
        let record = fields.as_object().cloned().unwrap_or_default();
        self.as_user(true, |org, txn, user| {
            org.create_as(txn, object, &record, now, user)
        })
    }

    /// Edits a record as a Salesforce user would (approve a quote, change an owner…).
    pub fn user_update(&self, object: &str, id: &str, fields: Value) -> Result<(), RecordError> {
        let now = self.now();
        let record = fields.as_object().cloned().unwrap_or_default();
        self.as_user(true, |org, txn, user| {
            org.update_as(txn, object, id, &record, now, user)
        })
    }

    /// Edits a record as a Salesforce user would, but its change event never reaches a
    /// subscriber (lost past the 72 h retention while the subscriber was down, or Change Data
    /// Capture not enabled for the object): drift only a comparison of the records finds.
    pub fn user_update_unseen(
        &self,
        object: &str,
        id: &str,
        fields: Value,
    ) -> Result<(), RecordError> {
        let now = self.now();
        let record = fields.as_object().cloned().unwrap_or_default();
        self.as_user(false, |org, txn, user| {
            org.update_as(txn, object, id, &record, now, user)
        })
    }

    /// Deletes a record as a Salesforce user would.
    pub fn user_delete(&self, object: &str, id: &str) -> Result<(), RecordError> {
        self.as_user(true, |org, txn, _| org.delete(txn, object, id))
    }

    /// Deletes a record as a Salesforce user would, its change event never reaching a
    /// subscriber (see [`Simulator::user_update_unseen`]).
    pub fn user_delete_unseen(&self, object: &str, id: &str) -> Result<(), RecordError> {
        self.as_user(false, |org, txn, _| org.delete(txn, object, id))
    }

    /// Answers the next `n` API requests with HTTP `status` without executing them.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut f = self.shared.faults.lock().unwrap();
        f.before
            .extend(std::iter::repeat_n(state::Fault::Status(status), n));
    }

    /// Executes the next `n` API requests, then holds each answer for `delay`.
    pub fn delay_next(&self, n: usize, delay: Duration) {
        let mut f = self.shared.faults.lock().unwrap();
        f.before
            .extend(std::iter::repeat_n(state::Fault::Delay(delay), n));
    }

    /// The next `n` successful writes (non-GET requests) are committed, then answered with
    /// `fault` — the client cannot know that its write happened.
    pub fn fail_after_applying(&self, n: usize, fault: AfterApply) {
        let mut f = self.shared.faults.lock().unwrap();
        f.after_apply.extend(std::iter::repeat_n(fault, n));
    }

    /// How long writes hold their row locks from now on.
    pub fn set_lock_hold(&self, hold: Duration) {
        *self.shared.lock_hold.lock().unwrap() = hold;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
    }
}
