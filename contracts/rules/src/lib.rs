//! Wholesail's B2B rule contract, shared by origin and the Shopify Function.
//!
//! Origin computes each buyer's (company location's) constraints from PostgreSQL into a
//! [`BuyerRules`], encodes it with [`payload::encode`] into at most [`payload::MAX_PAGES`]
//! metafield values of at most [`payload::MAX_PAGE_BYTES`] bytes, and pushes them with
//! `metafieldsSet`. At checkout the Function reads those values, [`payload::decode`]s them and
//! runs the same [`validate()`] origin runs for `POST /v1/carts/validate`, so the two cannot
//! disagree. [`policy`] decides what happens when the metafields are missing or unparsable
//! (fail open or closed, configurable), and [`evaluate`] combines the three; nothing here panics
//! on bad input.
//!
//! The validators live in [`validate`]'s submodules, one per rule (quota, case packs, min/max
//! per line, order minimum, warehouse/region eligibility, stock); each is a pure function from
//! (rules, cart) to [`Violation`]s with stable [`Code`]s and buyer-facing messages that target
//! the offending cart line.
//!
//! The crate has no I/O and no heavy dependencies: it compiles into the Function's
//! `wasm32-unknown-unknown` module, where every instruction counts.

pub mod cart;
mod codec;
pub mod money;
pub mod payload;
pub mod policy;
pub mod rules;
pub mod validate;
pub mod violation;

pub use cart::{Cart, CartLine};
pub use money::{CurrencyCode, Money};
pub use payload::{DecodeError, PayloadTooLarge};
pub use policy::{evaluate, FailMode, Outcome, Policy};
pub use rules::{BuyerRules, OrderMinimum, RulesError, VariantRule};
pub use validate::validate;
pub use violation::{Code, Target, Violation};
