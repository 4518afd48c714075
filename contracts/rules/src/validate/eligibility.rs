//! Warehouse / region eligibility: origin marks a variant ineligible for a buyer when none of
//! the warehouses allowed to ship the SKU serves the buyer's region.

use super::CartView;
use crate::violation::{Code, Target, Violation};

/// The message on an ineligible line.
pub const MESSAGE: &str =
    "Not available for your location: no warehouse that serves you may ship this item";

/// One violation per line whose variant is not eligible for the buyer.
pub fn check(view: &CartView<'_>) -> Vec<Violation> {
    view.lines
        .iter()
        .filter(|l| !l.rule.eligible)
        .map(|l| Violation {
            code: Code::NotEligible,
            target: Target::Line(l.line),
            message: MESSAGE.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::fixtures::{cart, one};

    #[test]
    fn only_lines_of_ineligible_variants_are_flagged() {
        let rules = one(|r| r.eligible = false);
        for (lines, want) in [
            (&[(1, 1)][..], &[0][..]),
            (&[(2, 1), (1, 3), (1, 2)], &[1, 2]),
            (&[(2, 1)], &[]),
            (&[], &[]),
        ] {
            let c = cart(lines);
            let got: Vec<Target> = check(&CartView::new(&rules, &c))
                .into_iter()
                .map(|v| v.target)
                .collect();
            let want: Vec<Target> = want.iter().map(|&i| Target::Line(i)).collect();
            assert_eq!(got, want, "{lines:?}");
        }
    }
}
