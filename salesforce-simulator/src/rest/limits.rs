//! `GET /limits`: the org's limits and what remains of them.

use axum::http::StatusCode;
use serde_json::json;

use super::Reply;
use crate::state::Shared;

/// The limits document.
pub fn get(st: &Shared) -> Reply {
    let (used, max) = st.budget.usage(st.now());
    let query_jobs = st.jobs.query_jobs_today(st.now());
    Reply::json(
        StatusCode::OK,
        json!({
            "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000u64.saturating_sub(query_jobs)},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }),
    )
}
