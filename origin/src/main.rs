//! Wholesail's origin service (placeholder until the origin issue lands).
fn main() {}
