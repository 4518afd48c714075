//! B2B rules: price matrices with quantity breaks, quotas per period, min/max/increments per
//! line, order minimums and warehouse/region eligibility, kept in PostgreSQL (migration
//! `0020_rules.sql`) and enforced twice with the same code (`wholesail_rules::validate`):
//! by origin when it prices a cart ([`quote`]), and at Shopify checkout by the Function, which
//! reads the per-buyer metafields origin pushes.
//!
//! [`compute`] turns the tables into each buyer's `BuyerRules` with a few set-based queries per
//! shop; [`push`] sends the encoded pages that changed with `metafieldsSet`; [`marks`] records
//! what changed (rule edits, orders consuming quotas, stock) and [`scheduler`] runs the
//! debounced background push of `origin serve`. Rules come in through [`file`] (CSV / JSON, checked row by row) and
//! [`store`], from the CLI ([`cli`]) or the admin API ([`api`], which also serves
//! `POST /v1/carts/validate`). See `README.md` in this directory for the rules file format and
//! operations.

pub mod api;
pub mod cli;
pub mod compute;
pub mod file;
pub mod marks;
pub mod push;
pub mod quote;
pub mod scheduler;
pub mod store;
