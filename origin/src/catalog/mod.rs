//! Catalog sync: a full resync of a shop's products, variants, inventory levels and
//! `wholesail` metafields from a Shopify bulk operation, streamed: memory is the COPY buffers
//! and the export's digests (~30 bytes a variant), whatever the file size.
//!
//! [`runner::Runner`] drives a run ([`runs`] stores its state in `catalog_runs`): it starts
//! `bulkOperationRunQuery`, waits for it (polling, woken early by [`runs::bulk_finished`]
//! from the `bulk_operations/finish` webhook), downloads the JSONL as a stream, parses each
//! line into a typed record ([`jsonl`]), writes it by binary COPY into the run's staging tables
//! ([`copy`]), then merges staging into the live tables in one transaction ([`merge`]),
//! comparing only what per-variant and per-product digests ([`digest`]) and the marks of
//! webhook writes leave in `scope`; a shop with no catalog yet is loaded straight into the
//! live tables instead ([`direct`]).
//! [`driver`] makes sure one process at a time drives a run (the others watch it).
//! [`cli`] is `origin catalog resync`; [`admin`] the HTTP routes; [`background`] drives the
//! server's runs, resumes them at start-up and adopts runs whose driver died; [`marks`]
//! compacts the write marks between resyncs; `run_metrics` counts how runs end. See `README.md` here.

pub mod admin;
pub mod background;
pub mod cli;
pub mod copy;
pub mod digest;
pub mod direct;
pub mod driver;
pub mod jsonl;
mod key_order;
pub mod marks;
pub mod merge;
mod run_metrics;
pub mod runner;
pub mod runs;
pub(crate) mod scope;

pub use runner::{Outcome, Progress, RunError, Runner, Settings};
pub use runs::{bulk_finished, Run};
