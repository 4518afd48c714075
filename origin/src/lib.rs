//! Wholesail's origin service: the PostgreSQL-backed webhook inbox, its workers and the
//! operational tables they maintain.

pub mod handlers;
