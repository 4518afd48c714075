//! Placeholder until the catalog issue lands.
