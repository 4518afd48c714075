//! Draft orders: `draftOrderCreate` with Shopify's limits and discount arithmetic,
//! `draftOrders(query: "tag:…")` to find them again, `draftOrderInvoiceSend`, and a fault that
//! hits the N-th create *after* it was applied (the draft exists, the client never hears so).
//!
//! Arithmetic, in integer cents:
//! - a line's list price comes from the shop's catalog (`variantId`) or, for a custom line,
//!   from `originalUnitPriceWithCurrency` / `originalUnitPrice`;
//! - `FIXED_AMOUNT` discounts `value` off **each unit** (capped at the unit price), so the
//!   line's discount is `value × quantity`;
//! - `PERCENTAGE` discounts `value`% of the line's original total, rounded half-up to the cent;
//! - an order-level `appliedDiscount` applies to the sum of the discounted lines;
//! - `totalPrice = subtotal (lines after all discounts) + shipping`; taxes are not simulated.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};

use crate::catalog::CatalogSpec;

/// Most line items a draft order accepts (API 2025-07 and later).
pub const MAX_LINES: usize = 499;

/// A discount as applied to a line or an order.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedDiscount {
    /// `FIXED_AMOUNT` or `PERCENTAGE`.
    pub value_type: String,
    /// The input value (an amount per unit, or a percentage).
    pub value: f64,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// The resulting discount in cents.
    pub amount_cents: u64,
}

/// A stored draft-order line.
#[derive(Clone, Debug, PartialEq)]
pub struct DraftLine {
    /// The variant's numeric id, for product lines.
    pub variant_id: Option<u64>,
    /// SKU (from the catalog for product lines).
    pub sku: Option<String>,
    /// Title.
    pub title: String,
    /// Quantity.
    pub quantity: u64,
    /// List price per unit in cents.
    pub unit_price_cents: u64,
    /// The line's discount, if any.
    pub discount: Option<AppliedDiscount>,
}

impl DraftLine {
    /// Unit price × quantity.
    pub fn original_total_cents(&self) -> u64 {
        self.unit_price_cents * self.quantity
    }

    /// The line's discount in cents.
    pub fn discount_cents(&self) -> u64 {
        self.discount.as_ref().map_or(0, |d| d.amount_cents)
    }

    /// Original total minus the line's discount.
    pub fn discounted_total_cents(&self) -> u64 {
        self.original_total_cents() - self.discount_cents()
    }
}

/// A stored draft order.
#[derive(Clone, Debug, PartialEq)]
pub struct DraftOrderRecord {
    /// Numeric id (`gid://shopify/DraftOrder/<id>`).
    pub id: u64,
    /// Name, `#D<n>`.
    pub name: String,
    /// Tags, trimmed and deduplicated, in input order.
    pub tags: Vec<String>,
    /// Line items.
    pub lines: Vec<DraftLine>,
    /// The order-level discount, if any.
    pub order_discount: Option<AppliedDiscount>,
    /// Shipping line title and price in cents.
    pub shipping: Option<(String, u64)>,
    /// Note.
    pub note: Option<String>,
    /// Checkout link.
    pub invoice_url: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Every `draftOrderInvoiceSend` for this draft: (recipient, time RFC 3339); the recipient
    /// is `None` when the buyer's address on file was used.
    pub invoice_sends: Vec<(Option<String>, String)>,
}

impl DraftOrderRecord {
    /// Sum of the lines' original totals.
    pub fn line_items_total_cents(&self) -> u64 {
        self.lines.iter().map(DraftLine::original_total_cents).sum()
    }

    /// Lines after their discounts, minus the order-level discount.
    pub fn subtotal_cents(&self) -> u64 {
        let lines: u64 = self
            .lines
            .iter()
            .map(DraftLine::discounted_total_cents)
            .sum();
        lines - self.order_discount.as_ref().map_or(0, |d| d.amount_cents)
    }

    /// Line discounts plus the order-level discount.
    pub fn total_discounts_cents(&self) -> u64 {
        self.lines
            .iter()
            .map(DraftLine::discount_cents)
            .sum::<u64>()
            + self.order_discount.as_ref().map_or(0, |d| d.amount_cents)
    }

    /// Subtotal plus shipping.
    pub fn total_cents(&self) -> u64 {
        self.subtotal_cents() + self.shipping.as_ref().map_or(0, |s| s.1)
    }

    /// Whether the draft carries `tag` (case-insensitive, as Shopify's search).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }

    /// The draft as the simulator answers it, with at most `lines` line items.
    pub fn to_json(&self, lines: usize) -> Value {
        let nodes: Vec<Value> = self
            .lines
            .iter()
            .take(lines)
            .enumerate()
            .map(|(n, l)| {
                json!({
                    "id": format!("gid://shopify/DraftOrderLineItem/{}", self.id * 1000 + n as u64),
                    "variant": l.variant_id.map(|v| json!({"id": format!("gid://shopify/ProductVariant/{v}")})),
                    "custom": l.variant_id.is_none(),
                    "sku": l.sku, "title": l.title, "name": l.title, "quantity": l.quantity,
                    "originalUnitPriceSet": money_bag(l.unit_price_cents),
                    "originalTotalSet": money_bag(l.original_total_cents()),
                    "discountedTotalSet": money_bag(l.discounted_total_cents()),
                    "totalDiscountSet": money_bag(l.discount_cents()),
                    "approximateDiscountedUnitPriceSet":
                        money_bag(l.discounted_total_cents() / l.quantity.max(1)),
                    "appliedDiscount": l.discount.as_ref().map(discount_json),
                })
            })
            .collect();
        json!({
            "id": format!("gid://shopify/DraftOrder/{}", self.id),
            "name": self.name, "status": "OPEN", "invoiceUrl": self.invoice_url,
            "tags": self.tags, "note2": self.note,
            "createdAt": self.created_at, "updatedAt": self.created_at,
            "totalLineItemsPriceSet": money_bag(self.line_items_total_cents()),
            "subtotalPriceSet": money_bag(self.subtotal_cents()),
            "totalDiscountsSet": money_bag(self.total_discounts_cents()),
            "totalShippingPriceSet": money_bag(self.shipping.as_ref().map_or(0, |s| s.1)),
            "totalTaxSet": money_bag(0),
            "totalPriceSet": money_bag(self.total_cents()),
            "appliedDiscount": self.order_discount.as_ref().map(discount_json),
            "shippingLine": self.shipping.as_ref().map(|(t, c)| json!({"title": t, "originalPriceSet": money_bag(*c)})),
            "lineItems": {
                "nodes": nodes,
                "pageInfo": {"hasNextPage": self.lines.len() > lines, "hasPreviousPage": false},
            },
        })
    }
}

fn discount_json(d: &AppliedDiscount) -> Value {
    json!({"valueType": d.value_type, "value": d.value, "title": d.title,
           "description": d.description.clone().unwrap_or_default(), "amountSet": money_bag(d.amount_cents)})
}

/// Integer cents as Shopify's decimal string.
pub fn decimal(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn money_bag(cents: u64) -> Value {
    let m = json!({"amount": decimal(cents), "currencyCode": "USD"});
    json!({"shopMoney": m, "presentmentMoney": m})
}

/// Parses a Decimal (string) or Float input into cents, rounding half-up.
pub fn parse_cents(v: &Value) -> Option<u64> {
    let f = match v {
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    (f.is_finite() && f >= 0.0).then(|| (f * 100.0 + 1e-6).round() as u64)
}

fn user_error(field: &[&str], message: impl Into<String>) -> Value {
    json!({"field": field, "message": message.into()})
}

/// Computes an `appliedDiscount` against a unit price and quantity (an order-level discount
/// passes the subtotal as the unit price and 1).
fn apply_discount(
    input: &Value,
    unit_cents: u64,
    quantity: u64,
    field: &[&str],
) -> Result<AppliedDiscount, Value> {
    let value_type = input.get("valueType").and_then(Value::as_str).unwrap_or("");
    let value = input
        .get("value")
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| user_error(field, "Applied discount value must be a positive number"))?;
    let amount_cents = match value_type {
        "FIXED_AMOUNT" => ((value * 100.0 + 1e-6).round() as u64).min(unit_cents) * quantity,
        "PERCENTAGE" if value <= 100.0 => {
            let total = (unit_cents * quantity) as f64;
            ((total * value / 100.0) + 1e-6).round() as u64
        }
        "PERCENTAGE" => return Err(user_error(field, "Percentage discounts can't exceed 100")),
        _ => return Err(user_error(field, "Applied discount value type is invalid")),
    };
    let s = |k: &str| input.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(AppliedDiscount {
        value_type: value_type.to_owned(),
        value,
        title: s("title"),
        description: s("description"),
        amount_cents,
    })
}

/// Validates a `DraftOrderInput` and builds the draft (without id, name or url), or returns
/// the user errors.
pub fn build(input: &Value, catalog: &CatalogSpec) -> Result<DraftOrderRecord, Vec<Value>> {
    let empty = Vec::new();
    let items = input
        .get("lineItems")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if items.len() > MAX_LINES {
        return Err(vec![user_error(
            &["lineItems"],
            format!("Draft order can't have more than {MAX_LINES} line items"),
        )]);
    }
    if items.is_empty() {
        return Err(vec![user_error(&["lineItems"], "Add at least 1 product")]);
    }
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let f = |name: &'static str| [String::from("lineItems"), idx.clone(), name.into()];
        let quantity = item.get("quantity").and_then(Value::as_u64).unwrap_or(0);
        if quantity == 0 {
            let p = f("quantity");
            errors.push(user_error(
                &[&p[0], &p[1], &p[2]],
                "Quantity must be greater than 0",
            ));
            continue;
        }
        let line = match item.get("variantId").and_then(Value::as_str) {
            Some(gid) => {
                let variant = gid
                    .strip_prefix("gid://shopify/ProductVariant/")
                    .and_then(|n| n.parse::<u64>().ok())
                    .and_then(|n| catalog.variant_by_id(n));
                let Some(v) = variant else {
                    let p = f("variantId");
                    errors.push(user_error(
                        &[&p[0], &p[1], &p[2]],
                        format!("Product with ID {gid} is no longer available."),
                    ));
                    continue;
                };
                DraftLine {
                    variant_id: Some(v.id),
                    sku: Some(v.sku),
                    title: v.title,
                    quantity,
                    unit_price_cents: v.price_cents,
                    discount: None,
                }
            }
            None => {
                let price = item
                    .get("originalUnitPriceWithCurrency")
                    .and_then(|m| m.get("amount"))
                    .or_else(|| item.get("originalUnitPrice"))
                    .and_then(parse_cents);
                let title = item.get("title").and_then(Value::as_str).unwrap_or("");
                match price {
                    Some(p) if !title.is_empty() => DraftLine {
                        variant_id: None,
                        sku: item.get("sku").and_then(Value::as_str).map(str::to_owned),
                        title: title.to_owned(),
                        quantity,
                        unit_price_cents: p,
                        discount: None,
                    },
                    _ => {
                        let p = f("title");
                        errors.push(user_error(
                            &[&p[0], &p[1], &p[2]],
                            "Custom line items need a title and a price",
                        ));
                        continue;
                    }
                }
            }
        };
        let mut line = line;
        if let Some(d) = item.get("appliedDiscount").filter(|d| !d.is_null()) {
            let p = f("appliedDiscount");
            match apply_discount(d, line.unit_price_cents, quantity, &[&p[0], &p[1], &p[2]]) {
                Ok(d) => line.discount = Some(d),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        }
        lines.push(line);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let lines_total: u64 = lines.iter().map(DraftLine::discounted_total_cents).sum();
    let order_discount = match input.get("appliedDiscount").filter(|d| !d.is_null()) {
        Some(d) => {
            Some(apply_discount(d, lines_total, 1, &["appliedDiscount"]).map_err(|e| vec![e])?)
        }
        None => None,
    };
    let shipping = input.get("shippingLine").filter(|s| !s.is_null()).map(|s| {
        let price = s
            .get("priceWithCurrency")
            .and_then(|m| m.get("amount"))
            .or_else(|| s.get("price"))
            .and_then(parse_cents)
            .unwrap_or(0);
        let title = s.get("title").and_then(Value::as_str).unwrap_or("Shipping");
        (title.to_owned(), price)
    });
    let mut tags: Vec<String> = Vec::new();
    for t in input
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = t.as_str().map(str::trim).filter(|t| !t.is_empty()) {
            if !tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                tags.push(t.to_owned());
            }
        }
    }
    Ok(DraftOrderRecord {
        id: 0,
        name: String::new(),
        tags,
        lines,
        order_discount,
        shipping,
        note: input.get("note").and_then(Value::as_str).map(str::to_owned),
        invoice_url: String::new(),
        created_at: String::new(),
        invoice_sends: Vec::new(),
    })
}

/// What happens to a `draftOrderCreate` after the simulator applied it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterApply {
    /// Answer with this HTTP status instead of the result (a gateway failing after the shop
    /// acted): the client cannot know the draft exists.
    Status(u16),
    /// Hold the answer this long (longer than the client's timeout: a timeout after the
    /// shop acted).
    Delay(Duration),
}

/// Faults queued for upcoming creates of one shop, by ordinal.
#[derive(Clone, Debug, Default)]
pub struct CreateFaults {
    seen: u64,
    queued: VecDeque<(u64, AfterApply)>,
}

impl CreateFaults {
    /// Makes the `nth` (1-based) create from now on fail with `fault` after it was applied.
    pub fn push(&mut self, nth: u64, fault: AfterApply) {
        self.queued.push_back((self.seen + nth.max(1), fault));
    }

    /// Counts one executed create; returns the fault meant for it, if any.
    pub fn on_create(&mut self) -> Option<AfterApply> {
        self.seen += 1;
        let seen = self.seen;
        let at = self.queued.iter().position(|(n, _)| *n == seen)?;
        self.queued.remove(at).map(|(_, f)| f)
    }
}

/// `draftOrderInvoiceSend(id, email: {to, …})`: records the send on the draft and returns it,
/// or the user error Shopify gives for an unknown draft.
pub fn invoice_send<'a>(
    drafts: &'a mut [DraftOrderRecord],
    gid: &str,
    args: &serde_json::Map<String, Value>,
    now: &str,
) -> Result<&'a DraftOrderRecord, Value> {
    let id = gid
        .strip_prefix("gid://shopify/DraftOrder/")
        .and_then(|n| n.parse::<u64>().ok());
    let Some(draft) = drafts.iter_mut().find(|d| Some(d.id) == id) else {
        return Err(user_error(&["id"], "Draft order not found"));
    };
    let to = args
        .get("email")
        .and_then(|e| e.get("to"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    draft.invoice_sends.push((to, now.to_owned()));
    Ok(draft)
}

/// The tags a `draftOrders(query:)` search string requires (`tag:x`, `tag:'x y'`,
/// `tag:"x y"`, joined by spaces or `AND`); other terms are ignored.
pub fn tag_filters(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(k) = rest.find("tag:") {
        let after = &rest[k + 4..];
        let (tag, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (&after[1..1 + end], &after[end + 2..]),
                None => (&after[1..], ""),
            },
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        out.push(tag.to_owned());
        rest = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> CatalogSpec {
        CatalogSpec::new(5, 100)
    }

    fn variant_gid(i: u64) -> String {
        format!(
            "gid://shopify/ProductVariant/{}",
            CatalogSpec::variant_id(i, 0)
        )
    }

    #[test]
    fn fixed_amount_is_per_unit_and_percentage_is_on_the_line_rounded_half_up() {
        let input = json!({"lineItems": [
            {"title": "Crate", "originalUnitPriceWithCurrency": {"amount": "10.00", "currencyCode": "USD"}, "quantity": 3,
             "appliedDiscount": {"valueType": "FIXED_AMOUNT", "value": 1.25}},
            {"title": "Bin", "originalUnitPrice": "3.33", "quantity": 3,
             "appliedDiscount": {"valueType": "PERCENTAGE", "value": 12.5}},
            {"title": "Cap", "originalUnitPrice": "2.00", "quantity": 2,
             "appliedDiscount": {"valueType": "FIXED_AMOUNT", "value": 5.0}}
        ], "shippingLine": {"title": "Freight", "priceWithCurrency": {"amount": "25.00", "currencyCode": "USD"}}});
        let d = build(&input, &catalog()).unwrap();
        assert_eq!(d.lines[0].discount_cents(), 375); // 1.25 × 3
        assert_eq!(d.lines[1].discount_cents(), 125); // 12.5% of 9.99 = 1.24875 → 1.25
        assert_eq!(d.lines[2].discount_cents(), 400); // capped at the unit price
        assert_eq!(d.subtotal_cents(), 3000 - 375 + 999 - 125);
        assert_eq!(d.total_cents(), d.subtotal_cents() + 2500);
    }

    #[test]
    fn variant_lines_take_the_catalog_price() {
        let c = catalog();
        let input = json!({"lineItems": [{"variantId": variant_gid(3), "quantity": 2}], "tags": ["q-1", " Q-1 ", "part-1-of-2"]});
        let d = build(&input, &c).unwrap();
        assert_eq!(
            d.lines[0].unit_price_cents,
            c.variant(3, 0).unwrap().price_cents
        );
        assert_eq!(d.tags, vec!["q-1", "part-1-of-2"]);
        let missing =
            json!({"lineItems": [{"variantId": "gid://shopify/ProductVariant/1", "quantity": 1}]});
        assert!(build(&missing, &c).is_err());
    }

    #[test]
    fn more_than_499_lines_is_a_user_error() {
        let line = json!({"variantId": variant_gid(1), "quantity": 1});
        let ok = json!({"lineItems": vec![line.clone(); 499]});
        assert_eq!(build(&ok, &catalog()).unwrap().lines.len(), 499);
        let too_many = json!({"lineItems": vec![line; 500]});
        let errs = build(&too_many, &catalog()).unwrap_err();
        assert_eq!(errs[0]["field"], json!(["lineItems"]));
    }

    #[test]
    fn a_create_fault_hits_the_nth_create_from_now_only() {
        let mut f = CreateFaults::default();
        assert_eq!(f.on_create(), None);
        f.push(2, AfterApply::Status(502));
        assert_eq!(f.on_create(), None);
        assert_eq!(f.on_create(), Some(AfterApply::Status(502)));
        assert_eq!(f.on_create(), None);
    }

    #[test]
    fn tag_queries_are_parsed() {
        assert_eq!(tag_filters("tag:quote-7"), vec!["quote-7"]);
        assert_eq!(tag_filters("tag:'a b' AND tag:\"c\""), vec!["a b", "c"]);
    }
}
