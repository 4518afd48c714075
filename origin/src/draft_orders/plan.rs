//! From priced lines to parts, and from a part to Shopify's `DraftOrderInput`.
//!
//! Money is integer cents throughout. A line's negotiated price is sent as Shopify's list
//! price (the variant's catalog price) minus an `appliedDiscount` of type `FIXED_AMOUNT`,
//! which Shopify takes off **each unit**: `list − negotiated` per unit is exact to the cent,
//! so a line totals `negotiated × quantity` and the parts add up to the quote exactly.
//! A negotiated price above the list price cannot be expressed that way and rejects the quote.
//!
//! Shipping rule: the quote's one shipping charge goes, whole, on part 1; the other parts
//! carry no shipping line. The buyer pays shipping once, and the quote's total is the sum of
//! the parts' totals.

use serde_json::json;
use wholesail_shopify_admin::draft_orders::{
    AppliedDiscount, DraftOrderInput, DraftOrderLineItemInput, MetafieldInput, ShippingLineInput,
};
use wholesail_shopify_admin::Money;

use super::quote::QuoteViolation;
use super::split::split;
use crate::rules::quote::{line_total, MAX_AMOUNT};

/// Tag prefix of the per-part tag `wholesail-part:<key>` that finds a part's draft again.
pub const PART_TAG_PREFIX: &str = "wholesail-part:";
/// Tag prefix of the group tag `wholesail-group:<job id>` shared by a quote's drafts.
pub const GROUP_TAG_PREFIX: &str = "wholesail-group:";
/// Metafield namespace and key of the group link on each draft.
pub const METAFIELD: (&str, &str) = ("$app:wholesail", "draft_group");
/// Title of the per-line discount that carries the negotiated price.
pub const DISCOUNT_TITLE: &str = "Negotiated price";

/// A priced quote line, as stored with its part: the rules' priced line.
pub use crate::rules::quote::PricedLine as Line;

/// One draft order to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartPlan {
    /// 1-based.
    pub part: u32,
    /// `<job id>-<part>`: deterministic, so every attempt looks for the same draft.
    pub key: String,
    /// Its lines, in quote order.
    pub lines: Vec<Line>,
    /// The shipping charge it carries (the whole quote's on part 1, else 0).
    pub shipping_cents: u64,
}

impl PartPlan {
    /// Lines at negotiated prices plus shipping (saturating at [`MAX_AMOUNT`]; [`plan`]
    /// refuses quotes whose total does not fit).
    pub fn total_cents(&self) -> u64 {
        self.lines
            .iter()
            .map(Line::total_cents)
            .fold(self.shipping_cents, u64::saturating_add)
            .min(MAX_AMOUNT)
    }
}

/// The key of part `part` of job `job_id`.
pub fn part_key(job_id: &str, part: u32) -> String {
    format!("{job_id}-{part}")
}

/// Splits priced `lines` into parts of at most `limit` lines (see [`split`]) and puts the
/// shipping charge on part 1; or every line whose price a draft cannot express.
pub fn plan(
    job_id: &str,
    lines: Vec<Line>,
    shipping_cents: u64,
    limit: usize,
) -> Result<Vec<PartPlan>, Vec<QuoteViolation>> {
    let errors: Vec<QuoteViolation> = lines
        .iter()
        .filter(|l| l.unit_price > l.list_price)
        .map(|l| QuoteViolation {
            code: "PRICE_ABOVE_LIST".into(),
            line: Some(l.position),
            message: format!(
                "line {}: negotiated price {} is above the list price {}; a draft order can only discount",
                l.position,
                Money::from_cents(l.unit_price, "").amount,
                Money::from_cents(l.list_price, "").amount
            ),
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    check_amounts(&lines, shipping_cents)?;
    let warehouses: Vec<Option<i64>> = lines.iter().map(|l| l.warehouse).collect();
    let groups = split(&warehouses, limit);
    let mut slots: Vec<Option<Line>> = lines.into_iter().map(Some).collect();
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, indices)| {
            let part = i as u32 + 1;
            PartPlan {
                part,
                key: part_key(job_id, part),
                lines: indices
                    .into_iter()
                    .map(|k| slots[k].take().expect("each line in one part"))
                    .collect(),
                shipping_cents: if part == 1 { shipping_cents } else { 0 },
            }
        })
        .collect())
}

/// Refuses a quote whose amounts do not fit [`MAX_AMOUNT`]: the first line whose total, or
/// the running total up to it, overflows; or the total with shipping.
fn check_amounts(lines: &[Line], shipping_cents: u64) -> Result<(), Vec<QuoteViolation>> {
    let too_large = |line: Option<usize>, what: String| {
        vec![QuoteViolation {
            code: "AMOUNT_TOO_LARGE".into(),
            line,
            message: what,
        }]
    };
    let mut total = 0u64;
    for l in lines {
        total = line_total(l.unit_price, l.quantity)
            .and_then(|t| total.checked_add(t))
            .filter(|t| *t <= MAX_AMOUNT)
            .ok_or_else(|| {
                too_large(
                    Some(l.position),
                    format!(
                        "line {}: the amount is too large (price × quantity, or the total up to this line, overflows)",
                        l.position
                    ),
                )
            })?;
    }
    if total
        .checked_add(shipping_cents)
        .is_none_or(|t| t > MAX_AMOUNT)
    {
        return Err(too_large(
            None,
            "the quote's total with shipping is too large".into(),
        ));
    }
    Ok(())
}

/// What every part of a job shares.
#[derive(Clone, Debug)]
pub struct Group<'a> {
    /// The job id (the group id).
    pub job_id: &'a str,
    /// The caller's quote id.
    pub quote_id: &'a str,
    /// Number of parts.
    pub parts: u32,
    /// Shop currency.
    pub currency: &'a str,
    /// The quote's note.
    pub note: Option<&'a str>,
    /// The shipping line's title.
    pub shipping_title: Option<&'a str>,
    /// The B2B buyer (`purchasingEntity`), when the quote names a contact.
    pub purchasing_entity: Option<serde_json::Value>,
}

/// The `DraftOrderInput` of `part`: variant lines with their negotiated-price discounts, the
/// group and part tags, the group metafield, a note saying "part i of n", shipping on part 1.
pub fn draft_input(group: &Group<'_>, part: &PartPlan) -> DraftOrderInput {
    let of = format!("part {} of {}", part.part, group.parts);
    let note = match group.note {
        Some(n) => format!("Quote {} ({of}). {n}", group.quote_id),
        None => format!("Quote {} ({of})", group.quote_id),
    };
    DraftOrderInput {
        line_items: part
            .lines
            .iter()
            .map(|l| DraftOrderLineItemInput {
                variant_id: Some(format!("gid://shopify/ProductVariant/{}", l.variant_id)),
                quantity: l.quantity,
                title: None,
                original_unit_price_with_currency: None,
                applied_discount: (l.unit_price < l.list_price).then(|| {
                    AppliedDiscount::FixedAmount {
                        cents_per_unit: l.list_price - l.unit_price,
                        title: Some(DISCOUNT_TITLE.into()),
                    }
                }),
            })
            .collect(),
        tags: vec![
            format!("{GROUP_TAG_PREFIX}{}", group.job_id),
            format!("{PART_TAG_PREFIX}{}", part.key),
            of.clone(),
        ],
        note: Some(note),
        metafields: vec![MetafieldInput {
            namespace: METAFIELD.0.into(),
            key: METAFIELD.1.into(),
            value: json!({
                "group": group.job_id, "quote_id": group.quote_id,
                "part": part.part, "of": group.parts, "key": part.key,
            })
            .to_string(),
            kind: "json".into(),
        }],
        shipping_line: (part.shipping_cents > 0).then(|| ShippingLineInput {
            title: group.shipping_title.unwrap_or("Shipping").to_owned(),
            price_with_currency: Money::from_cents(part.shipping_cents, group.currency),
        }),
        applied_discount: None,
        purchasing_entity: group.purchasing_entity.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(position: usize, list: u64, unit: u64, quantity: u32, warehouse: i64) -> Line {
        Line {
            position,
            variant_id: 1000 + position as u64,
            quantity,
            sku: None,
            title: None,
            list_price: list,
            unit_price: unit,
            warehouse: Some(warehouse),
        }
    }

    #[test]
    fn parts_add_up_to_the_quote_and_shipping_is_on_part_one_only() {
        let lines: Vec<Line> = (0..1200)
            .map(|i| {
                line(
                    i,
                    1999 + i as u64,
                    1733 + (i as u64 * 7) % 200,
                    1 + (i % 5) as u32,
                    (i % 3) as i64,
                )
            })
            .collect();
        let expected: u64 = lines.iter().map(Line::total_cents).sum::<u64>() + 12_345;
        let parts = plan("dq_x", lines, 12_345, 499).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts.iter().map(PartPlan::total_cents).sum::<u64>(),
            expected
        );
        assert_eq!(parts[0].shipping_cents, 12_345);
        assert!(parts[1..].iter().all(|p| p.shipping_cents == 0));
        assert_eq!(
            parts.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["dq_x-1", "dq_x-2", "dq_x-3"]
        );
    }

    /// Failed before checked arithmetic: the line total overflowed (a panic in debug builds,
    /// a wrapped total in release).
    #[test]
    fn amounts_that_overflow_reject_the_quote_naming_the_line() {
        let huge = u64::MAX / 2;
        let errors = plan(
            "dq_x",
            vec![line(0, 100, 90, 1, 1), line(1, huge, huge, 3, 1)],
            0,
            499,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].code.as_str(), errors[0].line),
            ("AMOUNT_TOO_LARGE", Some(1))
        );
        assert!(
            errors[0].message.starts_with("line 1:"),
            "{}",
            errors[0].message
        );

        let big = MAX_AMOUNT / 2;
        let errors = plan(
            "dq_x",
            vec![line(0, big, big, 1, 1), line(1, big, big, 2, 1)],
            0,
            499,
        )
        .unwrap_err();
        assert_eq!(
            errors[0].line,
            Some(1),
            "the running total overflows at line 1"
        );

        let errors = plan("dq_x", vec![line(0, big, big, 2, 1)], 500, 499).unwrap_err();
        assert_eq!(
            (errors[0].code.as_str(), errors[0].line),
            ("AMOUNT_TOO_LARGE", None)
        );
        assert!(plan("dq_x", vec![line(0, big, big, 2, 1)], 1, 499).is_ok());
    }

    #[test]
    fn a_price_above_list_rejects_the_quote_with_every_such_line() {
        let lines = vec![
            line(0, 100, 120, 1, 1),
            line(1, 100, 90, 1, 1),
            line(2, 5, 6, 1, 1),
        ];
        let errors = plan("dq_x", lines, 0, 499).unwrap_err();
        let at: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
        assert_eq!(at, [Some(0), Some(2)]);
        assert!(errors.iter().all(|e| e.code == "PRICE_ABOVE_LIST"));
    }

    #[test]
    fn the_draft_input_discounts_each_unit_to_the_negotiated_price() {
        let parts = plan(
            "dq_x",
            vec![line(0, 2500, 2199, 3, 1), line(1, 800, 800, 2, 1)],
            900,
            499,
        )
        .unwrap();
        let group = Group {
            job_id: "dq_x",
            quote_id: "Q-7",
            parts: 1,
            currency: "USD",
            note: None,
            shipping_title: Some("Freight"),
            purchasing_entity: None,
        };
        let input = draft_input(&group, &parts[0]);
        assert_eq!(
            input.line_items[0].applied_discount,
            Some(AppliedDiscount::FixedAmount {
                cents_per_unit: 301,
                title: Some(DISCOUNT_TITLE.into())
            })
        );
        assert_eq!(input.line_items[1].applied_discount, None);
        assert_eq!(
            input.tags,
            [
                "wholesail-group:dq_x",
                "wholesail-part:dq_x-1",
                "part 1 of 1"
            ]
        );
        assert_eq!(
            input.shipping_line.unwrap().price_with_currency.amount,
            "9.00"
        );
        let meta: serde_json::Value = serde_json::from_str(&input.metafields[0].value).unwrap();
        assert_eq!(meta["part"], 1);
        assert_eq!(meta["of"], 1);
    }
}
