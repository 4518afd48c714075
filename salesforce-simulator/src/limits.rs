//! The org's API limits: the daily request budget (per simulated UTC day) and the
//! concurrent long-running request limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::{Date, OffsetDateTime};

/// The daily API request budget.
pub struct DailyBudget {
    max: u64,
    state: Mutex<(Date, u64)>,
}

impl DailyBudget {
    /// A budget of `max` requests per day.
    pub fn new(max: u64, today: Date) -> Self {
        DailyBudget {
            max,
            state: Mutex::new((today, 0)),
        }
    }

    /// Counts one request; `false` if the budget for `now`'s day is spent (not counted).
    pub fn try_use(&self, now: OffsetDateTime) -> bool {
        let mut s = self.state.lock().unwrap();
        roll(&mut s, now.date());
        if s.1 >= self.max {
            return false;
        }
        s.1 += 1;
        true
    }

    /// `(used, max)` for `now`'s day.
    pub fn usage(&self, now: OffsetDateTime) -> (u64, u64) {
        let mut s = self.state.lock().unwrap();
        roll(&mut s, now.date());
        (s.1, self.max)
    }
}

fn roll(state: &mut (Date, u64), today: Date) {
    if state.0 != today {
        *state = (today, 0);
    }
}

/// Requests in flight, to enforce the concurrent long-running request limit.
pub struct InFlight {
    long_after: Duration,
    max_long: usize,
    next: AtomicU64,
    running: Mutex<Vec<(u64, Instant)>>,
    max_seen: AtomicU64,
}

/// Removes its request from [`InFlight`] when dropped.
pub struct InFlightGuard {
    owner: Arc<InFlight>,
    id: u64,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.owner
            .running
            .lock()
            .unwrap()
            .retain(|(id, _)| *id != self.id);
    }
}

impl InFlight {
    /// At most `max_long` requests may have run longer than `long_after` at once.
    pub fn new(max_long: usize, long_after: Duration) -> Self {
        InFlight {
            long_after,
            max_long,
            next: AtomicU64::new(1),
            running: Mutex::new(Vec::new()),
            max_seen: AtomicU64::new(0),
        }
    }

    /// Admits a request, or `None` when `max_long` long-running requests are in flight.
    pub fn admit(self: &Arc<Self>) -> Option<InFlightGuard> {
        let mut running = self.running.lock().unwrap();
        let long = running
            .iter()
            .filter(|(_, started)| started.elapsed() >= self.long_after)
            .count();
        if long >= self.max_long {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        running.push((id, Instant::now()));
        self.max_seen
            .fetch_max(running.len() as u64, Ordering::Relaxed);
        Some(InFlightGuard {
            owner: self.clone(),
            id,
        })
    }

    /// Requests in flight now that count as long-running.
    pub fn long_running(&self) -> usize {
        self.running
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, started)| started.elapsed() >= self.long_after)
            .count()
    }

    /// The most requests ever in flight at once.
    pub fn max_seen(&self) -> u64 {
        self.max_seen.load(Ordering::Relaxed)
    }
}
