//! Wholesail's cart validation Function (placeholder until the rules issue lands).
fn main() {}
