//! Writes each [`Count`]: as a data point in the Workers Analytics Engine dataset bound as
//! [`bindings::COUNTS`], and as a JSON line on the console (Workers Logs, Logpush) when no
//! dataset is bound or `COUNT_LOG_LINES` is `true` ([`LineMode`]).
//!
//! Counting never fails or delays what it counts: `writeDataPoint` is synchronous and
//! fire-and-forget, a missing binding writes no data point, and a failing write is reported
//! once per isolate and otherwise ignored.

use std::cell::{Cell, OnceCell};

use worker::{console_log, console_warn, AnalyticsEngineDataPointBuilder, Env};

use crate::bindings;
use crate::count::{Count, LineMode};

thread_local! {
    static WRITE_FAILURE_REPORTED: Cell<bool> = const { Cell::new(false) };
    // Read once per isolate: vars cannot change within one.
    static LINE_MODE: OnceCell<LineMode> = const { OnceCell::new() };
}

/// Records one outcome.
pub fn record(env: &Env, count: &Count) {
    let dataset = env.analytics_engine(bindings::COUNTS).ok();
    let mode = LINE_MODE.with(|m| {
        *m.get_or_init(|| {
            let var = env
                .var(bindings::COUNT_LOG_LINES)
                .ok()
                .map(|v| v.to_string());
            LineMode::parse(var.as_deref())
        })
    });
    if mode.writes_lines(dataset.is_some()) {
        console_log!("{}", count.to_json());
    }
    let Some(dataset) = dataset else {
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
