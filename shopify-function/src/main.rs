//! Wholesail's cart validation Shopify Function (`cart.validations.generate.run`).
//!
//! Shopify runs it at checkout, with no network: it reads the buyer's rule pages from the
//! company location's metafields (written by origin in the `wholesail-rules` payload format),
//! the cart lines' quantities and variant ids and the cart subtotal, and returns the same
//! violations origin's `POST /v1/carts/validate` would, each targeting the offending line.
//! Build: `cargo build -p wholesail-function --target wasm32-unknown-unknown --profile function`.

use shopify_function::prelude::*;

mod cart_validations_generate_run;
mod input;

/// The output types of the Function API schema. The input is read by [`input`], by hand.
#[typegen("schema.graphql")]
pub mod schema {}

fn main() {
    log!("Invoke the named export cart_validations_generate_run.");
    std::process::abort();
}

#[cfg(test)]
mod differential_tests;
