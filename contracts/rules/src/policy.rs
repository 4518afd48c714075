//! What checkout does when a buyer's rules cannot be read, and [`evaluate`], the one entry
//! point the Function calls.
//!
//! Two situations, each configurable to fail open (accept the cart unchecked) or closed (block
//! it with [`Code::RulesUnavailable`] on the cart):
//! - **missing**: the buyer has no payload (page 0 absent) — e.g. a company location created
//!   since the last push. Default: open.
//! - **invalid**: the payload is unparsable or of an unknown version — e.g. a Function older
//!   than the payload origin wrote. Default: open.
//!
//! Open is the default because a blocked wholesale checkout is the costlier failure, and
//! origin's draft-order validation still applies the full rules. Merchants who must never let
//! an unchecked cart through set `missing=closed,invalid=closed` in the validation's
//! configuration metafield ([`POLICY_KEY`] in [`crate::payload::NAMESPACE`]).
//! Nothing in this crate panics on any input.

use crate::cart::Cart;
use crate::payload::{self, DecodeError};
use crate::validate::validate;
use crate::violation::{Code, Target, Violation};

/// The key of the validation's configuration metafield holding the policy text.
pub const POLICY_KEY: &str = "policy";

/// The message on a cart blocked because its rules could not be read.
pub const UNAVAILABLE_MESSAGE: &str =
    "We couldn't check your account's ordering terms. Please try again or contact your account manager.";

/// Fail open (accept unchecked) or closed (block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Accept the cart without checking it.
    #[default]
    Open,
    /// Block the cart with [`Code::RulesUnavailable`].
    Closed,
}

/// The policy for missing and for invalid payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// When the buyer has no payload.
    pub missing: FailMode,
    /// When the payload cannot be decoded.
    pub invalid: FailMode,
}

/// A policy text that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy {0:?}: expected e.g. `missing=closed,invalid=open`")]
pub struct PolicyError(pub String);

impl Policy {
    /// Parses `missing=open|closed,invalid=open|closed` (either part optional, defaults for
    /// the rest; whitespace around parts ignored).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut policy = Policy::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let err = || PolicyError(text.to_owned());
            let (key, value) = part.split_once('=').ok_or_else(err)?;
            let mode = match value.trim() {
                "open" => FailMode::Open,
                "closed" => FailMode::Closed,
                _ => return Err(err()),
            };
            match key.trim() {
                "missing" => policy.missing = mode,
                "invalid" => policy.invalid = mode,
                _ => return Err(err()),
            }
        }
        Ok(policy)
    }
}

/// What [`evaluate`] found, besides the violations: so the Function can log why it failed
/// open or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The rules were read and applied.
    Checked,
    /// No payload for this buyer.
    Missing,
    /// The payload could not be decoded.
    Invalid(DecodeError),
}

/// Decodes the buyer's pages (only the rules of the cart's variants) and validates the cart,
/// applying `policy` when the pages are missing or invalid. Gives the same violations as
/// [`validate`] on the full rules.
pub fn evaluate(pages: &[Option<&str>], policy: Policy, cart: &Cart) -> (Vec<Violation>, Outcome) {
    let mut wanted: Vec<u64> = cart.lines.iter().filter_map(|l| l.variant_id).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let (mode, outcome) = match payload::decode_for(pages, &wanted) {
        Ok(Some(rules)) => return (validate(&rules, cart), Outcome::Checked),
        Ok(None) => (policy.missing, Outcome::Missing),
        Err(e) => (policy.invalid, Outcome::Invalid(e)),
    };
    let violations = match mode {
        FailMode::Open => Vec::new(),
        FailMode::Closed => vec![Violation {
            code: Code::RulesUnavailable,
            target: Target::Cart,
            message: UNAVAILABLE_MESSAGE.to_owned(),
        }],
    };
    (violations, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cart::CartLine;

    fn cart() -> Cart {
        Cart {
            lines: vec![CartLine {
                variant_id: Some(1),
                quantity: 5,
            }],
            subtotal: None,
        }
    }

    #[test]
    fn policies_parse_and_default_to_open() {
        assert_eq!(Policy::parse("").unwrap(), Policy::default());
        assert_eq!(
            Policy::parse(" missing=closed , invalid=open").unwrap(),
            Policy {
                missing: FailMode::Closed,
                invalid: FailMode::Open
            }
        );
        for bad in ["missing", "missing=shut", "other=open"] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_rules_fail_open_or_closed_as_configured() {
        let (v, o) = evaluate(&[None], Policy::default(), &cart());
        assert!(v.is_empty());
        assert_eq!(o, Outcome::Missing);
        let closed = Policy::parse("missing=closed").unwrap();
        let (v, _) = evaluate(&[None], closed, &cart());
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].code, Code::RulesUnavailable);
        assert_eq!(v[0].target, Target::Cart);
    }

    #[test]
    fn unparsable_rules_fail_open_or_closed_as_configured() {
        let garbage = [Some("not a payload")];
        let (v, o) = evaluate(&garbage, Policy::default(), &cart());
        assert!(v.is_empty());
        assert_eq!(o, Outcome::Invalid(DecodeError::Version(0)));
        let closed = Policy::parse("invalid=closed").unwrap();
        assert_eq!(
            evaluate(&garbage, closed, &cart()).0[0].code,
            Code::RulesUnavailable
        );
        // A missing payload is not an invalid one.
        assert!(evaluate(&[None], closed, &cart()).0.is_empty());
    }

    #[test]
    fn readable_rules_are_applied() {
        let (v, o) = evaluate(&[Some("WS1|0|1|0||1I4")], Policy::default(), &cart());
        assert_eq!(o, Outcome::Checked);
        assert_eq!(v[0].code, Code::CasePack);
    }
}
