//! Wholesail's origin service: the PostgreSQL-backed webhook inbox, its workers and the
//! operational tables they maintain.
//!
//! Events enter through [`intake`] (signed envelopes from the edge, or Shopify directly), are
//! stored once in the [`inbox`] (deduplicated on Shopify's webhook id), and are applied by the
//! [`worker`]s through the topic [`handlers`], exactly once, with durable [`backoff`] and
//! [`dead_letters`] an operator can replay from the CLI or the [`admin`] API, behind the
//! scoped tokens of [`auth`]. [`ops`] serves
//! health and Prometheus metrics; [`app`] assembles it all; [`config`] is the typed
//! configuration. [`shops`] holds one Shopify Admin API client per shop, used by the
//! [`catalog`] resync and the features after it. The `origin` binary is the CLI on top.

pub mod admin;
pub mod app;
pub mod auth;
pub mod backoff;
pub mod body_guard;
pub mod catalog;
pub mod config;
pub mod dead_letters;
pub mod draft_orders;
pub mod handlers;
pub mod http_limits;
pub mod http_server;
pub mod inbox;
pub mod intake;
pub mod listener;
pub mod ops;
pub mod parked;
pub mod pg_tls;
pub mod quarantine;
pub mod retention;
pub mod rules;
pub mod shops;
pub mod worker;
