//! The webhook pipeline: what happens to an event between Shopify and the operational tables.
//!
//! [`intake`] verifies and stores each event once in the [`inbox`] (deduplicated on Shopify's
//! webhook id; [`body_guard`] refuses a body replayed for another shop or topic) and asks
//! [`wake`] to notify the idle workers; the
//! [`runner::Workers`] claim due rows and apply them through [`crate::handlers`], retrying with a
//! durable backoff; what cannot be applied becomes a dead letter ([`dead_letters`]) or is
//! quarantined ([`quarantine`]), both replayable; [`retention`] purges old done rows.

pub mod body_guard;
pub mod dead_letters;
pub mod inbox;
pub mod intake;
pub mod quarantine;
pub mod retention;
pub mod runner;
pub mod wake;
