//! The `cart.validations.generate.run` target: input ([`crate::input`]) → `wholesail_rules`
//! cart and pages → [`wholesail_rules::evaluate`] → validation errors.

use shopify_function::prelude::*;
use shopify_function::Result;
use wholesail_rules::policy::Outcome;
use wholesail_rules::{evaluate, Policy};

use crate::input::Input;
use crate::schema;

/// The result with these violations; no operation at all when there are none.
fn result(violations: Vec<wholesail_rules::Violation>) -> schema::CartValidationsGenerateRunResult {
    let operations = if violations.is_empty() {
        Vec::new()
    } else {
        let errors = violations
            .into_iter()
            .map(|v| schema::ValidationError {
                message: v.message,
                target: v.target.to_string(),
            })
            .collect();
        vec![schema::Operation::ValidationAdd(
            schema::ValidationAddOperation { errors },
        )]
    };
    schema::CartValidationsGenerateRunResult { operations }
}

/// Validates the cart of a B2B buyer against the rules in its company location's metafields.
/// Carts without a purchasing company (not B2B) are not Wholesail's to check.
#[shopify_function]
fn cart_validations_generate_run(input: Input) -> Result<schema::CartValidationsGenerateRunResult> {
    let Input::B2b {
        pages,
        policy,
        cart,
    } = input
    else {
        return Ok(result(Vec::new()));
    };
    let pages = pages.each_ref().map(Option::as_deref);
    let policy = match policy {
        None => Policy::default(),
        Some(text) => Policy::parse(&text).unwrap_or_else(|e| {
            log!("{e}; using the default policy");
            Policy::default()
        }),
    };
    let (violations, outcome) = evaluate(&pages, policy, &cart);
    match outcome {
        Outcome::Checked => {}
        Outcome::Missing => log!(
            "no rules for this company location: policy {:?}",
            policy.missing
        ),
        Outcome::Invalid(e) => log!("rules unreadable ({e}): policy {:?}", policy.invalid),
    }
    Ok(result(violations))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};
    use shopify_function::run_function_with_input;

    /// A test cart line: a variant id (`None` for a custom product) and a quantity.
    pub(crate) type Line = (Option<u64>, i64);

    /// The Function input for a B2B cart with these rule pages, lines, subtotal and policy.
    pub(crate) fn b2b_input(
        pages: &[Option<String>],
        lines: &[Line],
        subtotal: Option<(&str, &str)>,
        policy: Option<&str>,
    ) -> Value {
        let mut location = serde_json::Map::new();
        for (i, key) in wholesail_rules::payload::PAGE_KEYS.iter().enumerate() {
            let page = pages.get(i).cloned().flatten();
            location.insert(
                key.to_string(),
                page.map_or(Value::Null, |v| json!({ "value": v })),
            );
        }
        let mut input = cart_input(lines, subtotal, policy);
        input["cart"]["buyerIdentity"] = json!({ "purchasingCompany": { "location": location } });
        input
    }

    /// The Function input for a cart without a purchasing company.
    pub(crate) fn cart_input(
        lines: &[Line],
        subtotal: Option<(&str, &str)>,
        policy: Option<&str>,
    ) -> Value {
        let (amount, currency) = subtotal.unwrap_or(("0.0", "USD"));
        let lines: Vec<Value> = lines
            .iter()
            .map(|&(variant, quantity)| {
                // What the query selects: a custom product's merchandise has no field.
                let merchandise = match variant {
                    Some(id) => json!({ "id": format!("gid://shopify/ProductVariant/{id}") }),
                    None => json!({}),
                };
                json!({ "quantity": quantity, "merchandise": merchandise })
            })
            .collect();
        json!({
            "cart": {
                "buyerIdentity": null,
                "cost": { "subtotalAmount": { "amount": amount, "currencyCode": currency } },
                "lines": lines,
            },
            "validation": { "policy": policy.map(|p| json!({ "value": p })) },
        })
    }

    /// Runs the Function on `input` and returns its errors as (message, target).
    pub(crate) fn run(input: &Value) -> Vec<(String, String)> {
        let out: schema::CartValidationsGenerateRunResult =
            run_function_with_input(cart_validations_generate_run, &input.to_string())
                .expect("the function runs");
        out.operations
            .into_iter()
            .flat_map(|op| match op {
                schema::Operation::ValidationAdd(add) => add.errors,
            })
            .map(|e| (e.message, e.target))
            .collect()
    }

    fn errors(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(m, t)| (m.to_owned(), t.to_owned()))
            .collect()
    }

    /// Variant 1001 in packs of 12, 1002 ineligible, 1003 with 5 left in stock, order
    /// minimum 500.00 USD.
    fn pages() -> Vec<Option<String>> {
        vec![Some("WS1|0|1|0|USD12kw|rtI c,1N,1S5".replace(' ', ""))]
    }

    #[test]
    fn a_compliant_cart_gets_no_operation() {
        let input = b2b_input(
            &pages(),
            &[(Some(1001), 24), (Some(7), 1)],
            Some(("612.50", "USD")),
            None,
        );
        let out: schema::CartValidationsGenerateRunResult =
            run_function_with_input(cart_validations_generate_run, &input.to_string()).unwrap();
        assert_eq!(
            out,
            schema::CartValidationsGenerateRunResult { operations: vec![] }
        );
    }

    #[test]
    fn each_broken_rule_targets_its_line_with_a_clear_message() {
        let input = b2b_input(
            &pages(),
            &[
                (Some(1001), 13),
                (Some(1002), 1),
                (None, 4),
                (Some(1003), 3),
                (Some(1003), 3),
            ],
            Some(("120.00", "USD")),
            None,
        );
        assert_eq!(
            run(&input),
            errors(&[
                (
                    "Not available for your location: no warehouse that serves you may ship this item",
                    "$.cart.lines[1].quantity"
                ),
                ("Case pack of 12: quantity must be a multiple of 12", "$.cart.lines[0].quantity"),
                (
                    "Only 5 in stock at the warehouses that serve your location, your cart has 6",
                    "$.cart.lines[3].quantity"
                ),
                (
                    "Minimum order value is 500.00 USD: add 380.00 USD more to check out",
                    "$.cart"
                ),
            ])
        );
    }

    #[test]
    fn carts_without_a_purchasing_company_are_not_checked() {
        let input = cart_input(&[(Some(1001), 1)], None, Some("missing=closed"));
        assert!(run(&input).is_empty());
    }

    #[test]
    fn a_buyer_without_rules_fails_open_by_default_and_closed_when_configured() {
        let none: Vec<Option<String>> = vec![];
        assert!(run(&b2b_input(&none, &[(Some(1001), 1)], None, None)).is_empty());
        assert_eq!(
            run(&b2b_input(
                &none,
                &[(Some(1001), 1)],
                None,
                Some("missing=closed")
            )),
            errors(&[(wholesail_rules::policy::UNAVAILABLE_MESSAGE, "$.cart")])
        );
    }

    #[test]
    fn unreadable_rules_fail_open_by_default_and_closed_when_configured() {
        let junk = vec![Some("{\"increment\": 12}".to_owned())];
        assert!(run(&b2b_input(&junk, &[(Some(1001), 1)], None, None)).is_empty());
        assert_eq!(
            run(&b2b_input(
                &junk,
                &[(Some(1001), 1)],
                None,
                Some("invalid=closed")
            )),
            errors(&[(wholesail_rules::policy::UNAVAILABLE_MESSAGE, "$.cart")])
        );
    }

    #[test]
    fn an_unparsable_policy_falls_back_to_the_default_instead_of_failing() {
        let junk = vec![Some("garbage".to_owned())];
        assert!(run(&b2b_input(
            &junk,
            &[(Some(1001), 1)],
            None,
            Some("block everything")
        ))
        .is_empty());
    }

    #[test]
    fn the_order_minimum_ignores_a_cart_in_another_currency() {
        let input = b2b_input(&pages(), &[(Some(7), 1)], Some(("1.00", "EUR")), None);
        assert!(run(&input).is_empty());
    }
}
