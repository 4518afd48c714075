//! What Salesforce receives beyond the plain upserts: buyers of a linked company become the
//! Account's existing Contacts (never a second one), cancellations and refunds reach the
//! Order, and a backfill past the threshold goes through Bulk API 2.0 jobs while live rows
//! keep their Collections upserts and go first.

mod common;

use common::salesforce::*;
use salesforce_simulator::CallKind;
use serde_json::{json, Value};
use sqlx::PgPool;
use wholesail_origin::salesforce::outbox;
use wholesail_origin::salesforce::runner::Settings;

/// Distinct company names.
const TREES: [&str; 26] = [
    "Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Ginkgo", "Hazel", "Ironwood", "Juniper",
    "Kapok", "Larch", "Maple", "Nutmeg", "Oak", "Pine", "Quince", "Rowan", "Spruce", "Teak",
    "Ulmus", "Viburnum", "Walnut", "Xylosma", "Yew", "Zelkova",
];

/// A customers/create of `order`'s buyer with `email`.
fn buyer(order: &Value, email: &str) -> Value {
    json!({"id": order["customer"]["id"], "email": email, "first_name": "Buyer",
           "last_name": email.split('@').next(), "updated_at": T1})
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_buyer_of_a_linked_company_becomes_its_existing_contact_not_a_second_one(pool: PgPool) {
    let sim = simulator().await;
    let key = wholesail_matching::NameKey::new("Northwind Traders, Inc.").to_string();
    let account = sim
        .user_create(
            "Account",
            json!({"Name": "Northwind Traders, Inc.", "Wholesail_Name_Key__c": key,
                   "Wholesail_Domain__c": "northwind.example"}),
        )
        .unwrap();
    let contact = |email: &str| {
        sim.user_create(
            "Contact",
            json!({"LastName": "Existing", "Email": email, "AccountId": account}),
        )
        .unwrap()
    };
    let avery = contact("Avery@Northwind.example");
    let dups = [
        contact("dup@northwind.example"),
        contact("dup@northwind.example"),
    ];
    // Another company's Contact with the same address is not this buyer.
    sim.user_create(
        "Contact",
        json!({"LastName": "Elsewhere", "Email": "new@northwind.example"}),
    )
    .unwrap();

    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    // Three buyers of one company (seeds 21 and 521 share it; the third is renamed).
    let (first, company_id) = order_of(21, T1);
    let (second, _) = order_of(521, T1);
    let (mut third, _) = order_of(1021, T1);
    third["customer"]["id"] = json!(7_000_000_009_999u64);
    let emails = [
        "AVERY@northwind.example",
        "new@northwind.example",
        "dup@northwind.example",
    ];
    let mut id = 1;
    apply(
        &pool,
        &event(
            id,
            "companies/create",
            &company(company_id, "Northwind Traders", T1),
        ),
    )
    .await;
    for (order, email) in [&first, &second, &third].into_iter().zip(emails) {
        id += 10;
        apply_catalog(&pool, order, id).await;
        apply(
            &pool,
            &event(id + 5, "customers/create", &buyer(order, email)),
        )
        .await;
        apply(&pool, &event(id + 6, "orders/create", order)).await;
    }
    drain(&pool, &sim).await;

    let external = |order: &Value| order["customer"]["id"].to_string();
    let linked = sim
        .record_by_external_id("Contact", "Shopify_Customer_Id__c", &external(&first))
        .expect("the buyer's Contact");
    assert_eq!(linked["Id"], json!(avery), "the existing Contact, linked");
    assert_eq!(linked["AccountId"], json!(account));
    let joined = sim
        .record_by_external_id("Contact", "Shopify_Customer_Id__c", &external(&second))
        .expect("a new Contact");
    assert_eq!(
        joined["AccountId"],
        json!(account),
        "a new email joins the Account"
    );
    assert!(sim
        .record_by_external_id("Contact", "Shopify_Customer_Id__c", &external(&third))
        .is_none());
    assert_eq!(sim.count("Contact"), 5, "4 existing + 1 new");
    let (status, error): (String, String) = sqlx::query_as(
        "SELECT status, last_error FROM salesforce_outbox WHERE object = 'contact' AND record_key = $1",
    )
    .bind(external(&third))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "dead");
    for dup in &dups {
        assert!(error.contains(dup.as_str()), "{error}");
    }
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM salesforce_outbox WHERE status = 'dead'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(dead, 1, "only the buyer with duplicates waits");
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_cancelled_and_refunded_order_says_so_on_its_salesforce_order(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let (mut order, company_id) = order_of(7, T1);
    apply(
        &pool,
        &event(1, "companies/create", &company(company_id, "Northwind", T1)),
    )
    .await;
    apply_catalog(&pool, &order, 100).await;
    apply(&pool, &event(2, "orders/create", &order)).await;
    drain(&pool, &sim).await;
    let key = order["id"].to_string();
    let sent = sim
        .record_by_external_id("Order", "Shopify_Order_Id__c", &key)
        .unwrap();
    assert_eq!(sent["Status"], "Draft");
    assert_eq!(sent["Shopify_Financial_Status__c"], "pending");
    let total: f64 = order["total_price"].as_str().unwrap().parse().unwrap();
    assert_eq!(sent["Shopify_Total__c"].as_f64(), Some(total));

    order["cancelled_at"] = json!(T2);
    order["cancel_reason"] = json!("customer");
    order["financial_status"] = json!("refunded");
    order["updated_at"] = json!(T2);
    apply(&pool, &event(3, "orders/cancelled", &order)).await;
    drain(&pool, &sim).await;
    let cancelled = sim
        .record_by_external_id("Order", "Shopify_Order_Id__c", &key)
        .unwrap();
    assert_eq!(cancelled["Id"], sent["Id"], "the same Order");
    assert_eq!(cancelled["Status"], "Cancelled");
    assert_eq!(cancelled["Shopify_Financial_Status__c"], "refunded");
    assert_eq!((sim.count("Order"), sim.count("OrderItem")), (1, 2));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_backfill_past_the_threshold_goes_in_bulk_jobs_after_the_live_rows(pool: PgPool) {
    let sim = simulator().await;
    // 25 companies with a buyer, an order of 2 lines and its products, before connecting.
    let mut id = 0;
    for seed in 1..=25 {
        let (mut order, company_id) = order_of(seed, T1);
        // Unrelated companies: their own names and email domains.
        let name = TREES[seed as usize];
        order["email"] = json!(format!("buyer@{}.example", name.to_lowercase()));
        apply(
            &pool,
            &event(
                id,
                "companies/create",
                &company(company_id, &format!("{name} Supply"), T1),
            ),
        )
        .await;
        id += 1 + apply_catalog(&pool, &order, id + 1).await;
        apply(&pool, &event(id, "orders/create", &order)).await;
        id += 1;
    }
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let enqueued = outbox::backfill(&pool, &common::domain(SHOP), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(enqueued.orders, 25);
    // A live order of a new company, after the backfill was enqueued.
    let (mut live, company_id) = order_of(26, T1);
    live["email"] = json!("buyer@live.example");
    apply(
        &pool,
        &event(id, "companies/create", &company(company_id, "Live Co", T1)),
    )
    .await;
    apply_catalog(&pool, &live, id + 1).await;
    apply(&pool, &event(id + 10, "orders/create", &live)).await;

    let settings = Settings {
        bulk_threshold: 20,
        bulk_min_records: 10,
        bulk_poll_ms: 20,
        ..test_settings()
    };
    let running = Running::start([sync_with(&pool, &sim, settings)]);
    common::eventually(
        std::time::Duration::from_secs(30),
        "the outbox drains",
        || drained(&pool),
    )
    .await;
    running.stop().await;

    let status = outbox_status(&pool).await;
    assert_eq!(status.get("dead"), None, "{status:?}");
    assert_eq!(
        (
            sim.count("Account"),
            sim.count("Order"),
            sim.count("OrderItem")
        ),
        (26, 26, 52)
    );
    for seed in 1..=25 {
        let (order, company_id) = order_of(seed, T1);
        let sent = sim
            .record_by_external_id("Order", "Shopify_Order_Id__c", &order["id"].to_string())
            .unwrap();
        let account = sim
            .record_by_external_id("Account", "Shopify_Company_Id__c", &company_id.to_string())
            .unwrap();
        assert_eq!(
            sent["AccountId"], account["Id"],
            "order {seed} on its Account"
        );
    }
    // Five objects of the backfill (no buyers), one job each: create, upload, close, ≥ 1
    // poll, 3 result files.
    assert!(
        sim.call_count(CallKind::Bulk) >= 5 * 7,
        "{}",
        sim.call_count(CallKind::Bulk)
    );
    // The live rows went first, in one Collections upsert per object.
    assert!(sim.call_count(CallKind::Collections) <= 6);
    let (live_done, first_backfill_done): (bool, bool) = sqlx::query_as(
        "SELECT bool_and(done_at < (SELECT min(done_at) FROM salesforce_outbox
                                     WHERE lane = 'backfill')),
                count(*) > 0
         FROM salesforce_outbox WHERE lane = 'live'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(live_done && first_backfill_done);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_backfill_since_a_date_takes_the_newer_orders_and_reports_its_progress(pool: PgPool) {
    let sim = simulator().await;
    let (mut old, company_id) = order_of(3, T1);
    old["created_at"] = json!("2025-06-01T09:00:00Z");
    let (new, _) = order_of(503, T1);
    apply(
        &pool,
        &event(1, "companies/create", &company(company_id, "Northwind", T1)),
    )
    .await;
    for (i, order) in [&old, &new].into_iter().enumerate() {
        let first = 10 * (i as i64 + 1);
        apply_catalog(&pool, order, first).await;
        apply(&pool, &event(first + 5, "orders/create", order)).await;
    }
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let since = time::macros::datetime!(2026-01-01 0:00 UTC);
    let enqueued = outbox::backfill(&pool, &common::domain(SHOP), Some(since))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((enqueued.companies, enqueued.orders), (1, 1));
    let before = outbox::backfill_progress(&pool, &common::domain(SHOP), enqueued.after_id)
        .await
        .unwrap();
    let rows =
        (enqueued.companies + enqueued.customers + enqueued.products + enqueued.orders) as i64;
    assert_eq!((before.rows, before.done, before.dead), (rows, 0, 0));
    assert!(!before.finished());

    drain(&pool, &sim).await;
    let after = outbox::backfill_progress(&pool, &common::domain(SHOP), enqueued.after_id)
        .await
        .unwrap();
    assert_eq!((after.rows, after.done), (rows, rows));
    assert!(after.finished());
    assert!(sim
        .record_by_external_id("Order", "Shopify_Order_Id__c", &new["id"].to_string())
        .is_some());
    assert!(sim
        .record_by_external_id("Order", "Shopify_Order_Id__c", &old["id"].to_string())
        .is_none());
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_company_location_puts_its_shipping_address_on_the_company_account(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    apply(
        &pool,
        &event(1, "companies/create", &company(41, "Northwind", T1)),
    )
    .await;
    drain(&pool, &sim).await;
    let location = |city: &str, at: &str| {
        json!({"admin_graphql_api_id": "gid://shopify/CompanyLocation/3", "name": "DC",
               "created_at": "2025-01-01T00:00:00Z", "updated_at": at,
               "company": {"admin_graphql_api_id": "gid://shopify/Company/41"},
               "shipping_address": {"city": city, "zip": "43004", "country_code": "US",
                                    "province_code": "OH"}})
    };
    apply(
        &pool,
        &event(2, "company_locations/create", &location("Columbus", T1)),
    )
    .await;
    drain(&pool, &sim).await;
    let account = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", "41")
        .unwrap();
    assert_eq!(
        (
            &account["ShippingCity"],
            &account["ShippingState"],
            &account["ShippingPostalCode"],
            &account["ShippingCountry"]
        ),
        (
            &json!("Columbus"),
            &json!("OH"),
            &json!("43004"),
            &json!("US")
        )
    );
    apply(
        &pool,
        &event(3, "company_locations/update", &location("Dublin", T2)),
    )
    .await;
    drain(&pool, &sim).await;
    let moved = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", "41")
        .unwrap();
    assert_eq!(
        (&moved["Id"], &moved["ShippingCity"]),
        (&account["Id"], &json!("Dublin"))
    );
    assert_eq!(sim.count("Account"), 1);
}
