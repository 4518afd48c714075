//! SOQL: [`parse`] turns the query text into a [`Query`], [`eval`] runs it against the org.

pub mod eval;
pub mod parse;

pub use eval::{run, EvalError, Rows};
pub use parse::{parse, ParseError, Query};
