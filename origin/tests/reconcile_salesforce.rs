//! Reconciliation of the Salesforce scope against the simulator: Shopify-owned fields edited
//! and records deleted in Salesforce without a change event reaching origin, and orders whose
//! outbox rows were lost, are found exactly, healed through the outbox, and not found again;
//! a report-only run changes nothing; changes flowing during a run are never drift; a run
//! stops at the API budget's reserve.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::salesforce::*;
use salesforce_simulator::Simulator;
use serde_json::{json, Value};
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use wholesail_origin::reconcile::runs::{self, Counts, Mode, Scope, Trigger, Window};
use wholesail_origin::reconcile::salesforce::{reconcile, SalesforceReconcileError};
use wholesail_origin::salesforce::outbox;
use wholesail_origin::salesforce::runner::Settings;

/// Distinct company names.
const TREES: [&str; 8] = [
    "Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Ginkgo", "Hazel",
];

/// A customers/create of `order`'s buyer, at `at`.
fn buyer(order: &Value, at: &str) -> Value {
    json!({"id": order["customer"]["id"], "email": "purchasing@northwind.example",
           "first_name": "Avery", "last_name": "Buyer", "updated_at": at})
}

/// Applies, for each of `seeds`, a company, its buyer, the catalog products and a 2-line
/// order; returns the orders.
async fn seed(pool: &PgPool, seeds: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    let mut orders = Vec::new();
    for seed in seeds {
        let (order, company_id) = order_of(seed, T1);
        let id = seed as i64 * 100;
        let name = format!("{} Supply", TREES[seed as usize % TREES.len()]);
        apply(
            pool,
            &event(id, "companies/create", &company(company_id, &name, T1)),
        )
        .await;
        apply_catalog(pool, &order, id + 10).await;
        apply(pool, &event(id + 1, "customers/create", &buyer(&order, T1))).await;
        apply(pool, &event(id + 2, "orders/create", &order)).await;
        orders.push(order);
    }
    orders
}

/// Applies orders whose outbox rows are then lost (as are those of their catalog products).
async fn lost_orders(pool: &PgPool, seeds: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    let mut orders = Vec::new();
    for seed in seeds {
        let (order, _) = order_of(seed, T1);
        apply_catalog(pool, &order, seed as i64 * 100 + 10).await;
        apply(pool, &event(seed as i64 * 100, "orders/create", &order)).await;
        orders.push(order);
    }
    sqlx::query("DELETE FROM salesforce_outbox WHERE status = 'pending'")
        .execute(pool)
        .await
        .unwrap();
    orders
}

/// One run over everything with `settings`.
async fn run_with(
    pool: &PgPool,
    sim: &Simulator,
    settings: &Settings,
    mode: Mode,
) -> Result<(i64, Counts), SalesforceReconcileError> {
    reconcile(
        pool,
        &client(sim),
        settings,
        &common::domain(SHOP),
        Window::default(),
        mode,
        Trigger::Operator,
    )
    .await
}

/// One run over everything.
async fn run(pool: &PgPool, sim: &Simulator, mode: Mode) -> (i64, Counts) {
    run_with(pool, sim, &Settings::default(), mode)
        .await
        .unwrap()
}

/// Run `run`'s findings as (kind, record), sorted.
async fn found(pool: &PgPool, run: i64) -> Vec<(String, String)> {
    let mut found: Vec<_> = runs::findings(pool, &common::domain(SHOP), run)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.kind, f.record))
        .collect();
    found.sort();
    found
}

/// The Salesforce record of `object` whose external id `field` is `value`.
fn sf(sim: &Simulator, object: &str, field: &str, value: &Value) -> serde_json::Map<String, Value> {
    let value = match value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    sim.record_by_external_id(object, field, &value)
        .unwrap_or_else(|| panic!("{object} {value}"))
}

/// The record's Id.
fn id_of(record: &serde_json::Map<String, Value>) -> String {
    record["Id"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn drift_in_salesforce_is_found_exactly_healed_and_a_second_run_finds_nothing(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let orders = seed(&pool, 1..=6).await;
    drain(&pool, &sim).await;
    // Orders of companies 1 and 2 whose outbox rows were lost.
    let lost = lost_orders(&pool, 501..=502).await;

    // Edits and deletes nobody tells origin about.
    let line = |o: &Value, field: &str| o["line_items"][0][field].clone();
    let account = sf(&sim, "Account", "Shopify_Company_Id__c", &json!(9_000_001));
    let order = sf(&sim, "Order", "Shopify_Order_Id__c", &orders[1]["id"]);
    let item = sf(
        &sim,
        "OrderItem",
        "Shopify_Line_Id__c",
        &line(&orders[2], "id"),
    );
    let product = sf(
        &sim,
        "Product2",
        "Shopify_Variant_Id__c",
        &line(&orders[3], "variant_id"),
    );
    let edits = [
        (
            "Account",
            &account,
            json!({"Name": "Renamed in Salesforce"}),
        ),
        (
            "Order",
            &order,
            json!({"Shopify_Financial_Status__c": "voided"}),
        ),
        ("OrderItem", &item, json!({"Quantity": 77})),
        (
            "Product2",
            &product,
            json!({"Name": "Edited in Salesforce"}),
        ),
    ];
    for (object, record, fields) in edits {
        sim.user_update_unseen(object, &id_of(record), fields)
            .unwrap();
    }
    // Salesforce-owned fields are Salesforce's to change: not drift.
    let owned = sf(&sim, "Account", "Shopify_Company_Id__c", &json!(9_000_005));
    sim.user_update_unseen(
        "Account",
        &id_of(&owned),
        json!({"Description": "Key account"}),
    )
    .unwrap();
    let family = sf(
        &sim,
        "Product2",
        "Shopify_Variant_Id__c",
        &line(&orders[4], "variant_id"),
    );
    sim.user_update_unseen("Product2", &id_of(&family), json!({"Family": "Hardware"}))
        .unwrap();
    for o in &orders[4..6] {
        let contact = sf(
            &sim,
            "Contact",
            "Shopify_Customer_Id__c",
            &o["customer"]["id"],
        );
        sim.user_delete_unseen("Contact", &id_of(&contact)).unwrap();
    }

    let (first, counts) = run(&pool, &sim, Mode::Heal).await;
    let product_key = line(&orders[3], "product_id");
    let mut expected = vec![
        (
            "salesforce_stale",
            "account gid://shopify/Company/9000001".to_owned(),
        ),
        ("salesforce_stale", format!("order {}", orders[1]["id"])),
        ("salesforce_stale", format!("order {}", orders[2]["id"])),
        ("salesforce_stale", format!("product {product_key}")),
        (
            "salesforce_missing",
            format!("contact {}", orders[4]["customer"]["id"]),
        ),
        (
            "salesforce_missing",
            format!("contact {}", orders[5]["customer"]["id"]),
        ),
        ("salesforce_never_sent", format!("order {}", lost[0]["id"])),
        ("salesforce_never_sent", format!("order {}", lost[1]["id"])),
    ]
    .into_iter()
    .map(|(k, r)| (k.to_owned(), r))
    .collect::<Vec<_>>();
    expected.sort();
    assert_eq!(found(&pool, first).await, expected);
    assert_eq!(
        (counts.stale, counts.missing, counts.healed, counts.failed),
        (4, 4, 8, 0)
    );
    assert!(counts.compared > 0 && counts.cost_used > 0, "{counts:?}");
    let findings = runs::findings(&pool, &common::domain(SHOP), first)
        .await
        .unwrap();
    let detail = |record: &str| {
        findings
            .iter()
            .find(|f| f.record == record)
            .map(|f| f.detail.clone())
            .unwrap()
    };
    let renamed = detail("account gid://shopify/Company/9000001");
    assert_eq!(renamed["fields"], json!(["Name"]));
    assert_eq!(renamed["salesforce_id"], account["Id"]);
    assert_eq!(
        detail(&format!("order {}", orders[2]["id"]))["object"],
        "OrderItem"
    );
    assert!(findings
        .iter()
        .all(|f| f.healed_at.is_some() && f.error.is_none()));
    let listed = runs::recent(&pool, Some(&common::domain(SHOP)), 1)
        .await
        .unwrap();
    assert_eq!(listed[0].scope, Scope::Salesforce);
    assert!(listed[0].finished_at.is_some() && listed[0].error.is_none());

    drain(&pool, &sim).await;
    let healed = sf(&sim, "Account", "Shopify_Company_Id__c", &json!(9_000_001));
    assert_eq!(healed["Name"], json!(format!("{} Supply", TREES[1])));
    assert_eq!(healed["Id"], account["Id"], "updated, not recreated");
    let item = sf(
        &sim,
        "OrderItem",
        "Shopify_Line_Id__c",
        &line(&orders[2], "id"),
    );
    assert_eq!(
        item["Quantity"].as_f64(),
        line(&orders[2], "quantity").as_f64()
    );
    let kept = sf(&sim, "Account", "Shopify_Company_Id__c", &json!(9_000_005));
    assert_eq!(
        kept["Description"], "Key account",
        "Salesforce's field kept"
    );
    for o in &orders[4..6] {
        sf(
            &sim,
            "Contact",
            "Shopify_Customer_Id__c",
            &o["customer"]["id"],
        );
    }
    for o in &lost {
        sf(&sim, "Order", "Shopify_Order_Id__c", &o["id"]);
        sf(&sim, "OrderItem", "Shopify_Line_Id__c", &line(o, "id"));
    }

    let (second, counts) = run(&pool, &sim, Mode::Heal).await;
    assert_eq!(found(&pool, second).await, Vec::new());
    assert_eq!((counts.stale, counts.missing, counts.healed), (0, 0, 0));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_report_only_run_records_the_drift_and_changes_nothing(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let orders = seed(&pool, 1..=2).await;
    drain(&pool, &sim).await;
    let lost = lost_orders(&pool, 501..=501).await;
    let account = sf(&sim, "Account", "Shopify_Company_Id__c", &json!(9_000_001));
    sim.user_update_unseen("Account", &id_of(&account), json!({"Name": "Renamed"}))
        .unwrap();
    let contact = sf(
        &sim,
        "Contact",
        "Shopify_Customer_Id__c",
        &orders[1]["customer"]["id"],
    );
    sim.user_delete_unseen("Contact", &id_of(&contact)).unwrap();
    let expected = vec![
        (
            "salesforce_missing".to_owned(),
            format!("contact {}", orders[1]["customer"]["id"]),
        ),
        (
            "salesforce_never_sent".to_owned(),
            format!("order {}", lost[0]["id"]),
        ),
        (
            "salesforce_stale".to_owned(),
            "account gid://shopify/Company/9000001".to_owned(),
        ),
    ];
    let outbox_before = outbox_status(&pool).await;

    for _ in 0..2 {
        let (report, counts) = run(&pool, &sim, Mode::Report).await;
        assert_eq!(found(&pool, report).await, expected, "found every time");
        assert_eq!((counts.stale, counts.missing, counts.healed), (1, 2, 0));
        let findings = runs::findings(&pool, &common::domain(SHOP), report)
            .await
            .unwrap();
        assert!(findings.iter().all(|f| f.healed_at.is_none()));
    }
    assert_eq!(
        outbox_status(&pool).await,
        outbox_before,
        "nothing enqueued"
    );
    let account = sf(&sim, "Account", "Shopify_Company_Id__c", &json!(9_000_001));
    assert_eq!(account["Name"], "Renamed");
}

/// `T1` plus `seconds`.
fn later(seconds: i64) -> String {
    (OffsetDateTime::parse(T1, &Rfc3339).unwrap() + time::Duration::seconds(seconds))
        .format(&Rfc3339)
        .unwrap()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn changes_flowing_during_a_run_are_never_drift(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    seed(&pool, 1..=5).await;
    drain(&pool, &sim).await;

    // Renames, buyer and order updates keep arriving and the sync keeps sending them.
    let running = Running::start([sync(&pool, &sim)]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (pool, stop) = (pool.clone(), stop.clone());
        async move {
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                let seed = 1 + i as u64 % 5;
                let at = later(i);
                let (mut order, company_id) = order_of(seed, &at);
                order["financial_status"] = json!(["paid", "pending"][i as usize % 2]);
                let name = format!("{} Supply v{i}", TREES[seed as usize]);
                let id = 10_000 + i * 10;
                apply(
                    &pool,
                    &event(id, "companies/update", &company(company_id, &name, &at)),
                )
                .await;
                let mut customer = buyer(&order, &at);
                customer["last_name"] = json!(format!("Buyer v{i}"));
                apply(&pool, &event(id + 1, "customers/update", &customer)).await;
                apply(&pool, &event(id + 2, "orders/updated", &order)).await;
                i += 1;
                tokio::task::yield_now().await;
            }
            i
        }
    });
    for _ in 0..3 {
        let (during, counts) = run(&pool, &sim, Mode::Heal).await;
        assert_eq!(found(&pool, during).await, Vec::new(), "{counts:?}");
        assert!(counts.compared > 0);
    }
    stop.store(true, Ordering::Relaxed);
    let changes = writer.await.unwrap();
    assert!(changes > 3, "changes flowed during the runs ({changes})");
    common::eventually(
        std::time::Duration::from_secs(20),
        "the outbox drains",
        || drained(&pool),
    )
    .await;
    running.stop().await;
    let (after, _) = run(&pool, &sim, Mode::Heal).await;
    assert_eq!(found(&pool, after).await, Vec::new());
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_run_stops_at_the_api_budget_reserve_and_says_so(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    seed(&pool, 1..=1).await;
    drain(&pool, &sim).await;
    let all_reserved = Settings {
        reserve: 1.0,
        ..Settings::default()
    };
    let stopped = run_with(&pool, &sim, &all_reserved, Mode::Heal).await;
    assert!(
        matches!(stopped, Err(SalesforceReconcileError::Reserve)),
        "{stopped:?}"
    );
    let listed = runs::recent(&pool, Some(&common::domain(SHOP)), 1)
        .await
        .unwrap();
    assert_eq!(listed[0].scope, Scope::Salesforce);
    assert!(listed[0].finished_at.is_some());
    assert!(
        listed[0].error.as_deref().unwrap().contains("reserve"),
        "{:?}",
        listed[0].error
    );
    assert_eq!(listed[0].counts.cost_used, 0, "no query was made");
}
