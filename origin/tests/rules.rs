//! B2B rules against real PostgreSQL and the Shopify simulator: pricing and validation of a
//! buyer's cart, the rules file import, the metafield payload, the push of only what changed,
//! and quota consumption by orders.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::{BucketConfig, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN};
use sqlx::PgPool;
use wholesail_origin::handlers::{self, InboxEvent};
use wholesail_origin::rules::compute::{Scope, ShopRules};
use wholesail_origin::rules::file::{self, Format};
use wholesail_origin::rules::quote::{self, QuoteError, QuoteLine};
use wholesail_origin::rules::{marks, push, scheduler, store};
use wholesail_rules::payload::{self, MAX_PAGES, MAX_PAGE_BYTES, NAMESPACE, PAGE_KEYS};
use wholesail_rules::BuyerRules;
use wholesail_shopify_admin::{AdminClient, AdminConfig};

mod common;

/// The simulator's shop, so that pushed metafields can be read back from it.
const SHOP: &str = DEFAULT_SHOP;
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
    for (item, location, available) in [
        (1011, 501, 100),
        (1011, 502, 40),
        (1012, 501, 5),
        (1021, 502, 7),
    ] {
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
    let q = quote::quote(
        &pool,
        &common::domain(SHOP),
        L1,
        &[line(11, 30), line(12, 12), line(21, 5)],
    )
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
        [
            (1000, 750, Some(501)),
            (1000, 800, Some(501)),
            (2000, 2000, None)
        ]
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
    let ok = quote::price_and_validate(&pool, &common::domain(SHOP), L1, &[line(11, 72)])
        .await
        .unwrap()
        .expect("72 gloves in packs of 6 above the minimum order value");
    assert_eq!(ok.lines[0].unit_price, 750);
    assert_eq!(ok.subtotal(), 54_000);
    let bad = quote::price_and_validate(&pool, &common::domain(SHOP), L1, &[line(11, 7)])
        .await
        .unwrap()
        .unwrap_err();
    let codes: Vec<&str> = bad.iter().map(|v| v.code.as_str()).collect();
    assert_eq!(codes, ["CASE_PACK", "ORDER_MINIMUM"]);
    // The other buyer has no rules: list prices, German stock is not limited for it (no rule
    // covers the variant), and nothing to violate.
    let other = quote::price_and_validate(&pool, &common::domain(SHOP), L2, &[line(11, 7)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.lines[0].unit_price, 1000);
    assert_eq!(other.lines[0].warehouse, Some(502));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_safety_buffer_holds_back_the_last_units_of_a_high_demand_sku(pool: PgPool) {
    catalog(&pool).await;
    // Masks (variant 21): 7 at warehouse 502; 2 held back there and 3 from the total.
    let buffers = json!([
        {"rule": "safety_buffer", "target": "sku:MSK", "quantity": 3},
        {"rule": "safety_buffer", "target": "variant:21", "warehouse": 502, "quantity": 2},
    ]);
    assert_eq!(import_json(&pool, buffers.clone()).await, 2);
    let shop = common::domain(SHOP);
    for buyer in [L1, L2] {
        // Every buyer's payload carries the buffered stock (the Function enforces it).
        let rules = computed(&pool, buyer).await;
        let masks = rules
            .variants()
            .iter()
            .find(|v| v.variant_id == 21)
            .unwrap();
        assert_eq!(masks.stock, Some(2), "{buyer}");
        let bad = quote::price_and_validate(&pool, &shop, buyer, &[line(21, 3)])
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(bad[0].code.as_str(), "INSUFFICIENT_STOCK");
        quote::price_and_validate(&pool, &shop, buyer, &[line(21, 2)])
            .await
            .unwrap()
            .expect("the 2 units above the buffer sell");
    }
    // Deeper than the stock: nothing sells, never a negative count.
    import_json(
        &pool,
        json!([{"rule": "safety_buffer", "target": "variant:21", "quantity": 9}]),
    )
    .await;
    let masks = computed(&pool, L1).await;
    assert_eq!(
        masks
            .variants()
            .iter()
            .find(|v| v.variant_id == 21)
            .unwrap()
            .stock,
        Some(0)
    );
    // Listed as imported; removed, the SKU is unconstrained again.
    let listed = store::list(&pool, &shop, None).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|r| matches!(r, file::Rule::SafetyBuffer { .. }))
            .count(),
        2
    );
    let all = file::parse(&buffers.to_string(), Format::Json).unwrap();
    store::delete(&pool, &shop, all).await.unwrap();
    quote::price_and_validate(&pool, &shop, L1, &[line(21, 7)])
        .await
        .unwrap()
        .expect("no buffer: all 7 sell");
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn unknown_buyers_variants_and_zero_quantities_are_refused(pool: PgPool) {
    catalog(&pool).await;
    let err = quote::quote(
        &pool,
        &common::domain(SHOP),
        "gid://shopify/CompanyLocation/1",
        &[line(11, 1)],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, QuoteError::UnknownLocation(ref l) if l.ends_with("/1")),
        "{err}"
    );
    let err = quote::quote(
        &pool,
        &common::domain(SHOP),
        L1,
        &[line(11, 1), line(999, 1)],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, QuoteError::UnknownVariant(999)), "{err}");
    let err = quote::quote(&pool, &common::domain(SHOP), L1, &[line(11, 0)])
        .await
        .unwrap_err();
    assert!(matches!(err, QuoteError::ZeroQuantity(0)), "{err}");
}

/// A simulator whose bucket holds only 2 metafieldsSet calls (20 points, 100 restored per
/// second): any push of more than 2 calls has to be paced.
async fn simulator() -> Simulator {
    Simulator::start(SimulatorConfig {
        bucket: BucketConfig {
            maximum_available: 20.0,
            restore_rate: 100.0,
        },
        ..SimulatorConfig::default()
    })
    .await
    .unwrap()
}

fn client(sim: &Simulator) -> AdminClient {
    AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))
    .unwrap()
}

/// The rules of `location` as the simulator holds them, decoded.
fn pushed(sim: &Simulator, location: &str) -> Option<BuyerRules> {
    let pages: Vec<Option<String>> = PAGE_KEYS
        .iter()
        .map(|k| sim.metafield(SHOP, location, NAMESPACE, k).map(|m| m.value))
        .collect();
    let refs: Vec<Option<&str>> = pages.iter().map(Option::as_deref).collect();
    payload::decode(&refs).unwrap()
}

/// How many times the simulator's rules0 of `location` was written.
fn writes(sim: &Simulator, location: &str) -> u32 {
    sim.metafield(SHOP, location, NAMESPACE, PAGE_KEYS[0])
        .map_or(0, |m| m.writes)
}

async fn computed(pool: &PgPool, location: &str) -> BuyerRules {
    ShopRules::load(pool, &common::domain(SHOP), Scope::default())
        .await
        .unwrap()
        .buyer_rules(location)
        .unwrap()
}

fn extra_location(i: u32) -> String {
    format!("gid://shopify/CompanyLocation/{}", 9_200_000 + i)
}

async fn import_json(pool: &PgPool, rows: Value) -> usize {
    let rules = file::parse(&rows.to_string(), Format::Json).unwrap();
    store::upsert(pool, &common::domain(SHOP), rules)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_push_sends_only_what_changed_and_never_overdraws_the_bucket(pool: PgPool) {
    catalog(&pool).await;
    rules_sql(&pool).await;
    let rows: Vec<Value> = (0..60)
        .map(|i| {
            json!({"rule": "limits", "company_location": extra_location(i), "target": "variant:11",
                   "increment": i % 5 + 2})
        })
        .collect();
    import_json(&pool, Value::Array(rows)).await;
    let sim = simulator().await;
    let client = client(&sim);

    // 62 buyers with rules (L1, L2 through the SKU-level warehouse rule on variant 21, and
    // 60 more), one page each: 3 calls of at most 25.
    let first = push::push(&pool, &client, &common::domain(SHOP), None)
        .await
        .unwrap();
    assert_eq!(
        (
            first.buyers,
            first.changed_buyers,
            first.metafields,
            first.calls
        ),
        (62, 62, 62, 3)
    );
    assert_eq!(pushed(&sim, L1), Some(computed(&pool, L1).await));
    assert_eq!(pushed(&sim, L2), Some(computed(&pool, L2).await));
    let l2 = pushed(&sim, L2).unwrap();
    assert_eq!(l2.variants().len(), 1, "only the SKU-restricted variant");
    assert!(l2.variants()[0].eligible);
    assert_eq!(l2.variants()[0].stock, Some(7));

    // The import marked its 60 buyers dirty: recomputed, unchanged, nothing sent.
    let again = scheduler::push_dirty(&pool, &client, &common::domain(SHOP))
        .await
        .unwrap();
    assert_eq!(
        (again.buyers, again.metafields, again.calls),
        (60, 0, 0),
        "nothing changed"
    );
    let again = push::push(&pool, &client, &common::domain(SHOP), None)
        .await
        .unwrap();
    assert_eq!((again.metafields, again.calls), (0, 0), "nothing changed");

    // One rule changes: only that buyer's page is sent, by the background path.
    import_json(
        &pool,
        json!([{"rule": "limits", "company_location": L1, "target": "variant:12", "max_quantity": 20}]),
    )
    .await;
    let third = scheduler::push_dirty(&pool, &client, &common::domain(SHOP))
        .await
        .unwrap();
    assert_eq!((third.buyers, third.metafields, third.calls), (1, 1, 1));
    assert_eq!(writes(&sim, L1), 2);
    assert_eq!(writes(&sim, L2), 1);
    assert_eq!(writes(&sim, &extra_location(7)), 1);
    let l1 = pushed(&sim, L1).unwrap();
    assert_eq!(l1.variants()[l1.position(12).unwrap()].max, Some(20));

    let calls = sim
        .cost_log(SHOP)
        .iter()
        .filter(|e| e.operation == "metafieldsSet")
        .count();
    assert_eq!(calls, 4);
    assert!(sim.throttled(SHOP).is_empty(), "{:?}", sim.throttled(SHOP));
    let marks: i64 = sqlx::query_scalar("SELECT count(*) FROM rules_dirty")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(marks, 0, "handled marks are cleared");
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn metafields_written_by_someone_else_are_overwritten_after_a_digest_refresh(pool: PgPool) {
    catalog(&pool).await;
    rules_sql(&pool).await;
    let sim = simulator().await;
    let client = client(&sim);
    push::push(&pool, &client, &common::domain(SHOP), None)
        .await
        .unwrap();
    // Someone else writes L1's page: the stored compareDigest no longer matches.
    client
        .metafields_set(&[wholesail_shopify_admin::metafields::MetafieldsSetInput {
            owner_id: L1.into(),
            namespace: NAMESPACE.into(),
            key: PAGE_KEYS[0].into(),
            value: "garbage".into(),
            kind: payload::METAFIELD_TYPE.into(),
            compare_digest: Default::default(),
        }])
        .await
        .unwrap();
    import_json(
        &pool,
        json!([{"rule": "quota", "company_location": L1, "target": "variant:21", "quantity": 40, "period": "week"}]),
    )
    .await;
    let report = scheduler::push_dirty(&pool, &client, &common::domain(SHOP))
        .await
        .unwrap();
    assert_eq!(
        (report.metafields, report.calls),
        (1, 2),
        "refused once, then sent"
    );
    assert_eq!(pushed(&sim, L1), Some(computed(&pool, L1).await));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_buyer_too_large_for_the_function_is_named_and_the_others_are_pushed(pool: PgPool) {
    catalog(&pool).await;
    rules_sql(&pool).await;
    // The largest buyer the generator makes here: 1,500 variant rules with every field.
    sqlx::query(
        "INSERT INTO rule_line_limits (shop, company_location, target_kind, target_id, increment, min_quantity, max_quantity)
         SELECT $1, $2, 'variant', 40000000000000 + g::bigint * 7919, 12, 12, 1200 FROM generate_series(1, 1500) g",
    )
    .bind(SHOP)
    .bind(L1)
    .execute(&pool)
    .await
    .unwrap();
    // And one that cannot fit: 20,000 rules.
    sqlx::query(
        "INSERT INTO rule_line_limits (shop, company_location, target_kind, target_id, increment)
         SELECT $1, $2, 'variant', 1 + g::bigint * 1000003, 6 FROM generate_series(1, 20000) g",
    )
    .bind(SHOP)
    .bind(L2)
    .execute(&pool)
    .await
    .unwrap();
    let sim = simulator().await;
    let report = push::push(&pool, &client(&sim), &common::domain(SHOP), None)
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, L2);
    assert!(
        report.failed[0]
            .1
            .starts_with(&format!("buyer {L2}: its rules need")),
        "{}",
        report.failed[0].1
    );
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT company_location FROM rules_push_errors WHERE shop = $1")
            .bind(SHOP)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, [L2]);
    assert!(sim.metafield(SHOP, L2, NAMESPACE, PAGE_KEYS[0]).is_none());

    let pages: Vec<String> = PAGE_KEYS
        .iter()
        .filter_map(|k| sim.metafield(SHOP, L1, NAMESPACE, k).map(|m| m.value))
        .collect();
    assert!(
        pages.len() > 1 && pages.len() <= MAX_PAGES,
        "{} pages",
        pages.len()
    );
    assert!(pages.iter().all(|p| p.len() <= MAX_PAGE_BYTES));
    let l1 = pushed(&sim, L1).unwrap();
    assert_eq!(l1.variants().len(), 1_500 + 3);
    assert_eq!(l1, computed(&pool, L1).await);

    // Once the buyer fits again, its error is cleared.
    sqlx::query("DELETE FROM rule_line_limits WHERE company_location = $1")
        .bind(L2)
        .execute(&pool)
        .await
        .unwrap();
    let report = push::push(&pool, &client(&sim), &common::domain(SHOP), None)
        .await
        .unwrap();
    assert!(report.failed.is_empty());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM rules_push_errors")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// An `orders/create` of `location` (numeric id) with one line, created now, applied by the
/// real handler as the worker would.
async fn order_of(pool: &PgPool, id: u64, location: i64, variant: i64, quantity: i32) {
    let mut spec = shopify_simulator::payloads::OrderSpec::new(id, 1);
    spec.updated_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut order = shopify_simulator::payloads::order(&spec);
    order["created_at"] = json!(spec.updated_at);
    order["company"]["location_id"] = json!(location);
    order["line_items"][0]["variant_id"] = json!(variant);
    order["line_items"][0]["quantity"] = json!(quantity);
    order["line_items"][0]["current_quantity"] = json!(quantity);
    let stripped = wholesail_webhook::strip("orders/create", order.to_string().as_bytes()).unwrap();
    let event = InboxEvent {
        id: id as i64,
        webhook_id: format!("wh-{id}"),
        event_id: None,
        shop: common::domain(SHOP),
        topic: "orders/create".to_owned(),
        payload: stripped.json,
    };
    let mut tx = pool.begin().await.unwrap();
    handlers::apply(&mut tx, &event).await.unwrap();
    tx.commit().await.unwrap();
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn orders_of_one_buyer_in_concurrent_transactions_do_not_wait_on_its_mark(pool: PgPool) {
    catalog(&pool).await;
    rules_sql(&pool).await;
    let event = |id: i64| {
        let mut spec = shopify_simulator::payloads::OrderSpec::new(id as u64, 1);
        spec.updated_at = "2026-11-23T10:00:00Z".into();
        let mut order = shopify_simulator::payloads::order(&spec);
        order["company"]["location_id"] = json!(9_100_001);
        let stripped =
            wholesail_webhook::strip("orders/create", order.to_string().as_bytes()).unwrap();
        InboxEvent {
            id,
            webhook_id: format!("wh-{id}"),
            event_id: None,
            shop: common::domain(SHOP),
            topic: "orders/create".to_owned(),
            payload: stripped.json,
        }
    };
    // Two worker batches, each holding an order of the same quota buyer, uncommitted.
    let mut first = pool.begin().await.unwrap();
    handlers::apply(&mut first, &event(1)).await.unwrap();
    let mut second = pool.begin().await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        handlers::apply(&mut second, &event(2)),
    )
    .await
    .expect("the second batch does not wait for the first one's mark")
    .unwrap();
    second.commit().await.unwrap();
    first.commit().await.unwrap();
    let marks: Vec<String> = sqlx::query_scalar("SELECT company_location FROM rules_dirty")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(marks, [L1, L1]);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn orders_consuming_quota_and_stock_changes_mark_buyers_dirty_and_the_push_follows(
    pool: PgPool,
) {
    // The process's recorder, so the push's latency observations can be read back.
    let metrics = wholesail_origin::ops::recorder();
    catalog(&pool).await;
    rules_sql(&pool).await;
    let sim = simulator().await;
    let client = client(&sim);
    push::push(&pool, &client, &common::domain(SHOP), None)
        .await
        .unwrap();
    let rule = |r: &BuyerRules, v: u64| r.variants()[r.position(v).unwrap()];
    assert_eq!(
        rule(&pushed(&sim, L1).unwrap(), 21).quota_remaining,
        Some(50)
    );

    order_of(&pool, 1, 9_100_001, 21, 8).await;
    let marked: Vec<(String, String)> =
        sqlx::query_as("SELECT company_location, cause FROM rules_dirty")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(marked, [(L1.to_owned(), "order".to_owned())]);
    let report = scheduler::push_dirty(&pool, &client, &common::domain(SHOP))
        .await
        .unwrap();
    assert_eq!((report.buyers, report.metafields), (1, 1));
    // The order's quota use became visible at checkout: one order_to_quota observation
    // (other tests of this binary may add theirs), within the default 120 s.
    let scrape = metrics.render();
    let good = r#"wholesail_slo_events_total{stage="order_to_quota",result="good"} "#;
    assert!(
        scrape.lines().any(|l| l
            .strip_prefix(good)
            .is_some_and(|n| n.parse::<f64>().unwrap() >= 1.0)),
        "{scrape}"
    );
    assert_eq!(
        rule(&pushed(&sim, L1).unwrap(), 21).quota_remaining,
        Some(42)
    );
    // An order of a location without quotas marks nothing.
    order_of(&pool, 2, 9_100_002, 11, 6).await;
    let marks: i64 = sqlx::query_scalar("SELECT count(*) FROM rules_dirty")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(marks, 0);
    // The quote sees the same consumption.
    let err = quote::price_and_validate(
        &pool,
        &common::domain(SHOP),
        L1,
        &[line(11, 72), line(21, 43)],
    )
    .await
    .unwrap()
    .unwrap_err();
    let codes: Vec<&str> = err.iter().map(|v| v.code.as_str()).collect();
    assert!(codes.contains(&"QUOTA_EXCEEDED"), "{codes:?}");

    // Stock of variant 12 at the US warehouse drops: L1 (whose limits cover 12) is pushed.
    set_stock(&pool, 1012, 501, 3).await;
    let report = scheduler::push_dirty(&pool, &client, &common::domain(SHOP))
        .await
        .unwrap();
    assert_eq!((report.buyers, report.metafields), (1, 1));
    assert_eq!(rule(&pushed(&sim, L1).unwrap(), 12).stock, Some(3));
    assert!(sim.throttled(SHOP).is_empty());
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_http_api_imports_all_or_nothing_and_validates_carts_with_every_error(pool: PgPool) {
    catalog(&pool).await;
    let addr = common::serve_routes(pool.clone(), 1 << 20).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");

    let bad_csv = "rule,company_location,target,min_quantity,unit_price,increment,max_quantity\n\
                   price,gid://shopify/CompanyLocation/9100001,variant:11,24,7.50,,\n\
                   limits,gid://shopify/CompanyLocation/9100001,product:1,12,,0,6\n\
                   limits,gid://shopify/CompanyLocation/9100001,sku:NOPE,,,6,\n";
    let unauthorized = http
        .post(url(&format!("/admin/rules/import?shop={SHOP}&format=csv")))
        .body(bad_csv)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let r = http
        .post(url(&format!("/admin/rules/import?shop={SHOP}&format=csv")))
        .bearer_auth(common::ADMIN_TOKEN)
        .body(bad_csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_rules", "{body}");
    let errors: Vec<(u64, String)> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (2, "increment \"0\": expected a whole number ≥ 1".to_owned()),
            (2, "max_quantity 6 is below min_quantity 12".to_owned()),
        ]
    );
    // Rows valid in themselves but naming an unknown SKU: refused at write, nothing written.
    let r = http
        .post(url(&format!("/admin/rules/import?shop={SHOP}&format=csv")))
        .bearer_auth(common::ADMIN_TOKEN)
        .body(bad_csv.replace(",12,,0,6", ",6,,6,60"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["row"], 3);
    assert_eq!(
        body["error"]["details"][0]["message"],
        "sku \"NOPE\": no variant of the shop has this SKU"
    );
    let count: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM rule_price_breaks) + (SELECT count(*) FROM rule_line_limits)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(count, 0, "nothing written");

    let good = bad_csv
        .replace(",12,,0,6", ",6,,6,60")
        .replace("sku:NOPE", "sku:GLV-M");
    for _ in 0..2 {
        let r = http
            .post(url(&format!("/admin/rules/import?shop={SHOP}&format=csv")))
            .bearer_auth(common::ADMIN_TOKEN)
            .body(good.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["written"], 3);
    }
    let r = http
        .put(url("/admin/rules"))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"shop": SHOP, "rules": [
            {"rule": "order_minimum", "company_location": L1, "amount": "500", "currency": "USD"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = http
        .get(url(&format!("/admin/rules?shop={SHOP}&location={L1}")))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules = listed["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "imported twice, stored once: {listed}");
    assert!(
        rules.contains(&json!({"rule": "limits", "company_location": L1,
        "target": "variant:12", "increment": "6", "min_quantity": "0"}))
    );

    let validate = |lines: Value| {
        http.post(url("/v1/carts/validate"))
            .bearer_auth(common::ADMIN_TOKEN)
            .json(&json!({"shop": SHOP, "company_location": L1, "lines": lines}))
            .send()
    };
    let r =
        validate(json!([{"variant_id": 11, "quantity": 25}, {"variant_id": 12, "quantity": 7}]))
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["valid"], false);
    assert_eq!(body["currency"], "USD");
    assert_eq!(body["subtotal"], 25 * 750 + 7 * 1000);
    assert_eq!(body["lines"][0]["unit_price"], 750);
    assert_eq!(body["lines"][0]["warehouse"], 501);
    let codes: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["code"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("CASE_PACK", "$.cart.lines[0].quantity"),
            ("CASE_PACK", "$.cart.lines[1].quantity"),
            ("INSUFFICIENT_STOCK", "$.cart.lines[1].quantity"),
            ("ORDER_MINIMUM", "$.cart"),
        ]
    );
    assert!(body["errors"][3]["message"]
        .as_str()
        .unwrap()
        .starts_with("Minimum order value is 500.00 USD"));
    let r =
        validate(json!([{"variant_id": 11, "quantity": 60}, {"variant_id": 21, "quantity": 3}]))
            .await
            .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["valid"].clone(), body["errors"].clone()),
        (json!(true), json!([]))
    );
    let r = validate(json!([{"variant_id": 404, "quantity": 1}]))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn origin_serve_pushes_edited_rules_after_a_quiet_period(pool: PgPool) {
    common::grant_admin(&pool).await;
    catalog(&pool).await;
    let sim = simulator().await;
    let shops = format!(
        r#"[{{domain="{SHOP}",url="{}",access_token="{DEFAULT_TOKEN}"}}]"#,
        sim.base_url()
    );
    let origin = common::Origin::spawn(
        &common::database_url(&pool),
        &[
            ("WHOLESAIL_SHOPS", shops.as_str()),
            ("WHOLESAIL_RULES__QUIET_MS", "300"),
            ("WHOLESAIL_RULES__POLL_INTERVAL_MS", "60000"),
        ],
    );
    let r = reqwest::Client::new()
        .put(origin.url("/admin/rules"))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"shop": SHOP, "rules": [
            {"rule": "limits", "company_location": L1, "target": "variant:11", "increment": 12},
            {"rule": "quota", "company_location": L1, "target": "variant:11", "quantity": 96, "period": "week"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    common::eventually(Duration::from_secs(10), "the rules pushed", || async {
        pushed(&sim, L1).is_some()
    })
    .await;
    let l1 = pushed(&sim, L1).unwrap();
    assert_eq!(l1.variants().len(), 1);
    assert_eq!(
        (l1.variants()[0].increment, l1.variants()[0].quota_remaining),
        (12, Some(96))
    );
    // The rule edit reached the buyer's metafields: rule_to_metafield observations, good
    // against the default 600 s (recorded once the push returned, hence the wait).
    let scrape = || async {
        reqwest::Client::new()
            .get(origin.url("/metrics"))
            .bearer_auth(common::ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    common::eventually(
        Duration::from_secs(10),
        "rule_to_metafield recorded",
        || async {
            scrape()
                .await
                .contains(r#"wholesail_slo_events_total{stage="rule_to_metafield",result="good"}"#)
        },
    )
    .await;
    // The shop's breaker state is exported from the start (0: closed).
    let metrics = scrape().await;
    assert!(
        !metrics.contains(r#"wholesail_slo_events_total{stage="rule_to_metafield",result="bad"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "wholesail_shop_breaker_state{{shop=\"{SHOP}\"}} 0"
        )),
        "{metrics}"
    );
    origin.kill();
}

/// `origin rules <args>` against the test database: (success, stdout, stderr).
fn origin_rules(pool: &PgPool, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .arg("rules")
        .args(args)
        .env_clear()
        .env("WHOLESAIL_DATABASE_URL", common::database_url(pool))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_import_cli_lists_every_bad_row_imports_nothing_and_is_idempotent(pool: PgPool) {
    catalog(&pool).await;
    let dir = std::env::temp_dir().join(format!("wholesail-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "rule,company_location,target,increment,max_quantity,quantity,period\n\
         limits,gid://shopify/CompanyLocation/9100001,variant:11,6,120,,\n\
         limits,gid://shopify/CompanyLocation/9100001,variant:12,0,,,\n\
         quota,gid://shopify/CompanyLocation/9100001,sku:GLV-S,,,50,fortnight\n",
    )
    .unwrap();
    let (ok, _, stderr) = origin_rules(
        &pool,
        &["import", "--shop", SHOP, "--file", bad.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(
        stderr.contains("bad.csv: row 2: increment \"0\": expected a whole number ≥ 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.csv: row 3: period \"fortnight\": expected week or month"),
        "{stderr}"
    );
    assert!(stderr.contains("2 errors, nothing imported"), "{stderr}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rule_line_limits")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);

    let good = dir.join("good.json");
    std::fs::write(
        &good,
        json!([
            {"rule": "limits", "company_location": L1, "target": "variant:11", "increment": 6},
            {"rule": "quota", "company_location": L1, "target": "sku:GLV-S", "quantity": 50, "period": "week"}
        ])
        .to_string(),
    )
    .unwrap();
    for _ in 0..2 {
        let (ok, stdout, stderr) = origin_rules(
            &pool,
            &["import", "--shop", SHOP, "--file", good.to_str().unwrap()],
        );
        assert!(ok, "{stderr}");
        assert!(stdout.contains("\"imported\":2"), "{stdout}");
    }
    let rows: Vec<(String, i64, i32)> = sqlx::query_as(
        "SELECT 'limits', target_id, increment FROM rule_line_limits
         UNION ALL SELECT 'quota', target_id, quantity FROM rule_quotas ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [("limits".to_owned(), 11, 6), ("quota".to_owned(), 11, 50)]
    );
    let (ok, stdout, _) = origin_rules(&pool, &["show", "--shop", SHOP, "--location", L1]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["computed"]["variants"][0]["quota_remaining"], 50);
    assert_eq!(shown["computed"]["variants"][0]["increment"], 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_buyer_shopify_refuses_is_recorded_and_the_rest_of_its_call_is_pushed(pool: PgPool) {
    catalog(&pool).await;
    rules_sql(&pool).await;
    // Rules for an owner Shopify does not accept (stored before any check existed).
    sqlx::query(
        "INSERT INTO rule_line_limits (shop, company_location, target_kind, target_id, increment)
         VALUES ($1, 'not-a-gid', 'variant', 11, 6)",
    )
    .bind(SHOP)
    .execute(&pool)
    .await
    .unwrap();
    let sim = simulator().await;
    let report = push::push(&pool, &client(&sim), &common::domain(SHOP), None)
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(report.failed[0].0, "not-a-gid");
    assert!(
        report.failed[0].1.starts_with("shopify refused"),
        "{}",
        report.failed[0].1
    );
    assert_eq!(
        (report.metafields, report.calls),
        (2, 2),
        "sent again without it"
    );
    assert_eq!(pushed(&sim, L1), Some(computed(&pool, L1).await));
    assert!(pushed(&sim, L2).is_some());
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT company_location FROM rules_push_errors")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, ["not-a-gid"]);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn concurrent_pushes_of_one_shop_send_each_change_once(pool: PgPool) {
    catalog(&pool).await;
    rules_sql(&pool).await;
    let sim = simulator().await;
    let (a, b) = (client(&sim), client(&sim));
    let shop = common::domain(SHOP);
    let (ra, rb) = tokio::join!(
        push::push(&pool, &a, &shop, None),
        push::push(&pool, &b, &shop, None)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.metafields + rb.metafields, 2, "{ra:?} {rb:?}");
    assert_eq!(ra.calls + rb.calls, 1);
    assert_eq!(writes(&sim, L1), 1);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_sku_row_and_a_later_row_of_the_same_variant_leave_the_later_one(pool: PgPool) {
    catalog(&pool).await;
    import_json(
        &pool,
        json!([
            {"rule": "limits", "company_location": L1, "target": "sku:GLV-M", "increment": 6},
            {"rule": "limits", "company_location": L1, "target": "variant:12", "increment": 12},
            {"rule": "price", "company_location": L1, "target": "variant:12", "min_quantity": 1, "unit_price": "9.50"},
        ]),
    )
    .await;
    let rows: Vec<(String, i64, i32)> = sqlx::query_as(
        "SELECT target_kind, target_id, increment FROM rule_line_limits WHERE shop = $1",
    )
    .bind(SHOP)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, [("variant".to_owned(), 12, 12)]);
    let price: String = sqlx::query_scalar(
        "SELECT unit_price::text FROM rule_price_breaks WHERE shop = $1 AND target_id = 12",
    )
    .bind(SHOP)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(price, "9.50");
}

/// Failed before checked arithmetic: unit price × quantity overflowed (a panic in debug
/// builds, a wrong subtotal in release), and a price past `bigint` failed the SQL cast (503).
/// Now a 422 naming the line, and quantities are capped.
#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn amounts_that_overflow_and_huge_quantities_are_refused_naming_the_line(pool: PgPool) {
    catalog(&pool).await;
    // A price far above any real one (numeric is unbounded): 10^17 dollars.
    sqlx::query("UPDATE variants SET price = 100000000000000000 WHERE shop = $1 AND id = 21")
        .bind(SHOP)
        .execute(&pool)
        .await
        .unwrap();
    let err = quote::quote(
        &pool,
        &common::domain(SHOP),
        L1,
        &[line(11, 2), line(21, 1_000)],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, QuoteError::AmountTooLarge(1)), "{err}");
    assert!(err.to_string().starts_with("line 1:"), "{err}");
    // 10^15 dollars fits a bigint of cents; 1,000 of them do not fit a u64.
    sqlx::query("UPDATE variants SET price = 1000000000000000 WHERE shop = $1 AND id = 12")
        .bind(SHOP)
        .execute(&pool)
        .await
        .unwrap();
    let err = quote::quote(
        &pool,
        &common::domain(SHOP),
        L1,
        &[line(12, 1_000), line(11, 1)],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, QuoteError::AmountTooLarge(0)), "{err}");
    let max = quote::MAX_LINE_QUANTITY;
    let err = quote::quote(
        &pool,
        &common::domain(SHOP),
        L1,
        &[line(11, 2), line(12, max + 1)],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, QuoteError::QuantityTooLarge(1)), "{err}");
    assert!(
        quote::quote(&pool, &common::domain(SHOP), L1, &[line(11, max)])
            .await
            .is_ok()
    );

    let addr = common::serve_routes(pool.clone(), 1 << 20).await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/carts/validate"))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"shop": SHOP, "company_location": L1,
                      "lines": [{"variant_id": 11, "quantity": 1}, {"variant_id": 21, "quantity": 4_000_000}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 1: quantity must be at most"),
        "{body}"
    );
}

/// A 5xx storm at the shop opens its breaker: the background push stops calling Shopify
/// (before: every round retried the push with no backoff) and keeps the marks; once the shop
/// recovers, the first round after the cool-down is the probe and pushes.
#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_shop_failing_with_5xx_is_backed_off_by_its_breaker_and_pushed_after_recovery(
    pool: PgPool,
) {
    use wholesail_origin::shops::{ShopConfig, Shops};
    use wholesail_shopify_admin::{BreakerConfig, BreakerState};

    catalog(&pool).await;
    rules_sql(&pool).await;
    let sim = simulator().await;
    let shops = Shops::with_breaker(
        vec![ShopConfig {
            domain: common::domain(SHOP),
            url: Some(sim.base_url().into()),
            access_token: SecretString::from(DEFAULT_TOKEN),
            api_version: None,
        }],
        BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_millis(500),
            max_cool_down: Duration::from_secs(5),
        },
    )
    .unwrap();
    let client = shops.client(&common::domain(SHOP)).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    marks::mark_locations(&mut conn, &common::domain(SHOP), &[L1.to_owned()])
        .await
        .unwrap();
    drop(conn);
    let marks = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rules_dirty")
            .fetch_one(&pool)
            .await
            .unwrap()
    };

    sim.set_faults(shopify_simulator::FaultConfig {
        error_rate: 1.0,
        ..Default::default()
    });
    scheduler::push_all_dirty(&pool, &shops).await.unwrap();
    assert!(
        matches!(client.breaker().state(), BreakerState::Open { .. }),
        "{:?}",
        client.breaker().state()
    );
    let after_storm = sim.requests();
    assert_eq!(after_storm, 3, "the third failure opened the breaker");
    for _ in 0..10 {
        scheduler::push_all_dirty(&pool, &shops).await.unwrap();
    }
    assert_eq!(
        sim.requests(),
        after_storm,
        "no call while the breaker is open"
    );
    assert_eq!(marks().await, 1, "the marks wait for the shop");

    sim.set_faults(shopify_simulator::FaultConfig::default());
    common::eventually(Duration::from_secs(10), "the cool-down", || async {
        client.breaker().state() == BreakerState::HalfOpen
    })
    .await;
    scheduler::push_all_dirty(&pool, &shops).await.unwrap();
    assert_eq!(client.breaker().state(), BreakerState::Closed);
    assert_eq!(marks().await, 0);
    assert!(pushed(&sim, L1).is_some());
}
