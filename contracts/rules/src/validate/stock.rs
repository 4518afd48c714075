//! Stock: the units held by the warehouses that serve the buyer (precomputed by origin from
//! inventory levels and routing), against the variant's total in the cart.

use super::CartView;
use crate::violation::{Code, Target, Violation};

/// One violation per variant whose total quantity exceeds the stock available to the buyer,
/// on the variant's first line.
pub fn check(view: &CartView<'_>) -> Vec<Violation> {
    view.totals
        .iter()
        .filter_map(|t| {
            let available = t.rule.stock?;
            (t.quantity > u64::from(available)).then(|| Violation {
                code: Code::InsufficientStock,
                target: Target::Line(t.first_line),
                message: if available == 0 {
                    "Out of stock at the warehouses that serve your location".to_owned()
                } else {
                    format!(
                        "Only {available} in stock at the warehouses that serve your location, your cart has {}",
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
    fn the_variant_total_is_held_against_available_stock() {
        let rules = one(|r| r.stock = Some(5));
        for (lines, want) in [
            (&[(1, 5)][..], None),
            (&[(1, 3), (1, 3)], Some(Target::Line(0))),
            (&[(4, 9), (1, 6)], Some(Target::Line(1))),
        ] {
            let c = cart(lines);
            let got: Vec<Target> = check(&CartView::new(&rules, &c))
                .into_iter()
                .map(|v| v.target)
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{lines:?}");
        }
    }

    #[test]
    fn messages_say_how_many_are_available() {
        for (stock, want) in [
            (0, "Out of stock at the warehouses that serve your location"),
            (
                2,
                "Only 2 in stock at the warehouses that serve your location, your cart has 3",
            ),
        ] {
            let rules = one(|r| r.stock = Some(stock));
            let c = cart(&[(1, 3)]);
            assert_eq!(check(&CartView::new(&rules, &c))[0].message, want);
        }
    }
}
