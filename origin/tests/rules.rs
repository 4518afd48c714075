//! B2B rules against real PostgreSQL and the Shopify simulator: pricing and validation of a
//! buyer's cart, the rules file import, the metafield payload, the push of only what changed,
//! and quota consumption by orders.

use sqlx::PgPool;
use wholesail_origin::rules::quote::{self, QuoteError, QuoteLine};

const SHOP: &str = "northwind.myshopify.com";
const L1: &str = "gid://shopify/CompanyLocation/9100001";
const L2: &str = "gid://shopify/CompanyLocation/9100002";

/// Two buyers (US, DE), two products (variants 11, 12 and 21), two warehouses (501 serves the
/// US, 502 Germany) with stock.
async fn catalog(pool: &PgPool) {
    for (gid, country) in [(L1, "US"), (L2, "DE")] {
        sqlx::query(
            "INSERT INTO company_locations (shop, admin_graphql_api_id, name, shipping_country_code)
             VALUES ($1, $2, 'Dock', $3)",
        )
        .bind(SHOP)
        .bind(gid)
        .bind(country)
        .execute(pool)
        .await
        .unwrap();
    }
    for (id, title) in [(1, "Gloves"), (2, "Masks")] {
        sqlx::query("INSERT INTO products (shop, id, title) VALUES ($1, $2, $3)")
            .bind(SHOP)
            .bind(id as i64)
            .bind(title)
            .execute(pool)
            .await
            .unwrap();
    }
    for (id, product, sku, price) in [
        (11, 1, "GLV-S", "10.00"),
        (12, 1, "GLV-M", "10.00"),
        (21, 2, "MSK", "20.00"),
    ] {
        sqlx::query(
            "INSERT INTO variants (shop, id, product_id, sku, title, price, inventory_item_id)
             VALUES ($1, $2, $3, $4, $4, $5::numeric, $2 + 1000)",
        )
        .bind(SHOP)
        .bind(id as i64)
        .bind(product as i64)
        .bind(sku)
        .bind(price)
        .execute(pool)
        .await
        .unwrap();
    }
    for (item, location, available) in [(1011, 501, 100), (1011, 502, 40), (1012, 501, 5), (1021, 502, 7)] {
        set_stock(pool, item, location, available).await;
    }
}

async fn set_stock(pool: &PgPool, item: i64, location: i64, available: i32) {
    sqlx::query(
        "INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,
                                       source_updated_at, source_digest)
         VALUES ($1, $2, $3, $4, now(), 0)
         ON CONFLICT (shop, inventory_item_id, location_id)
         DO UPDATE SET available = EXCLUDED.available, source_updated_at = now()",
    )
    .bind(SHOP)
    .bind(item)
    .bind(location)
    .bind(available)
    .execute(pool)
    .await
    .unwrap();
}

/// The rules of the pricing/validation scenario, as SQL.
async fn rules_sql(pool: &PgPool) {
    let statements = [
        "INSERT INTO rule_price_breaks (shop, company_location, target_kind, target_id, min_quantity, unit_price) VALUES
           ($1, $2, 'product', 1, 1, 9.00), ($1, $2, 'product', 1, 10, 8.00),
           ($1, $2, 'variant', 11, 1, 9.50), ($1, $2, 'variant', 11, 24, 7.50)",
        "INSERT INTO rule_line_limits (shop, company_location, target_kind, target_id, increment, min_quantity, max_quantity) VALUES
           ($1, $2, 'product', 1, 6, 6, 120), ($1, $2, 'variant', 12, 1, 0, 10)",
        "INSERT INTO rule_quotas (shop, company_location, target_kind, target_id, quantity, period) VALUES
           ($1, $2, 'variant', 21, 50, 'month')",
        "INSERT INTO rule_order_minimums (shop, company_location, amount, currency) VALUES ($1, $2, 500.00, 'USD')",
        "INSERT INTO rule_sku_warehouses (shop, target_kind, target_id, warehouse_id) VALUES ($1, 'variant', 21, 502)",
        "INSERT INTO rule_warehouse_regions (shop, warehouse_id, country_code) VALUES ($1, 501, 'US'), ($1, 502, 'DE')",
    ];
    for s in statements {
        let q = sqlx::query(s).bind(SHOP);
        let q = if s.contains("$2") { q.bind(L1) } else { q };
        q.execute(pool).await.unwrap();
    }
}

fn line(variant_id: u64, quantity: u32) -> QuoteLine {
    QuoteLine {
        variant_id,
        quantity,
    }
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_cart_is_priced_by_quantity_breaks_and_every_broken_rule_reported(pool: PgPool) {
    catalog(&pool).await;
    rules_sql(&pool).await;
    let q = quote::quote(&pool, SHOP, L1, &[line(11, 30), line(12, 12), line(21, 5)])
        .await
        .unwrap();
    assert_eq!(q.priced.currency, "USD");
    let prices: Vec<(u64, u64, Option<i64>)> = q
        .priced
        .lines
        .iter()
        .map(|l| (l.list_price, l.unit_price, l.warehouse))
        .collect();
    // 11: its own break from 24 units; 12: the product's break from 10; 21: no break, and no
    // warehouse allowed for it serves the US.
    assert_eq!(
        prices,
        [(1000, 750, Some(501)), (1000, 800, Some(501)), (2000, 2000, None)]
    );
    assert_eq!(q.priced.subtotal(), 30 * 750 + 12 * 800 + 5 * 2000);
    assert_eq!(q.priced.lines[0].sku.as_deref(), Some("GLV-S"));
    assert_eq!(q.priced.lines[0].title.as_deref(), Some("Gloves - GLV-S"));
    let got: Vec<(&str, String)> = q
        .violations
        .iter()
        .map(|v| (v.code.as_str(), v.target.to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("NOT_ELIGIBLE", "$.cart.lines[2].quantity".to_owned()),
            ("ABOVE_LINE_MAXIMUM", "$.cart.lines[1].quantity".to_owned()),
            ("INSUFFICIENT_STOCK", "$.cart.lines[1].quantity".to_owned()),
            ("INSUFFICIENT_STOCK", "$.cart.lines[2].quantity".to_owned()),
            ("ORDER_MINIMUM", "$.cart".to_owned()),
        ]
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_valid_cart_is_priced_and_an_invalid_one_gives_its_violations(pool: PgPool) {
    catalog(&pool).await;
    rules_sql(&pool).await;
    let ok = quote::price_and_validate(&pool, SHOP, L1, &[line(11, 72)])
        .await
        .unwrap()
        .expect("72 gloves in packs of 6 above the minimum order value");
    assert_eq!(ok.lines[0].unit_price, 750);
    assert_eq!(ok.subtotal(), 54_000);
    let bad = quote::price_and_validate(&pool, SHOP, L1, &[line(11, 7)])
        .await
        .unwrap()
        .unwrap_err();
    let codes: Vec<&str> = bad.iter().map(|v| v.code.as_str()).collect();
    assert_eq!(codes, ["CASE_PACK", "ORDER_MINIMUM"]);
    // The other buyer has no rules: list prices, German stock is not limited for it (no rule
    // covers the variant), and nothing to violate.
    let other = quote::price_and_validate(&pool, SHOP, L2, &[line(11, 7)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.lines[0].unit_price, 1000);
    assert_eq!(other.lines[0].warehouse, Some(502));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn unknown_buyers_variants_and_zero_quantities_are_refused(pool: PgPool) {
    catalog(&pool).await;
    let err = quote::quote(&pool, SHOP, "gid://shopify/CompanyLocation/1", &[line(11, 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, QuoteError::UnknownLocation(ref l) if l.ends_with("/1")), "{err}");
    let err = quote::quote(&pool, SHOP, L1, &[line(11, 1), line(999, 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, QuoteError::UnknownVariant(999)), "{err}");
    let err = quote::quote(&pool, SHOP, L1, &[line(11, 0)]).await.unwrap_err();
    assert!(matches!(err, QuoteError::ZeroQuantity(0)), "{err}");
}
