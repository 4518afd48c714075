//! Wholesail's edge: the Cloudflare Worker (Rust compiled to wasm) that receives Shopify
//! webhooks and acknowledges them in milliseconds without ever holding the only copy.
//!
//! `POST /webhooks` checks the size, the HMAC and the shop, strips the payload to its topic's
//! allowlist, wraps it in an envelope and puts it on a Cloudflare Queue (through R2 when too
//! large for a message) before answering 200. The same worker consumes the queue, forwarding
//! batches of envelopes to origin with a signed request, and consumes the dead-letter queue into
//! origin's dead-letter intake.
//!
//! The decisions live in plain modules tested on the host ([`config`], [`intake`], [`message`],
//! [`forward`], [`backoff`], [`log`], [`parked`], [`count`]); the runtime glue ([`ingress`],
//! [`consumer`], [`batch`], [`bindings`], [`webcrypto`], [`recovery`], [`analytics`]) only moves
//! bytes between them and the Workers APIs. The `worker` crate links on the host but its calls only work in workerd, where
//! the glue is tested.

pub mod analytics;
pub mod backoff;
pub mod batch;
pub mod bindings;
pub mod config;
pub mod consumer;
pub mod count;
pub mod forward;
pub mod ingress;
pub mod intake;
pub mod log;
pub mod message;
pub mod parked;
pub mod recovery;
pub mod webcrypto;

use worker::{event, Context, Env, Request, Response, Result};

/// The HTTP entry point.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    ingress::handle(req, &env).await
}
