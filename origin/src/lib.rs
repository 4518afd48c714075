//! Wholesail's origin service: PostgreSQL as the operational truth, kept in step with Shopify.
//!
//! - The webhook pipeline: [`intake`] (signed envelopes from the edge, or Shopify directly;
//!   [`body_guard`]) stores each event once in the [`inbox`]; the [`worker`]s apply it through
//!   the topic [`handlers`] with durable backoff (`wholesail_backoff`); [`dead_letters`] and [`quarantine`] are
//!   replayed from the CLI or the [`admin`] API; [`retention`] purges old rows; [`parked`]
//!   recovers what the edge parked in R2; [`listener`] wakes loops on NOTIFY.
//! - Features: the [`catalog`] resync (bulk export → COPY → merge), the B2B [`rules`] (import,
//!   compute, push to metafields, validate carts) and [`draft_orders`] (quotes split into draft
//!   orders), all reaching Shopify through [`shops`].
//! - The boundary: [`app`] assembles routes and loops around the [`state`] handlers share; [`auth`] (scoped tokens, audit log) and
//!   [`http_limits`] guard every route; [`http_error`] is the one error shape; [`http_server`]
//!   serves; [`ops`] answers probes and metrics; [`config`] and [`pg_tls`] set it up.
//!
//! The `origin` binary is the CLI on top.

pub mod admin;
pub mod app;
pub mod auth;
pub mod body_guard;
pub mod catalog;
pub mod config;
pub mod dead_letters;
pub mod draft_orders;
pub mod handlers;
pub mod http_error;
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
pub mod state;
pub mod worker;
