//! Everything the HTTP and gRPC handlers share: the org, the clock, tokens, limits, locks,
//! faults, the event bus, query cursors, bulk jobs and the call log.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::Tokens;
use crate::bulk::Jobs;
use crate::cdc::bus::EventBus;
use crate::clock::SimClock;
use crate::limits::{DailyBudget, InFlight};
use crate::locks::RowLocks;
use crate::org::{Org, Txn};
use crate::{AfterApply, Call, Config, StartError};

/// A fault for the next request, decided before it runs.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this 5xx without executing.
    Status(u16),
    /// Execute, then hold the answer this long.
    Delay(Duration),
}

/// Queued faults.
#[derive(Default)]
pub struct Faults {
    /// For the next requests, in order.
    pub before: VecDeque<Fault>,
    /// For the next writes, applied after they commit.
    pub after_apply: VecDeque<AfterApply>,
}

/// The shared state.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The simulator clock.
    pub clock: SimClock,
    /// The data.
    pub org: Mutex<Org>,
    /// Issued access tokens.
    pub tokens: Tokens,
    /// The daily API budget.
    pub budget: DailyBudget,
    /// Requests in flight.
    pub in_flight: Arc<InFlight>,
    /// Row locks.
    pub locks: Arc<RowLocks>,
    /// How long a write holds its row locks.
    pub lock_hold: Mutex<Duration>,
    /// Queued faults.
    pub faults: Mutex<Faults>,
    /// Change events.
    pub bus: EventBus,
    /// Query cursors: locator → remaining rows.
    pub cursors: Mutex<HashMap<String, Vec<Value>>>,
    /// Bulk API 2.0 jobs.
    pub jobs: Jobs,
    /// Every API call answered.
    pub calls: Mutex<Vec<Call>>,
    commit_number: AtomicI64,
}

impl Shared {
    /// Builds the state for `config`, serving at `base_url`.
    pub fn new(config: Config, base_url: String) -> Result<Arc<Self>, StartError> {
        let clock = SimClock::new(config.start_time);
        let now = clock.now();
        let org = Org::new(now);
        let types: Vec<_> = crate::schema::standard_objects();
        let bus = EventBus::new(&types, config.event_retention).map_err(StartError::Schema)?;
        Ok(Arc::new(Shared {
            budget: DailyBudget::new(config.daily_api_requests, now.date()),
            in_flight: Arc::new(InFlight::new(
                config.max_long_running,
                config.long_running_after,
            )),
            lock_hold: Mutex::new(config.lock_hold),
            org: Mutex::new(org),
            clock,
            tokens: Tokens::default(),
            locks: Arc::default(),
            faults: Mutex::default(),
            bus,
            cursors: Mutex::default(),
            jobs: Jobs::default(),
            calls: Mutex::default(),
            commit_number: AtomicI64::new(1_000_000),
            base_url,
            config,
        }))
    }

    /// Simulated now.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Publishes the change events of a committed transaction.
    pub fn commit(&self, txn: Txn, origin: &str) {
        if txn.changes.is_empty() {
            return;
        }
        let commit_number = self.commit_number.fetch_add(1, Ordering::Relaxed);
        let key = uuid::Uuid::new_v4().to_string();
        if let Err(e) = self
            .bus
            .publish(&txn.changes, &key, commit_number, origin, self.now())
        {
            tracing::error!(error = %e, "change events not published");
        }
    }

    /// `changeOrigin` of API writes: `com/salesforce/api/rest/62.0`, with `;client=…` when
    /// the caller named itself in `Sforce-Call-Options`.
    pub fn api_origin(&self, client: Option<&str>) -> String {
        match client {
            Some(c) => format!(
                "com/salesforce/api/rest/{};client={c}",
                self.config.api_version
            ),
            None => format!("com/salesforce/api/rest/{}", self.config.api_version),
        }
    }
}
