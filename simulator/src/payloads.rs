//! Webhook payloads shaped like the ones Shopify sends, deterministic from a seed.
//!
//! The shapes follow Shopify's REST webhook JSON for API 2025-07: every field operations do not
//! need is there too (money sets, tax lines, addresses, discount allocations …), because the
//! edge's stripping cost and reduction can only be measured on realistic bodies. A 500-line
//! order is about 600 kB, as in DESIGN.md.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Options for a generated order.
#[derive(Clone, Debug)]
pub struct OrderSpec {
    /// Seed: the same seed gives the same order.
    pub seed: u64,
    /// The order's numeric id.
    pub id: u64,
    /// Number of line items.
    pub lines: usize,
    /// `updated_at`, RFC 3339.
    pub updated_at: String,
}

impl OrderSpec {
    /// An order with `lines` line items and ids derived from `seed`.
    pub fn new(seed: u64, lines: usize) -> Self {
        OrderSpec {
            seed,
            id: 5_000_000_000_000 + seed,
            lines,
            updated_at: "2026-11-23T10:00:00-05:00".to_owned(),
        }
    }
}

fn money(amount: &str) -> Value {
    json!({
        "shop_money": {"amount": amount, "currency_code": "USD"},
        "presentment_money": {"amount": amount, "currency_code": "USD"}
    })
}

fn address(rng: &mut StdRng) -> Value {
    let zip = format!("{:05}", rng.gen_range(10000..99999));
    json!({
        "first_name": "Avery", "last_name": "Buyer", "company": "Northwind Supply Co.",
        "address1": format!("{} Commerce Way", rng.gen_range(1..9999)), "address2": "Dock 4",
        "city": "Columbus", "province": "Ohio", "province_code": "OH", "country": "United States",
        "country_code": "US", "zip": zip, "phone": "+1 614-555-0100", "name": "Avery Buyer",
        "latitude": 39.9612, "longitude": -82.9988
    })
}

/// Formats integer cents as Shopify's decimal string.
fn cents(c: u64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// A line item as Shopify sends it in order webhooks.
fn line_item(rng: &mut StdRng, order_id: u64, i: usize) -> (Value, u64) {
    let id = order_id * 1000 + i as u64;
    let variant_id = 40_000_000_000_000 + rng.gen_range(0..1_000_000u64);
    let product_id = 8_000_000_000_000 + variant_id % 100_000;
    let qty = rng.gen_range(1..=48u64);
    let price = rng.gen_range(150..25_000u64);
    let tax = price * qty * 7 / 100;
    let title = format!("Industrial Fastener Assortment {}", variant_id % 10_000);
    let variant_title = ["Small / Zinc", "Medium / Steel", "Large / Brass"][i % 3];
    let line = json!({
        "id": id,
        "admin_graphql_api_id": format!("gid://shopify/LineItem/{id}"),
        "attributed_staffs": [],
        "current_quantity": qty,
        "fulfillable_quantity": qty,
        "fulfillment_service": "manual",
        "fulfillment_status": null,
        "gift_card": false,
        "grams": rng.gen_range(50..5000),
        "name": format!("{title} - {variant_title}"),
        "price": cents(price),
        "price_set": money(&cents(price)),
        "product_exists": true,
        "product_id": product_id,
        "properties": [],
        "quantity": qty,
        "requires_shipping": true,
        "sales_line_item_group_id": null,
        "sku": format!("WS-{:06}-{}", variant_id % 1_000_000, ["ZN", "ST", "BR"][i % 3]),
        "taxable": true,
        "title": title,
        "total_discount": "0.00",
        "total_discount_set": money("0.00"),
        "variant_id": variant_id,
        "variant_inventory_management": "shopify",
        "variant_title": variant_title,
        "vendor": "Northwind Industrial",
        "tax_lines": [{
            "channel_liable": false, "price": cents(tax), "price_set": money(&cents(tax)),
            "rate": 0.07, "title": "Ohio State Tax"
        }],
        "duties": [],
        "discount_allocations": []
    });
    (line, price * qty)
}

/// An `orders/create`-shaped order with `spec.lines` line items.
pub fn order(spec: &OrderSpec) -> Value {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut subtotal = 0;
    let lines: Vec<Value> = (0..spec.lines)
        .map(|i| {
            let (l, total) = line_item(&mut rng, spec.id, i);
            subtotal += total;
            l
        })
        .collect();
    let tax = subtotal * 7 / 100;
    let ship = 4_500;
    let total = subtotal + tax + ship;
    let customer_id = 7_000_000_000_000 + spec.seed % 1000;
    json!({
        "id": spec.id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{}", spec.id),
        "app_id": 580111,
        "browser_ip": "203.0.113.7",
        "buyer_accepts_marketing": false,
        "cancel_reason": null,
        "cancelled_at": null,
        "cart_token": format!("Z2NwLXVzLWVhc3QxOjAxSk{}", spec.seed),
        "checkout_id": spec.id + 17,
        "checkout_token": format!("c1a2b3c4d5e6f7{:x}", spec.seed),
        "client_details": {
            "accept_language": "en-US,en;q=0.9", "browser_height": 900, "browser_ip": "203.0.113.7",
            "browser_width": 1440, "session_hash": null,
            "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15"
        },
        "closed_at": null,
        "company": {"id": 9_000_000 + spec.seed % 500, "location_id": 9_100_000 + spec.seed % 900},
        "confirmation_number": format!("K{:08X}", spec.seed),
        "confirmed": true,
        "contact_email": "purchasing@northwind.example",
        "created_at": "2026-11-23T09:59:58-05:00",
        "currency": "USD",
        "current_subtotal_price": cents(subtotal),
        "current_subtotal_price_set": money(&cents(subtotal)),
        "current_total_discounts": "0.00",
        "current_total_price": cents(total),
        "current_total_price_set": money(&cents(total)),
        "current_total_tax": cents(tax),
        "current_total_tax_set": money(&cents(tax)),
        "customer_locale": "en-US",
        "discount_codes": [],
        "email": "purchasing@northwind.example",
        "estimated_taxes": false,
        "financial_status": "pending",
        "fulfillment_status": null,
        "landing_site": "/",
        "name": format!("#{}", 1000 + spec.seed),
        "note": null,
        "note_attributes": [{"name": "PO", "value": format!("PO-{}", spec.seed)}],
        "number": spec.seed,
        "order_number": 1000 + spec.seed,
        "order_status_url": format!("https://northwind.example/orders/{:x}/authenticate", spec.id),
        "payment_gateway_names": ["Net 30"],
        "payment_terms": {"payment_terms_name": "Net 30", "payment_terms_type": "NET", "due_in_days": 30},
        "phone": null,
        "po_number": format!("PO-{}", spec.seed),
        "presentment_currency": "USD",
        "processed_at": "2026-11-23T09:59:58-05:00",
        "source_name": "web",
        "subtotal_price": cents(subtotal),
        "subtotal_price_set": money(&cents(subtotal)),
        "tags": "wholesale, net30",
        "tax_lines": [{"price": cents(tax), "rate": 0.07, "title": "Ohio State Tax", "price_set": money(&cents(tax)), "channel_liable": false}],
        "taxes_included": false,
        "test": false,
        "total_discounts": "0.00",
        "total_discounts_set": money("0.00"),
        "total_line_items_price": cents(subtotal),
        "total_line_items_price_set": money(&cents(subtotal)),
        "total_price": cents(total),
        "total_price_set": money(&cents(total)),
        "total_shipping_price_set": money(&cents(ship)),
        "total_tax": cents(tax),
        "total_tax_set": money(&cents(tax)),
        "total_weight": 0,
        "updated_at": spec.updated_at,
        "user_id": null,
        "billing_address": address(&mut rng),
        "customer": {
            "id": customer_id, "email": "purchasing@northwind.example",
            "created_at": "2025-01-10T12:00:00-05:00", "updated_at": "2026-11-20T12:00:00-05:00",
            "first_name": "Avery", "last_name": "Buyer", "state": "enabled", "note": null,
            "verified_email": true, "tax_exempt": false, "phone": null, "currency": "USD",
            "tax_exemptions": [], "admin_graphql_api_id": format!("gid://shopify/Customer/{customer_id}"),
            "default_address": address(&mut rng)
        },
        "discount_applications": [],
        "fulfillments": [],
        "line_items": lines,
        "payment_details": null,
        "refunds": [],
        "shipping_address": address(&mut rng),
        "shipping_lines": [{
            "id": spec.id + 3, "carrier_identifier": null, "code": "LTL Freight",
            "discounted_price": cents(ship), "discounted_price_set": money(&cents(ship)),
            "price": cents(ship), "price_set": money(&cents(ship)), "source": "shopify",
            "title": "LTL Freight", "tax_lines": [], "discount_allocations": []
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_order_and_realistic_size() {
        let a = order(&OrderSpec::new(7, 500)).to_string();
        let b = order(&OrderSpec::new(7, 500)).to_string();
        assert_eq!(a, b);
        assert!((500_000..800_000).contains(&a.len()), "{} bytes", a.len());
        assert_ne!(a, order(&OrderSpec::new(8, 500)).to_string());
    }
}
