//! The glue of `POST /internal/parked` ([`crate::parked`]): verifies the request, then lists,
//! reads or deletes one R2 object.

use worker::{Date, Env, Request, Response, Result};

use crate::bindings;
use crate::ingress::log_line;
use crate::log::{Level, LogLine};
use crate::parked::{authorize, ListedObject, Listing, ParkedOp, MAX_LIST};

/// Answers one parked-objects request.
pub async fn handle(mut req: Request, env: &Env) -> Result<Response> {
    let cfg = match bindings::config(env) {
        Ok(cfg) => cfg,
        Err(e) => return answer(500, &format!("edge is misconfigured: {e}")),
    };
    let header = req.headers().get(wholesail_webhook::SIGNATURE_HEADER)?;
    let body = req.bytes().await?;
    let now_secs = (Date::now().as_millis() / 1000) as i64;
    let op = match authorize(&cfg.forward.signing_key, header.as_deref(), &body, now_secs) {
        Ok(op) => op,
        Err(refused) => {
            let reason = refused.to_string();
            log_line(&LogLine {
                level: Level::Warn,
                event: "parked",
                outcome: "refused",
                status: Some(refused.status()),
                reason: Some(&reason),
                ..LogLine::default()
            });
            return answer(refused.status(), &reason);
        }
    };
    let bucket = env.bucket(bindings::BUCKET)?;
    match op {
        ParkedOp::List {
            prefix,
            cursor,
            limit,
        } => {
            let mut list = bucket
                .list()
                .prefix(prefix)
                .limit(limit.unwrap_or(MAX_LIST).clamp(1, MAX_LIST));
            if let Some(cursor) = cursor {
                list = list.cursor(cursor);
            }
            let page = list.execute().await?;
            let objects = page
                .objects()
                .into_iter()
                .map(|o| ListedObject {
                    key: o.key(),
                    size: o.size(),
                    uploaded_ms: o.uploaded().as_millis(),
                })
                .collect();
            Response::from_json(&Listing {
                objects,
                cursor: page.cursor(),
                truncated: page.truncated(),
            })
        }
        ParkedOp::Get { key } => match bucket.get(&key).execute().await? {
            Some(object) => {
                let text = match object.body() {
                    Some(body) => body.text().await?,
                    None => String::new(),
                };
                let mut resp = Response::ok(text)?;
                resp.headers_mut().set("content-type", "application/json")?;
                Ok(resp)
            }
            None => answer(404, "no such object"),
        },
        ParkedOp::Delete { key } => {
            bucket.delete(&key).await?;
            log_line(&LogLine {
                level: Level::Info,
                event: "parked",
                outcome: "deleted",
                reason: Some(&key),
                ..LogLine::default()
            });
            Response::from_json(&serde_json::json!({ "deleted": key }))
        }
    }
}

fn answer(status: u16, error: &str) -> Result<Response> {
    Ok(Response::from_json(&serde_json::json!({ "error": error }))?.with_status(status))
}
