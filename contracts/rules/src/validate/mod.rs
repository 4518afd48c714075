//! The validators, one module per rule, and [`validate`] which runs them all.
//!
//! Every validator is a pure function of a [`CartView`] — the (rules, cart) pair with each
//! line's rule looked up once — to the violations it finds, in cart-line order. Lookups are a
//! binary search per line; the rest is a few comparisons, which is what keeps a 500-line cart
//! inside the Function's instruction budget.

pub mod case_pack;
pub mod eligibility;
pub mod line_limits;
pub mod order_minimum;
pub mod quota;
pub mod stock;

use crate::cart::Cart;
use crate::rules::{BuyerRules, VariantRule};
use crate::violation::Violation;

/// A cart line that has a rule.
#[derive(Debug, Clone, Copy)]
pub struct RuledLine<'a> {
    /// The line's index in the cart.
    pub line: usize,
    /// Its quantity.
    pub quantity: u32,
    /// The rule of its variant.
    pub rule: &'a VariantRule,
}

/// The total quantity of one ruled variant across all cart lines (a variant can sit on several
/// lines, e.g. with different line attributes). Quota and stock are checked on this.
#[derive(Debug, Clone, Copy)]
pub struct VariantTotal<'a> {
    /// The first line holding the variant: violations on the total target it.
    pub first_line: usize,
    /// The sum of the quantities.
    pub quantity: u64,
    /// The variant's rule.
    pub rule: &'a VariantRule,
}

/// A cart with its rules looked up: built once, read by every validator.
#[derive(Debug)]
pub struct CartView<'a> {
    /// The cart.
    pub cart: &'a Cart,
    /// The buyer's rules.
    pub rules: &'a BuyerRules,
    /// The lines that have a rule, in cart order.
    pub lines: Vec<RuledLine<'a>>,
    /// Per ruled variant, the total over its lines, ordered by first line.
    pub totals: Vec<VariantTotal<'a>>,
}

impl<'a> CartView<'a> {
    /// Looks up each line's rule and totals the quantities per variant.
    pub fn new(rules: &'a BuyerRules, cart: &'a Cart) -> Self {
        let table = rules.variants();
        let mut lines = Vec::new();
        let mut by_rule: Vec<(usize, usize, u32)> = Vec::new();
        for (i, l) in cart.lines.iter().enumerate() {
            let Some(pos) = l.variant_id.and_then(|id| rules.position(id)) else {
                continue;
            };
            lines.push(RuledLine {
                line: i,
                quantity: l.quantity,
                rule: &table[pos],
            });
            by_rule.push((pos, i, l.quantity));
        }
        // Sorting is stable, so within a variant the lines stay in cart order.
        by_rule.sort_by_key(|&(pos, _, _)| pos);
        let mut totals: Vec<VariantTotal<'a>> = Vec::new();
        let mut last_pos = usize::MAX;
        for (pos, line, qty) in by_rule {
            match totals.last_mut() {
                Some(t) if pos == last_pos => t.quantity += u64::from(qty),
                _ => totals.push(VariantTotal {
                    first_line: line,
                    quantity: u64::from(qty),
                    rule: &table[pos],
                }),
            }
            last_pos = pos;
        }
        totals.sort_unstable_by_key(|t| t.first_line);
        Self {
            cart,
            rules,
            lines,
            totals,
        }
    }
}

/// The validators in the order their violations are reported.
const VALIDATORS: [fn(&CartView<'_>) -> Vec<Violation>; 6] = [
    eligibility::check,
    case_pack::check,
    line_limits::check,
    quota::check,
    stock::check,
    order_minimum::check,
];

/// Runs every validator: all violations, grouped by validator, each group in cart order.
/// Origin's `POST /v1/carts/validate` and the Function both call this.
pub fn validate(rules: &BuyerRules, cart: &Cart) -> Vec<Violation> {
    let view = CartView::new(rules, cart);
    VALIDATORS.iter().flat_map(|check| check(&view)).collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Small builders for the validators' table tests.

    use crate::cart::{Cart, CartLine};
    use crate::rules::{BuyerRules, VariantRule};

    /// A cart of `(variant, quantity)` lines.
    pub fn cart(lines: &[(u64, u32)]) -> Cart {
        Cart {
            lines: lines
                .iter()
                .map(|&(id, quantity)| CartLine {
                    variant_id: Some(id),
                    quantity,
                })
                .collect(),
            subtotal: None,
        }
    }

    /// Rules with one variant, 1, shaped by `f`.
    pub fn one(f: impl FnOnce(&mut VariantRule)) -> BuyerRules {
        let mut r = VariantRule::unconstrained(1);
        f(&mut r);
        BuyerRules::new(vec![r], None).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cart, one};
    use super::*;
    use crate::violation::{Code, Target};

    #[test]
    fn totals_sum_a_variant_over_its_lines_and_target_the_first() {
        let rules = one(|r| r.quota_remaining = Some(10));
        let c = cart(&[(2, 50), (1, 4), (1, 7)]);
        let view = CartView::new(&rules, &c);
        assert_eq!(view.lines.len(), 2);
        assert_eq!(view.totals.len(), 1);
        assert_eq!(view.totals[0].quantity, 11);
        assert_eq!(view.totals[0].first_line, 1);
    }

    #[test]
    fn validate_reports_every_broken_rule_grouped_by_validator() {
        let rules = one(|r| {
            r.increment = 6;
            r.max = Some(12);
        });
        let got: Vec<(Code, Target)> = validate(&rules, &cart(&[(1, 13), (9, 5), (1, 6)]))
            .into_iter()
            .map(|v| (v.code, v.target))
            .collect();
        assert_eq!(
            got,
            [
                (Code::CasePack, Target::Line(0)),
                (Code::AboveLineMaximum, Target::Line(0)),
            ]
        );
    }

    #[test]
    fn lines_without_a_variant_or_a_rule_are_unconstrained() {
        let rules = one(|r| r.eligible = false);
        let mut c = cart(&[(5, 1)]);
        c.lines.push(crate::cart::CartLine {
            variant_id: None,
            quantity: 3,
        });
        assert!(validate(&rules, &c).is_empty());
    }
}
