//! The webhook contract that Wholesail's edge worker and origin service share.
//!
//! One definition serves both sides so they cannot drift apart:
//! - [`shopify`]: verifying a Shopify webhook delivery (HMAC-SHA256 over the raw body, current
//!   and previous secret, case-insensitive headers with or without the `X-` prefix) into a
//!   [`VerifiedWebhook`];
//! - [`envelope`]: the internal message the edge sends to origin and its signature, which binds
//!   a key id, a timestamp and the body so a captured request cannot be replayed later;
//! - [`strength`]: the minimum length of every shared secret and token;
//! - [`allowlist`]: the fields each topic keeps, and the streaming stripper that drops the rest
//!   without ever materialising the dropped fields;
//! - [`delete_shape`]: the payload each delete topic must have, so a captured body of another
//!   topic cannot be re-sent as a final delete.
//!
//! The crate is pure Rust with no I/O, so it compiles for `wasm32-unknown-unknown` (the edge)
//! and is tested on the host.

pub mod allowlist;
pub mod delete_shape;
pub mod envelope;
pub mod gid;
mod hmac_sha256;
pub mod shopify;
pub mod strength;
pub mod topics;

pub use allowlist::{strip, strip_into, stripping_for, StripError, Stripped, Stripping};
pub use envelope::{
    body_sha256, hex, parse_sha256_hex, BatchResponse, Envelope, EnvelopeBatch, ItemResult,
    ItemStatus, Keyring, Payload, SignatureError, SignatureVersion, SigningKey, SIGNATURE_HEADER,
};
pub use gid::{Gid, GidError};
pub use shopify::{
    Secret, SecretSlot, ShopDomain, ShopifySecrets, Topic, VerifiedWebhook, VerifyError, WebhookId,
    WebhookMeta,
};
pub use strength::{require_strong, WeakSecret, MIN_SECRET_BYTES};
pub use topics::{Family, KnownTopic};
