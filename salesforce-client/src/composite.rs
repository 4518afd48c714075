//! Composite (`POST /composite`): up to 25 subrequests in one API call, later ones referring
//! to earlier results with `@{referenceId.id}`; with `all_or_none` they share one transaction.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::Call;
use crate::{Client, Error};

/// The most subrequests one Composite call may carry.
pub const MAX_SUBREQUESTS: usize = 25;

/// One subrequest.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subrequest {
    /// `GET`, `POST`, `PATCH`, `DELETE`.
    pub method: String,
    /// `/services/data/v62.0/sobjects/Account/…`, may contain `@{ref.id}`.
    pub url: String,
    /// How later subrequests refer to this one's result.
    pub reference_id: String,
    /// The JSON body, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// One subrequest's answer.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubResponse {
    /// Its `referenceId`.
    pub reference_id: String,
    /// Its HTTP status (400 `PROCESSING_HALTED` when rolled back with the others).
    pub http_status_code: u16,
    /// Its body: the result, or the error array.
    pub body: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    composite_response: Vec<SubResponse>,
}

impl Client {
    /// Runs `subrequests` in order (one API call); more than [`MAX_SUBREQUESTS`] is refused
    /// before sending.
    pub async fn composite(
        &self,
        all_or_none: bool,
        subrequests: &[Subrequest],
    ) -> Result<Vec<SubResponse>, Error> {
        if subrequests.len() > MAX_SUBREQUESTS {
            return Err(Error::TooManyRecords {
                count: subrequests.len(),
                max: MAX_SUBREQUESTS,
            });
        }
        let body = serde_json::json!({"allOrNone": all_or_none, "compositeRequest": subrequests});
        let answer: Answer = self
            .json(&Call::json(reqwest::Method::POST, "/composite", &body))
            .await?;
        Ok(answer.composite_response)
    }
}
