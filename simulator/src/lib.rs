//! A local simulator of the Shopify behaviour Wholesail depends on, used by tests, the demo and
//! benchmarks.
//!
//! - [`payloads`]: webhook payloads shaped like Shopify's (REST webhook JSON, API 2025-07),
//!   deterministic from a seed.

#![recursion_limit = "512"]

pub mod payloads;
