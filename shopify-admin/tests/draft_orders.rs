//! Draft orders through the client: the 499-line limit, discount arithmetic, lookup by tag.

mod common;

use common::{client, simulator};
use shopify_simulator::{CatalogSpec, DEFAULT_SHOP};
use wholesail_shopify_admin::draft_orders::{
    AppliedDiscount, DraftOrderInput, DraftOrderLineItemInput, ShippingLineInput,
};
use wholesail_shopify_admin::{AdminError, Money};

fn variant_line(
    i: u64,
    quantity: u32,
    discount: Option<AppliedDiscount>,
) -> DraftOrderLineItemInput {
    DraftOrderLineItemInput {
        variant_id: Some(format!(
            "gid://shopify/ProductVariant/{}",
            CatalogSpec::variant_id(i, 0)
        )),
        quantity,
        title: None,
        original_unit_price_with_currency: None,
        applied_discount: discount,
    }
}

#[tokio::test]
async fn a_draft_over_499_lines_is_refused_and_499_are_accepted() {
    let sim = simulator(|c| c.shops[0].catalog = CatalogSpec::new(3, 600)).await;
    let client = client(&sim);
    let input = |n: u64| DraftOrderInput {
        line_items: (0..n).map(|i| variant_line(i, 1, None)).collect(),
        tags: vec!["big".into()],
        ..DraftOrderInput::default()
    };
    match client.draft_order_create(&input(500)).await.unwrap_err() {
        AdminError::UserErrors(e) => {
            assert_eq!(e[0].field.as_deref(), Some(&["lineItems".to_owned()][..]))
        }
        other => panic!("{other:?}"),
    }
    assert!(sim.draft_orders(DEFAULT_SHOP).is_empty());
    client.draft_order_create(&input(499)).await.unwrap();
    assert_eq!(sim.draft_orders(DEFAULT_SHOP)[0].lines.len(), 499);
}

#[tokio::test]
async fn negotiated_prices_as_fixed_amount_discounts_add_up_to_the_cent() {
    let sim = simulator(|_| {}).await;
    let catalog = sim.catalog(DEFAULT_SHOP);
    let client = client(&sim);
    // Negotiated price: 87% of list, per unit, expressed as a fixed amount off each unit.
    let mut expected = 0;
    let lines: Vec<_> = (0..20u64)
        .map(|i| {
            let list = catalog.variant(i, 0).unwrap().price_cents;
            let negotiated = list * 87 / 100;
            let qty = 1 + (i as u32 % 7);
            expected += negotiated * u64::from(qty);
            variant_line(
                i,
                qty,
                Some(AppliedDiscount::FixedAmount {
                    cents_per_unit: list - negotiated,
                    title: Some("Contract price".into()),
                }),
            )
        })
        .collect();
    let d = client
        .draft_order_create(&DraftOrderInput {
            line_items: lines,
            tags: vec!["quote-9".into(), "part-1-of-1".into()],
            shipping_line: Some(ShippingLineInput {
                title: "Freight".into(),
                price_with_currency: Money::from_cents(4500, "USD"),
            }),
            ..DraftOrderInput::default()
        })
        .await
        .unwrap();
    assert_eq!(d.subtotal_price_set.shop_money.cents().unwrap(), expected);
    assert_eq!(
        d.total_price_set.shop_money.cents().unwrap(),
        expected + 4500
    );
    assert!(d.invoice_url.is_some());
}

#[tokio::test]
async fn a_percentage_discount_is_taken_from_the_line_total_rounded_half_up() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    let custom = DraftOrderLineItemInput {
        variant_id: None,
        quantity: 3,
        title: Some("Setup fee".into()),
        original_unit_price_with_currency: Some(Money::from_cents(333, "USD")),
        applied_discount: Some(AppliedDiscount::Percentage {
            hundredths: 1250,
            title: None,
        }),
    };
    let d = client
        .draft_order_create(&DraftOrderInput {
            line_items: vec![custom],
            ..DraftOrderInput::default()
        })
        .await
        .unwrap();
    // 12.5 % of 9.99 = 1.24875 → 1.25
    assert_eq!(d.total_discounts_set.shop_money.cents().unwrap(), 125);
    assert_eq!(d.total_price_set.shop_money.cents().unwrap(), 999 - 125);
}

#[tokio::test]
async fn drafts_are_found_by_tag_page_by_page() {
    let sim = simulator(|_| {}).await;
    let client = client(&sim);
    for part in 1..=3 {
        client
            .draft_order_create(&DraftOrderInput {
                line_items: vec![variant_line(part, 1, None)],
                tags: vec!["quote-77".into(), format!("part-{part}-of-3")],
                ..DraftOrderInput::default()
            })
            .await
            .unwrap();
    }
    client
        .draft_order_create(&DraftOrderInput {
            line_items: vec![variant_line(9, 1, None)],
            tags: vec!["quote-78".into()],
            ..DraftOrderInput::default()
        })
        .await
        .unwrap();
    let first = client
        .draft_orders_by_tag("quote-77", 2, None)
        .await
        .unwrap();
    assert_eq!(first.drafts.len(), 2);
    let second = client
        .draft_orders_by_tag("quote-77", 2, first.next.as_deref())
        .await
        .unwrap();
    assert_eq!(second.drafts.len(), 1);
    assert!(second.next.is_none());
    assert!(second.drafts[0].tags.contains(&"part-3-of-3".to_owned()));
}
