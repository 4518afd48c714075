//! The simulator clock: wall time plus an offset tests can advance, so that token expiry,
//! the daily API budget and the 72-hour event retention can be exercised without waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// Simulated "now".
#[derive(Debug)]
pub struct SimClock {
    started: Instant,
    start: OffsetDateTime,
    offset: Mutex<Duration>,
}

impl SimClock {
    /// A clock that starts at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        SimClock {
            started: Instant::now(),
            start,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> OffsetDateTime {
        self.start + self.started.elapsed() + *self.offset.lock().unwrap()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

/// `2024-09-03T10:00:00.000+0000`, the way the REST API writes date-times.
pub fn sf_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Milliseconds since the Unix epoch.
pub fn epoch_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
