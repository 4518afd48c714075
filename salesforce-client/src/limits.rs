//! `GET /limits`: the org's limits and what remains of them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::http::Call;
use crate::{Client, Error};

/// One limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Limit {
    /// `Max`.
    #[serde(rename = "Max")]
    pub max: u64,
    /// `Remaining`.
    #[serde(rename = "Remaining")]
    pub remaining: u64,
}

/// The org's limits by name (`DailyApiRequests`, `DailyBulkV2QueryJobs`, …).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Limits(pub BTreeMap<String, Limit>);

impl Limits {
    /// `DailyApiRequests`.
    pub fn daily_api_requests(&self) -> Option<Limit> {
        self.0.get("DailyApiRequests").copied()
    }
}

impl Client {
    /// The org's limits (one API call).
    pub async fn limits(&self) -> Result<Limits, Error> {
        self.json(&Call::get("/limits")).await
    }
}
