//! Wholesail's origin service: PostgreSQL as the operational truth, kept in step with Shopify.
//!
//! - The webhook [`pipeline`]: intake, the deduplicated inbox, the workers applying events
//!   through the topic [`handlers`], dead letters, quarantine and retention; [`parked`]
//!   recovers what the edge parked in R2; [`listener`] wakes loops on NOTIFY.
//! - Features: the [`catalog`] resync (bulk export → COPY → merge), the B2B [`rules`] (import,
//!   compute, push to metafields, validate carts) and [`draft_orders`] (quotes split into draft
//!   orders), all reaching Shopify through [`shops`]; the [`salesforce`] sync; [`reconcile`]
//!   (drift found and healed, every run recorded); [`problems`] is one view over every failure
//!   that needs a person, with the actions that resolve it.
//! - The boundary: [`app`] assembles routes and loops around the [`state`] handlers share; [`auth`] (scoped tokens, audit log) and
//!   [`http_limits`] guard every route; [`console`] is the operators' web console at `/console`;
//!   [`http_error`] is the one error shape; [`http_server`] serves; [`ops`] answers probes and
//!   metrics; [`slo`] measures end-to-end latency against the objectives; [`trace`] tells one
//!   record's story; [`config`] and [`pg_tls`] set it up.
//!
//! The `origin` binary is the CLI on top ([`cli_output`]: its tables and `--json`).

pub mod admin;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli_output;
pub mod config;
pub mod console;
pub mod draft_orders;
pub mod handlers;
pub mod http_error;
pub mod http_limits;
pub mod http_server;
pub mod lease_loop;
pub mod listener;
pub mod metrics_catalog;
pub mod ops;
pub mod parked;
pub mod pg_tls;
pub mod pipeline;
pub mod problems;
pub mod reconcile;
pub mod rules;
pub mod salesforce;
pub mod shop_lock;
pub mod shops;
pub mod slo;
pub mod state;
pub mod trace;
