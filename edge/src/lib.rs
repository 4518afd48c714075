//! Wholesail's edge worker (placeholder until the edge issue lands).
