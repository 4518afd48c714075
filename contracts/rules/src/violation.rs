//! What a validator reports: a stable code for machines, a message for the buyer, and the
//! cart line (or the whole cart) it is about.

use std::fmt;

/// Stable error codes. Their text ([`Code::as_str`]) is part of the contract: portals and the
/// draft-order flow match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// No warehouse allowed for the SKU serves the buyer's region.
    NotEligible,
    /// The warehouses serving the buyer do not hold enough units.
    InsufficientStock,
    /// The quantity exceeds the quota left in the current period.
    QuotaExceeded,
    /// A line's quantity is below the line minimum.
    BelowLineMinimum,
    /// A line's quantity is above the line maximum.
    AboveLineMaximum,
    /// A line's quantity is not a multiple of the case pack.
    CasePack,
    /// The cart subtotal is below the buyer's order minimum.
    OrderMinimum,
    /// The rules could not be read and the policy is to fail closed.
    RulesUnavailable,
}

impl Code {
    /// The code's stable text, e.g. `CASE_PACK`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotEligible => "NOT_ELIGIBLE",
            Code::InsufficientStock => "INSUFFICIENT_STOCK",
            Code::QuotaExceeded => "QUOTA_EXCEEDED",
            Code::BelowLineMinimum => "BELOW_LINE_MINIMUM",
            Code::AboveLineMaximum => "ABOVE_LINE_MAXIMUM",
            Code::CasePack => "CASE_PACK",
            Code::OrderMinimum => "ORDER_MINIMUM",
            Code::RulesUnavailable => "RULES_UNAVAILABLE",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a violation points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The cart as a whole.
    Cart,
    /// The quantity of the cart line at this index.
    Line(usize),
}

impl fmt::Display for Target {
    /// Shopify's validation target syntax, following the input query's shape:
    /// `$.cart` or `$.cart.lines[3].quantity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cart => f.write_str("$.cart"),
            Target::Line(i) => write!(f, "$.cart.lines[{i}].quantity"),
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The stable code.
    pub code: Code,
    /// What it is about.
    pub target: Target,
    /// The message shown to the buyer.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_use_shopify_json_path_syntax() {
        assert_eq!(Target::Cart.to_string(), "$.cart");
        assert_eq!(Target::Line(3).to_string(), "$.cart.lines[3].quantity");
    }
}
