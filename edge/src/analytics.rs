//! Writes each [`Count`] twice: as a JSON line on the console (Workers Logs, Logpush) and as
//! a data point in the Workers Analytics Engine dataset bound as [`bindings::COUNTS`].
//!
//! Counting never fails or delays what it counts: `writeDataPoint` is synchronous and
//! fire-and-forget, a missing binding writes no data point, and a failing write is reported
//! once per isolate and otherwise ignored.

use std::cell::Cell;

use worker::{console_log, console_warn, AnalyticsEngineDataPointBuilder, Env};

use crate::bindings;
use crate::count::Count;

thread_local! {
    static WRITE_FAILURE_REPORTED: Cell<bool> = const { Cell::new(false) };
}

/// Records one outcome.
pub fn record(env: &Env, count: &Count) {
    console_log!("{}", count.to_json());
    let Ok(dataset) = env.analytics_engine(bindings::COUNTS) else {
        return;
    };
    let point = count.data_point();
    let mut builder = AnalyticsEngineDataPointBuilder::new()
        .blobs(point.blobs)
        .doubles(point.doubles.map(f64::from));
    if let Some(index) = point.index {
        builder = builder.indexes([index]);
    }
    if let Err(e) = builder.write_to(&dataset) {
        if !WRITE_FAILURE_REPORTED.replace(true) {
            console_warn!(
                "{}",
                serde_json::json!({
                    "level": "warn",
                    "event": "analytics",
                    "outcome": "write_failed",
                    "reason": format!("{} is not an Analytics Engine dataset: {e}", bindings::COUNTS),
                })
            );
        }
    }
}
