//! Change Data Capture: [`avro`] schemas and payloads, the [`bus`] of retained events with
//! replay ids, and the [`pubsub`] gRPC service (`eventbus.v1.PubSub`) that serves them.

pub mod avro;
pub mod bus;
pub mod pubsub;

/// The generated Pub/Sub API types, client and server (the shared `salesforce-pubsub`).
pub use salesforce_pubsub as proto;
