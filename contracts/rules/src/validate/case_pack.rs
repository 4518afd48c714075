//! Case packs (increments): a line's quantity must be a whole number of packs.

use super::CartView;
use crate::violation::{Code, Target, Violation};

/// One violation per line whose quantity is not a multiple of its variant's case pack.
pub fn check(view: &CartView<'_>) -> Vec<Violation> {
    view.lines
        .iter()
        .filter(|l| l.rule.increment > 1 && l.quantity % l.rule.increment != 0)
        .map(|l| Violation {
            code: Code::CasePack,
            target: Target::Line(l.line),
            message: format!(
                "Case pack of {0}: quantity must be a multiple of {0}",
                l.rule.increment
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::fixtures::{cart, one};

    #[test]
    fn quantities_must_be_whole_case_packs() {
        let rules = one(|r| r.increment = 12);
        for (qty, broken) in [(12, false), (24, false), (0, false), (1, true), (13, true)] {
            let c = cart(&[(1, qty)]);
            let got = check(&CartView::new(&rules, &c));
            assert_eq!(got.len(), usize::from(broken), "quantity {qty}");
        }
        let c = cart(&[(1, 18)]);
        assert_eq!(
            check(&CartView::new(&rules, &c)),
            [Violation {
                code: Code::CasePack,
                target: Target::Line(0),
                message: "Case pack of 12: quantity must be a multiple of 12".into(),
            }]
        );
    }

    #[test]
    fn a_pack_of_one_accepts_any_quantity() {
        let rules = one(|r| r.min = 1);
        let c = cart(&[(1, 7)]);
        assert!(check(&CartView::new(&rules, &c)).is_empty());
    }
}
