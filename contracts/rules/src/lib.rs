//! Placeholder until the rules issue lands.
