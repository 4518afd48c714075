//! Negotiated prices at checkout, against real PostgreSQL and the Shopify simulator: the price
//! matrix and line limits reach the buyer's B2B price list (fixed prices, quantity price breaks,
//! quantity rules) with the rules push, so the simulator's checkout charges them; a second sync
//! writes nothing; a price a merchant edits in Shopify (no webhook) is found by a
//! reconciliation run and healed.

use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::{
    CatalogSpec, CheckoutError, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN,
};
use sqlx::PgPool;
use wholesail_origin::reconcile::price_lists;
use wholesail_origin::reconcile::runs::{self, Mode, Trigger};
use wholesail_origin::rules::file::{self, Format};
use wholesail_origin::rules::{scheduler, store};
use wholesail_shopify_admin::{AdminClient, AdminConfig};

mod common;

const SHOP: &str = DEFAULT_SHOP;
const L1: &str = "gid://shopify/CompanyLocation/9100001";

/// The `n`th product's first variant of the simulator's catalog, and its list price.
fn variant(sim: &Simulator, n: u64) -> (u64, u64) {
    let v = sim
        .catalog(SHOP)
        .variant(n, 0)
        .expect("every product has a variant");
    (v.id, v.price_cents)
}

/// Origin's copy of the buyer and of the variants `ids` (as the catalog sync would hold them).
async fn catalog(pool: &PgPool, sim: &Simulator, products: &[u64]) {
    sqlx::query(
        "INSERT INTO company_locations (shop, admin_graphql_api_id, name, shipping_country_code)
         VALUES ($1, $2, 'Dock', 'US')",
    )
    .bind(SHOP)
    .bind(L1)
    .execute(pool)
    .await
    .unwrap();
    for &n in products {
        let (id, cents) = variant(sim, n);
        let product = CatalogSpec::product_id(n) as i64;
        sqlx::query(
            "INSERT INTO products (shop, id, title) VALUES ($1, $2, 'P') ON CONFLICT DO NOTHING",
        )
        .bind(SHOP)
        .bind(product)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO variants (shop, id, product_id, sku, title, price)
             VALUES ($1, $2, $3, $4, $4, $5::numeric / 100)",
        )
        .bind(SHOP)
        .bind(id as i64)
        .bind(product)
        .bind(format!("SKU-{n}"))
        .bind(cents as i64)
        .execute(pool)
        .await
        .unwrap();
    }
}

async fn import(pool: &PgPool, rows: Value) {
    let rules = file::parse(&rows.to_string(), Format::Json).unwrap();
    store::upsert(pool, &common::domain(SHOP), rules)
        .await
        .unwrap();
}

fn client(sim: &Simulator) -> AdminClient {
    AdminClient::new(AdminConfig::new(
        sim.base_url(),
        "2026-01",
        SecretString::from(DEFAULT_TOKEN),
    ))
    .unwrap()
}

/// `quantityPricingByVariantUpdate` calls the simulator admitted so far.
fn pricing_calls(sim: &Simulator) -> usize {
    sim.cost_log(SHOP)
        .iter()
        .filter(|e| e.operation == "quantityPricingByVariantUpdate")
        .count()
}

/// Product 0's variant: 9.00 each, 8.00 from 10 (first reached at 12 in packs of 6), 7.50 from
/// 24, in packs of 6 from 6 to 120. Product 1's variant: only a break from 10 at 1.00.
async fn negotiated(pool: &PgPool, sim: &Simulator) -> (u64, u64) {
    catalog(pool, sim, &[0, 1]).await;
    let (v0, _) = variant(sim, 0);
    let (v1, _) = variant(sim, 1);
    import(
        pool,
        json!([
            {"rule": "price", "company_location": L1, "target": format!("variant:{v0}"), "min_quantity": 1, "unit_price": "9.00"},
            {"rule": "price", "company_location": L1, "target": format!("variant:{v0}"), "min_quantity": 10, "unit_price": "8.00"},
            {"rule": "price", "company_location": L1, "target": format!("variant:{v0}"), "min_quantity": 24, "unit_price": "7.50"},
            {"rule": "limits", "company_location": L1, "target": format!("variant:{v0}"), "increment": 6, "min_quantity": 6, "max_quantity": 120},
            {"rule": "price", "company_location": L1, "target": format!("variant:{v1}"), "min_quantity": 10, "unit_price": "1.00"},
        ]),
    )
    .await;
    (v0, v1)
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_rules_push_makes_checkout_charge_negotiated_prices_and_a_second_sync_writes_nothing(
    pool: PgPool,
) {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let client = client(&sim);
    let shop = common::domain(SHOP);
    let (v0, v1) = negotiated(&pool, &sim).await;
    let (_, list1) = variant(&sim, 1);
    assert_eq!(
        sim.checkout_price(SHOP, L1, v0, 6),
        Ok(variant(&sim, 0).1),
        "list price before"
    );

    scheduler::push_dirty(&pool, &client, &shop).await.unwrap();
    assert_eq!(sim.checkout_price(SHOP, L1, v0, 6), Ok(900));
    assert_eq!(sim.checkout_price(SHOP, L1, v0, 12), Ok(800));
    assert_eq!(sim.checkout_price(SHOP, L1, v0, 30), Ok(750));
    assert_eq!(
        sim.checkout_price(SHOP, L1, v0, 7),
        Err(CheckoutError::NotIncrement(6))
    );
    assert_eq!(
        sim.checkout_price(SHOP, L1, v0, 126),
        Err(CheckoutError::AboveMaximum(120))
    );
    assert_eq!(
        sim.checkout_price(SHOP, L1, v1, 9),
        Ok(list1),
        "below the break: list price"
    );
    assert_eq!(sim.checkout_price(SHOP, L1, v1, 10), Ok(100));
    let other = "gid://shopify/CompanyLocation/1";
    assert_eq!(
        sim.checkout_price(SHOP, other, v0, 7),
        Ok(variant(&sim, 0).1),
        "other buyers: list"
    );
    assert_eq!(pricing_calls(&sim), 1, "both variants in one call");

    // A rule change reaches checkout through the same push.
    import(
        &pool,
        json!([{"rule": "price", "company_location": L1, "target": format!("variant:{v0}"), "min_quantity": 1, "unit_price": "8.50"}]),
    )
    .await;
    scheduler::push_dirty(&pool, &client, &shop).await.unwrap();
    assert_eq!(sim.checkout_price(SHOP, L1, v0, 6), Ok(850));
    assert_eq!(
        sim.checkout_price(SHOP, L1, v0, 24),
        Ok(750),
        "the breaks are kept"
    );
    assert_eq!(pricing_calls(&sim), 2);

    // Nothing changed: nothing is written.
    let again = price_lists::sync(&pool, &client, &shop, None)
        .await
        .unwrap();
    assert_eq!(
        (again.buyers, again.calls, again.variants, again.created),
        (1, 0, 0, 0),
        "{again:?}"
    );
    assert_eq!(pricing_calls(&sim), 2);
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert!(sim.throttled(SHOP).is_empty());
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_price_edited_in_shopify_is_found_by_a_run_healed_and_a_second_run_finds_nothing(
    pool: PgPool,
) {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let client = client(&sim);
    let shop = common::domain(SHOP);
    let (v0, _) = negotiated(&pool, &sim).await;
    scheduler::push_dirty(&pool, &client, &shop).await.unwrap();
    let clean = price_lists::reconcile(&pool, &client, &shop, None, Mode::Heal, Trigger::Operator)
        .await
        .unwrap();
    assert!(runs::findings(&pool, &shop, clean.0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        (clean.1.compared, clean.1.missing, clean.1.stale),
        (2, 0, 0)
    );
    assert!(clean.1.cost_used > 0, "reading the price list costs points");

    // A merchant edits the price in the admin: no webhook, origin does not know.
    assert!(sim.edit_price_silently(SHOP, L1, v0, 1234));
    assert_eq!(sim.checkout_price(SHOP, L1, v0, 6), Ok(1234));
    let writes = pricing_calls(&sim);

    // Report only: found, nothing changed.
    let (run, counts) =
        price_lists::reconcile(&pool, &client, &shop, None, Mode::Report, Trigger::Operator)
            .await
            .unwrap();
    let found = runs::findings(&pool, &shop, run).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, "price_stale");
    assert_eq!(found[0].record, format!("{L1} variant:{v0}"));
    assert_eq!(found[0].detail["shopify"]["fixed"], 1234);
    assert_eq!(found[0].detail["desired"]["fixed"], 900);
    assert!(found[0].healed_at.is_none());
    assert_eq!((counts.stale, counts.healed), (1, 0));
    assert_eq!(pricing_calls(&sim), writes, "report mode writes nothing");
    assert_eq!(sim.checkout_price(SHOP, L1, v0, 6), Ok(1234));

    // Heal: found once, fixed.
    let (run, counts) =
        price_lists::reconcile(&pool, &client, &shop, None, Mode::Heal, Trigger::Operator)
            .await
            .unwrap();
    let found = runs::findings(&pool, &shop, run).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, "price_stale");
    assert!(found[0].healed_at.is_some());
    assert_eq!((counts.stale, counts.healed, counts.failed), (1, 1, 0));
    assert_eq!(sim.checkout_price(SHOP, L1, v0, 6), Ok(900));
    assert_eq!(
        sim.checkout_price(SHOP, L1, v0, 24),
        Ok(750),
        "only the price was rewritten"
    );
    assert_eq!(pricing_calls(&sim), writes + 1);

    // And a second run finds nothing.
    let (run, counts) =
        price_lists::reconcile(&pool, &client, &shop, None, Mode::Heal, Trigger::Operator)
            .await
            .unwrap();
    assert!(runs::findings(&pool, &shop, run).await.unwrap().is_empty());
    assert_eq!((counts.missing, counts.stale, counts.healed), (0, 0, 0));
    assert_eq!(pricing_calls(&sim), writes + 1);
    let recent = runs::recent(&pool, Some(&shop), 10).await.unwrap();
    assert_eq!(recent.len(), 4, "every run is recorded");
    assert!(recent
        .iter()
        .all(|r| r.finished_at.is_some() && r.error.is_none()));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_run_before_any_push_reports_the_missing_price_list_and_heal_creates_it(pool: PgPool) {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let client = client(&sim);
    let shop = common::domain(SHOP);
    let (v0, _) = negotiated(&pool, &sim).await;

    let (run, counts) =
        price_lists::reconcile(&pool, &client, &shop, None, Mode::Report, Trigger::Schedule)
            .await
            .unwrap();
    let found = runs::findings(&pool, &shop, run).await.unwrap();
    let kinds: Vec<&str> = found.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["price_list_missing"]);
    assert_eq!(counts.missing, 1);
    assert!(
        sim.price_list_of(SHOP, L1).is_none(),
        "report mode creates nothing"
    );

    let (run, counts) =
        price_lists::reconcile(&pool, &client, &shop, None, Mode::Heal, Trigger::Schedule)
            .await
            .unwrap();
    assert_eq!(runs::findings(&pool, &shop, run).await.unwrap().len(), 1);
    assert_eq!((counts.healed, counts.failed), (1, 0));
    assert_eq!(sim.checkout_price(SHOP, L1, v0, 12), Ok(800));
    // The push finds it all written.
    let sync = price_lists::sync(&pool, &client, &shop, None)
        .await
        .unwrap();
    assert_eq!((sync.calls, sync.created), (0, 0));
}
