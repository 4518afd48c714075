//! Each shop's orders, for reconciliation: the REST-shaped order (as its webhooks carry it)
//! by id, and the JSONL a bulk query of the `orders` connection returns, in the Admin GraphQL
//! shape (an `Order` line, then one `LineItem` line per line item with `__parentId`).
//!
//! An order is stored by a test, with or without its webhook ([`crate::Simulator::put_order`]):
//! one stored silently is the drift a missed webhook leaves. The bulk query honours Shopify's
//! search syntax for `updated_at` (`updated_at:>='…'`, `>`, `<=`, `<`, joined by spaces or
//! `AND`); other filters are refused rather than ignored. Every field below is exported
//! whatever the query selects (the simulator does not prune selections).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The orders of one shop, by id.
#[derive(Debug, Default)]
pub struct OrderStore {
    orders: BTreeMap<u64, Value>,
}

/// An `updated_at` range from a search query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdatedRange {
    /// Lower bound and whether it is inclusive.
    pub from: Option<(OffsetDateTime, bool)>,
    /// Upper bound and whether it is inclusive.
    pub until: Option<(OffsetDateTime, bool)>,
}

impl UpdatedRange {
    /// Parses the `query:` argument of `orders`; an error names what is not supported.
    pub fn parse(search: &str) -> Result<UpdatedRange, String> {
        let mut range = UpdatedRange::default();
        for term in search.split_whitespace().filter(|t| *t != "AND") {
            let Some(cond) = term.strip_prefix("updated_at:") else {
                return Err(format!("unsupported search term {term}"));
            };
            let (op, value) = ["<=", ">=", "<", ">"]
                .iter()
                .find_map(|op| cond.strip_prefix(op).map(|v| (*op, v)))
                .ok_or_else(|| format!("unsupported updated_at condition {cond}"))?;
            let value = value.trim_matches(|c| c == '\'' || c == '"');
            let at = OffsetDateTime::parse(value, &Rfc3339)
                .map_err(|e| format!("updated_at {value}: {e}"))?;
            match op {
                ">=" => range.from = Some((at, true)),
                ">" => range.from = Some((at, false)),
                "<=" => range.until = Some((at, true)),
                _ => range.until = Some((at, false)),
            }
        }
        Ok(range)
    }

    fn contains(&self, at: OffsetDateTime) -> bool {
        let above = match self.from {
            Some((f, true)) => at >= f,
            Some((f, false)) => at > f,
            None => true,
        };
        let below = match self.until {
            Some((u, true)) => at <= u,
            Some((u, false)) => at < u,
            None => true,
        };
        above && below
    }
}

/// The `updated_at` of a REST-shaped order.
fn updated_at(order: &Value) -> Option<OffsetDateTime> {
    let text = order.get("updated_at")?.as_str()?;
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

impl OrderStore {
    /// Stores (or replaces) `order`, keyed by its `id`.
    pub fn put(&mut self, order: Value) {
        if let Some(id) = order.get("id").and_then(Value::as_u64) {
            self.orders.insert(id, order);
        }
    }

    /// The order `id`, REST-shaped.
    pub fn get(&self, id: u64) -> Option<&Value> {
        self.orders.get(&id)
    }

    /// Removes the order `id`.
    pub fn remove(&mut self, id: u64) -> Option<Value> {
        self.orders.remove(&id)
    }

    /// The bulk result of the orders in `range`: its JSONL, and its object and root counts.
    pub fn jsonl(&self, range: &UpdatedRange) -> (Vec<u8>, u64, u64) {
        let mut out = Vec::new();
        let (mut objects, mut roots) = (0, 0);
        for order in self.orders.values() {
            if !updated_at(order).is_some_and(|at| range.contains(at)) {
                continue;
            }
            let gid = order["admin_graphql_api_id"].as_str().unwrap_or_default();
            write_line(&mut out, &order_node(order));
            roots += 1;
            objects += 1;
            for line in order["line_items"].as_array().into_iter().flatten() {
                let mut node = line_node(line);
                node["__parentId"] = json!(gid);
                write_line(&mut out, &node);
                objects += 1;
            }
        }
        (out, objects, roots)
    }
}

fn write_line(out: &mut Vec<u8>, v: &Value) {
    serde_json::to_writer(&mut *out, v).expect("a Value serialises");
    out.push(b'\n');
}

fn money(amount: &Value, currency: &Value) -> Value {
    json!({"shopMoney": {"amount": amount, "currencyCode": currency}})
}

fn upper(v: &Value) -> Value {
    v.as_str()
        .map_or(Value::Null, |s| json!(s.to_ascii_uppercase()))
}

/// An `Order` node from the REST-shaped order.
fn order_node(o: &Value) -> Value {
    let currency = &o["currency"];
    let shipping: f64 = o["shipping_lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["price"].as_str()?.parse::<f64>().ok())
        .sum();
    let fulfillment = match o["fulfillment_status"].as_str() {
        None => "UNFULFILLED",
        Some("fulfilled") => "FULFILLED",
        Some("partial") => "PARTIALLY_FULFILLED",
        Some("restocked") => "RESTOCKED",
        Some(_) => "UNFULFILLED",
    };
    let tags: Vec<&str> = o["tags"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let company = o["company"]["id"].as_u64().map(|c| {
        json!({
            "company": {"id": format!("gid://shopify/Company/{c}")},
            "location": o["company"]["location_id"].as_u64()
                .map(|l| json!({"id": format!("gid://shopify/CompanyLocation/{l}")})),
        })
    });
    let address = &o["shipping_address"];
    json!({
        "id": o["admin_graphql_api_id"],
        "legacyResourceId": o["id"].as_u64().map(|i| i.to_string()),
        "name": o["name"],
        "email": o["email"],
        "createdAt": o["created_at"],
        "processedAt": o["processed_at"],
        "updatedAt": o["updated_at"],
        "cancelledAt": o["cancelled_at"],
        "cancelReason": upper(&o["cancel_reason"]),
        "closedAt": o["closed_at"],
        "displayFinancialStatus": upper(&o["financial_status"]),
        "displayFulfillmentStatus": fulfillment,
        "currencyCode": currency,
        "totalPriceSet": money(&o["total_price"], currency),
        "subtotalPriceSet": money(&o["subtotal_price"], currency),
        "totalTaxSet": money(&o["total_tax"], currency),
        "totalDiscountsSet": money(&o["total_discounts"], currency),
        "totalShippingPriceSet": money(&json!(format!("{shipping:.2}")), currency),
        "taxesIncluded": o["taxes_included"],
        "tags": tags,
        "poNumber": o["po_number"],
        "sourceName": o["source_name"],
        "test": o["test"],
        "customer": o["customer"]["id"].as_u64()
            .map(|c| json!({"id": format!("gid://shopify/Customer/{c}")})),
        "purchasingEntity": company,
        "shippingAddress": address.is_object().then(|| json!({
            "countryCodeV2": address["country_code"],
            "provinceCode": address["province_code"],
            "zip": address["zip"],
            "city": address["city"],
        })),
    })
}

/// A `LineItem` node from a REST line item.
fn line_node(l: &Value) -> Value {
    json!({
        "id": format!("gid://shopify/LineItem/{}", l["id"]),
        "sku": l["sku"],
        "quantity": l["quantity"],
        "currentQuantity": l["current_quantity"],
        "variant": l["variant_id"].as_u64()
            .map(|v| json!({"id": format!("gid://shopify/ProductVariant/{v}")})),
        "product": l["product_id"].as_u64()
            .map(|p| json!({"id": format!("gid://shopify/Product/{p}")})),
        "originalUnitPriceSet": money(&l["price"], &json!("USD")),
        "totalDiscountSet": money(&l["total_discount"], &json!("USD")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payloads::{order, OrderSpec};

    fn spec(seed: u64, updated_at: &str) -> Value {
        let mut s = OrderSpec::new(seed, 3);
        s.updated_at = updated_at.to_owned();
        order(&s)
    }

    #[test]
    fn exports_the_orders_in_the_range_with_their_lines() {
        let mut store = OrderStore::default();
        store.put(spec(1, "2026-11-01T10:00:00Z"));
        store.put(spec(2, "2026-11-02T10:00:00Z"));
        store.put(spec(3, "2026-11-03T10:00:00Z"));
        let range = UpdatedRange::parse(
            "updated_at:>='2026-11-02T10:00:00Z' AND updated_at:<'2026-11-03T10:00:00Z'",
        )
        .unwrap();
        let (jsonl, objects, roots) = store.jsonl(&range);
        assert_eq!((objects, roots), (4, 1));
        let lines: Vec<Value> = jsonl
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines[0]["id"], "gid://shopify/Order/5000000000002");
        assert_eq!(lines[0]["displayFinancialStatus"], "PENDING");
        assert_eq!(lines[0]["tags"], json!(["wholesale", "net30"]));
        assert_eq!(lines[1]["__parentId"], "gid://shopify/Order/5000000000002");
        assert_eq!(store.jsonl(&UpdatedRange::default()).2, 3);
    }

    #[test]
    fn refuses_filters_it_does_not_implement() {
        assert!(UpdatedRange::parse("status:open").is_err());
        assert!(UpdatedRange::parse("updated_at:~2026").is_err());
        assert!(UpdatedRange::parse("updated_at:>='yesterday'").is_err());
    }
}
