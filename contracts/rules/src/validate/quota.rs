//! Quotas: origin subtracts what the buyer's orders already consumed this period, so checkout
//! compares the variant's total in the cart with what is left.

use super::CartView;
use crate::violation::{Code, Target, Violation};

/// One violation per variant whose total quantity exceeds its remaining quota, on the
/// variant's first line.
pub fn check(view: &CartView<'_>) -> Vec<Violation> {
    view.totals
        .iter()
        .filter_map(|t| {
            let left = t.rule.quota_remaining?;
            (t.quantity > u64::from(left)).then(|| Violation {
                code: Code::QuotaExceeded,
                target: Target::Line(t.first_line),
                message: if left == 0 {
                    "Quota reached: you have none left for this period".to_owned()
                } else {
                    format!(
                        "Quota reached: {left} left for this period, your cart has {}",
                        t.quantity
                    )
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::fixtures::{cart, one};

    #[test]
    fn the_variant_total_is_held_against_the_remaining_quota() {
        let rules = one(|r| r.quota_remaining = Some(10));
        for (lines, want) in [
            (&[(1, 10)][..], None),
            (
                &[(1, 11)],
                Some("Quota reached: 10 left for this period, your cart has 11"),
            ),
            (
                &[(1, 6), (1, 6)],
                Some("Quota reached: 10 left for this period, your cart has 12"),
            ),
            (&[(2, 600)], None),
        ] {
            let c = cart(lines);
            let got: Vec<String> = check(&CartView::new(&rules, &c))
                .into_iter()
                .map(|v| v.message)
                .collect();
            assert_eq!(got, want.into_iter().map(String::from).collect::<Vec<_>>());
        }
    }

    #[test]
    fn an_exhausted_quota_says_so() {
        let rules = one(|r| r.quota_remaining = Some(0));
        let c = cart(&[(3, 1), (1, 1)]);
        let got = check(&CartView::new(&rules, &c));
        assert_eq!(got[0].target, Target::Line(1));
        assert_eq!(
            got[0].message,
            "Quota reached: you have none left for this period"
        );
    }
}
