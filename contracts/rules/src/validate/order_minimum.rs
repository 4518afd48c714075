//! The buyer's minimum order value, against the cart subtotal.
//!
//! The check is skipped when the cart has no subtotal or it is in another currency than the
//! minimum: B2B company locations buy in one currency, and converting at checkout would need
//! rates the Function does not have.

use super::CartView;
use crate::money::Money;
use crate::violation::{Code, Target, Violation};

/// At most one violation, on the cart, when the subtotal is below the order minimum.
pub fn check(view: &CartView<'_>) -> Vec<Violation> {
    let (Some(min), Some(subtotal)) = (view.rules.order_minimum(), view.cart.subtotal) else {
        return Vec::new();
    };
    if subtotal.currency != min.currency || subtotal.hundredths >= min.hundredths {
        return Vec::new();
    }
    let missing = Money {
        hundredths: min.hundredths - subtotal.hundredths,
        currency: min.currency,
    };
    vec![Violation {
        code: Code::OrderMinimum,
        target: Target::Cart,
        message: format!("Minimum order value is {min}: add {missing} more to check out"),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::CurrencyCode;
    use crate::rules::BuyerRules;
    use crate::validate::fixtures::cart;

    fn money(hundredths: u64, currency: &str) -> Money {
        Money {
            hundredths,
            currency: CurrencyCode::parse(currency).unwrap(),
        }
    }

    #[test]
    fn subtotals_below_the_minimum_in_the_same_currency_are_flagged() {
        let rules = BuyerRules::new(vec![], Some(money(50_000, "USD"))).unwrap();
        for (subtotal, flagged) in [
            (Some(money(49_999, "USD")), true),
            (Some(money(50_000, "USD")), false),
            (Some(money(10, "EUR")), false),
            (None, false),
        ] {
            let mut c = cart(&[(1, 1)]);
            c.subtotal = subtotal;
            let got = check(&CartView::new(&rules, &c));
            assert_eq!(got.len(), usize::from(flagged), "{subtotal:?}");
        }
    }

    #[test]
    fn the_message_says_how_much_is_missing() {
        let rules = BuyerRules::new(vec![], Some(money(50_000, "USD"))).unwrap();
        let mut c = cart(&[]);
        c.subtotal = Some(money(37_950, "USD"));
        assert_eq!(
            check(&CartView::new(&rules, &c)),
            [Violation {
                code: Code::OrderMinimum,
                target: Target::Cart,
                message: "Minimum order value is 500.00 USD: add 120.50 USD more to check out"
                    .into(),
            }]
        );
    }

    #[test]
    fn no_minimum_means_no_check() {
        let rules = BuyerRules::default();
        let mut c = cart(&[]);
        c.subtotal = Some(money(0, "USD"));
        assert!(check(&CartView::new(&rules, &c)).is_empty());
    }
}
