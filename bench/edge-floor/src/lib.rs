//! The runtime floor of a Rust worker, for `cargo xtask bench edge`: workers-rs's fetch entry
//! point, the request body read as the edge reads it (`arrayBuffer()`, then copied into wasm
//! memory) and a fixed 200 JSON answer. Any Rust worker that looks at the body pays at least
//! this; the benchmark reports it above the JavaScript floor (`bench/edge/floor-worker.mjs`).

use worker::js_sys::Uint8Array;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let buffer = JsFuture::from(req.inner().array_buffer()?).await?;
    let body = Uint8Array::new(&buffer).to_vec();
    let mut res = Response::ok(r#"{"status":"queued"}"#)?;
    res.headers_mut().set("content-type", "application/json")?;
    res.headers_mut()
        .set("x-body-bytes", &body.len().to_string())?;
    Ok(res)
}
