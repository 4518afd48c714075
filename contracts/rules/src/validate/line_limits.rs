//! Minimum and maximum quantity per cart line.

use super::CartView;
use crate::violation::{Code, Target, Violation};

/// One violation per line below its minimum or above its maximum.
pub fn check(view: &CartView<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for l in &view.lines {
        if l.quantity < l.rule.min {
            out.push(Violation {
                code: Code::BelowLineMinimum,
                target: Target::Line(l.line),
                message: format!(
                    "Minimum of {0} per order line: increase the quantity to at least {0}",
                    l.rule.min
                ),
            });
        } else if let Some(max) = l.rule.max.filter(|&max| l.quantity > max) {
            out.push(Violation {
                code: Code::AboveLineMaximum,
                target: Target::Line(l.line),
                message: format!(
                    "Maximum of {max} per order line: reduce the quantity to {max} or fewer"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::fixtures::{cart, one};

    #[test]
    fn quantities_outside_the_line_limits_are_flagged() {
        let rules = one(|r| {
            r.min = 5;
            r.max = Some(40);
        });
        for (qty, want) in [
            (5, None),
            (40, None),
            (20, None),
            (4, Some(Code::BelowLineMinimum)),
            (0, Some(Code::BelowLineMinimum)),
            (41, Some(Code::AboveLineMaximum)),
        ] {
            let c = cart(&[(1, qty)]);
            let got: Vec<Code> = check(&CartView::new(&rules, &c))
                .into_iter()
                .map(|v| v.code)
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "quantity {qty}");
        }
    }

    #[test]
    fn limits_apply_per_line_not_per_variant() {
        let rules = one(|r| r.max = Some(10));
        let c = cart(&[(1, 10), (1, 10), (1, 11)]);
        let got = check(&CartView::new(&rules, &c));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].target, Target::Line(2));
        assert_eq!(
            got[0].message,
            "Maximum of 10 per order line: reduce the quantity to 10 or fewer"
        );
    }
}
