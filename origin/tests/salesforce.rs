//! The Salesforce sync against the simulator: handlers enqueue in their own transaction, the
//! loop sends parents first by external id, a write whose answer was lost creates nothing
//! twice, permanent failures become dead rows with Salesforce's message, and Salesforce-owned
//! fields are never written.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::salesforce::*;
use salesforce_simulator::{AfterApply, CallKind, Simulator};
use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::payloads::{order, OrderSpec};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_origin::draft_orders::{self, JobLoop};
use wholesail_origin::salesforce::inbound::{self, Inbound};
use wholesail_origin::salesforce::outbox;
use wholesail_origin::salesforce::quotes::WriteBack;
use wholesail_origin::salesforce::runner::Settings;
use wholesail_origin::shops::{ShopConfig, Shops};

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn changes_reach_salesforce_parents_first_by_external_id(pool: PgPool) {
    // The process's recorder, so the sync's latency observations can be read back.
    let metrics = wholesail_origin::ops::recorder();
    let sim = simulator().await;
    // Before the shop is connected, nothing is enqueued.
    let (first, company_id) = order_of(7, T1);
    apply(
        &pool,
        &event(1, "companies/create", &company(company_id, "Northwind", T1)),
    )
    .await;
    let products = apply_catalog(&pool, &first, 100).await;
    assert!(outbox_status(&pool).await.is_empty());

    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    apply(
        &pool,
        &event(
            2,
            "companies/update",
            &company(company_id, "Northwind Ltd", T2),
        ),
    )
    .await;
    let customer = first["customer"]["id"].as_i64().unwrap();
    apply(
        &pool,
        &event(
            3,
            "customers/create",
            &json!({"id": customer, "email": "avery@northwind.example",
            "first_name": "Avery", "last_name": "Buyer", "updated_at": T1}),
        ),
    )
    .await;
    apply(&pool, &event(4, "orders/create", &first)).await;
    // A second change of a pending record does not add a row (coalescing).
    let (again, _) = order_of(7, T2);
    apply(&pool, &event(5, "orders/updated", &again)).await;
    // The order's products, imported before the shop was connected, come with it.
    assert_eq!(
        outbox_status(&pool).await.get("pending"),
        Some(&(3 + products))
    );

    drain(&pool, &sim).await;
    // Applied → Salesforce committed, within the default 300 s (other tests of this binary
    // may add observations; none of them is slow).
    let scrape = metrics.render();
    let good = r#"wholesail_slo_events_total{stage="applied_to_salesforce",result="good"} "#;
    assert!(
        scrape.lines().any(|l| l
            .strip_prefix(good)
            .is_some_and(|n| n.parse::<f64>().unwrap() >= 4.0)),
        "{scrape}"
    );
    assert_eq!(
        outbox_status(&pool).await.get("done"),
        Some(&(3 + products))
    );
    let account = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", &company_id.to_string())
        .expect("the account");
    assert_eq!(account["Name"], json!("Northwind Ltd"));
    let contact = sim
        .record_by_external_id("Contact", "Shopify_Customer_Id__c", &customer.to_string())
        .expect("the contact");
    assert_eq!(contact["AccountId"], json!(account["Id"]));
    let order_id = first["id"].as_i64().unwrap().to_string();
    let sf_order = sim
        .record_by_external_id("Order", "Shopify_Order_Id__c", &order_id)
        .expect("the order");
    assert_eq!(sf_order["AccountId"], json!(account["Id"]));
    // The done row names the record it wrote.
    let written: String =
        sqlx::query_scalar("SELECT salesforce_id FROM salesforce_outbox WHERE object = 'order'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(json!(written), sf_order["Id"]);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_write_whose_answer_was_lost_is_sent_again_without_a_second_record(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let (o, company_id) = order_of(11, T1);
    apply(
        &pool,
        &event(1, "companies/create", &company(company_id, "Contoso", T1)),
    )
    .await;
    apply_catalog(&pool, &o, 100).await;
    drain(&pool, &sim).await;
    apply(&pool, &event(2, "orders/create", &o)).await;
    // Salesforce commits the order, then the answer is a 503.
    sim.fail_after_applying(1, AfterApply::Status(503));
    drain(&pool, &sim).await;
    assert_eq!(
        sim.count("Order"),
        1,
        "the retry updated the record it had created"
    );
    assert_eq!(sim.count("OrderItem"), 2, "and then sent its lines");
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM salesforce_outbox WHERE object = 'order'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 2);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_record_salesforce_refuses_is_a_dead_row_with_its_message(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    // The order's company was never sent: Salesforce cannot resolve the Account.
    let (o, _) = order_of(12, T1);
    apply_catalog(&pool, &o, 100).await;
    apply(&pool, &event(1, "orders/create", &o)).await;
    drain(&pool, &sim).await;
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM salesforce_outbox WHERE object = 'order'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "dead");
    assert!(error.contains("Shopify_Company_Id__c"), "{error}");
    assert_eq!(sim.count("OrderItem"), 0, "no line without its order");
    assert_eq!(sim.count("Order"), 0);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn salesforce_owned_fields_survive_a_sync(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    apply(
        &pool,
        &event(1, "companies/create", &company(42, "Fabrikam", T1)),
    )
    .await;
    drain(&pool, &sim).await;
    let account = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", "42")
        .unwrap();
    // A salesperson describes the account and rates it in Salesforce.
    sim.user_update(
        "Account",
        account["Id"].as_str().unwrap(),
        json!({"Description": "Key account, net 60", "Industry": "Retail"}),
    )
    .unwrap();
    apply(
        &pool,
        &event(2, "companies/update", &company(42, "Fabrikam Inc", T2)),
    )
    .await;
    drain(&pool, &sim).await;
    let after = sim
        .record("Account", account["Id"].as_str().unwrap())
        .unwrap();
    assert_eq!(after["Name"], json!("Fabrikam Inc"));
    assert_eq!(after["Description"], json!("Key account, net 60"));
    assert_eq!(after["Industry"], json!("Retail"));
}

/// An Account created in Salesforce by a person, with the match keys a backfill writes.
fn user_account(sim: &Simulator, name: &str, domain: Option<&str>) -> String {
    let key = wholesail_matching::NameKey::new(name).to_string();
    sim.user_create(
        "Account",
        json!({"Name": name, "Wholesail_Name_Key__c": key, "Wholesail_Domain__c": domain}),
    )
    .unwrap()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_company_already_in_salesforce_is_linked_not_duplicated(pool: PgPool) {
    let sim = simulator().await;
    let existing = user_account(&sim, "Northwind Traders, Inc.", Some("northwind.example"));
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let (mut o, company_id) = order_of(21, T1);
    o["email"] = json!("buyer@northwind.example");
    apply_catalog(&pool, &o, 100).await;
    apply(&pool, &event(1, "orders/create", &o)).await;
    apply(
        &pool,
        &event(
            2,
            "companies/create",
            &company(company_id, "Northwind Traders", T1),
        ),
    )
    .await;
    drain(&pool, &sim).await;
    assert_eq!(sim.count("Account"), 1, "no second Account");
    let linked = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", &company_id.to_string())
        .expect("the external id was written onto the existing Account");
    assert_eq!(linked["Id"], json!(existing));
    let decision: String =
        sqlx::query_scalar("SELECT decision FROM salesforce_links WHERE company LIKE '%Company/%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(decision, "linked");
    // The order went to the linked Account.
    let sf_order = sim
        .record_by_external_id("Order", "Shopify_Order_Id__c", &o["id"].to_string())
        .unwrap();
    assert_eq!(sf_order["AccountId"], json!(existing));
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn an_ambiguous_company_waits_for_review_and_nothing_is_created(pool: PgPool) {
    let sim = simulator().await;
    user_account(&sim, "Contoso Ltd", None);
    user_account(&sim, "Contoso Limited", None);
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    apply(
        &pool,
        &event(1, "companies/create", &company(77, "Contoso", T1)),
    )
    .await;
    drain(&pool, &sim).await;
    assert_eq!(sim.count("Account"), 2, "nothing created while in review");
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM salesforce_outbox")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "dead");
    assert!(error.contains("waiting for review: 2"), "{error}");
    let candidates: Value =
        sqlx::query_scalar("SELECT candidates FROM salesforce_links WHERE decision = 'review'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(candidates.as_array().unwrap().len(), 2, "{candidates}");

    // The operator sees it and links it to the first Account; the next round writes the
    // external id onto that Account and nothing else is created.
    let url = common::database_url(&pool);
    let (listed, _) = common::origin_cli(&url, &["salesforce", "review", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["review"][0]["name"], json!("Contoso"));
    let chosen = candidates[0]["account"].as_str().unwrap().to_owned();
    let company = "gid://shopify/Company/77";
    let (decided, _) = common::origin_cli(
        &url,
        &[
            "salesforce",
            "review",
            "link",
            "--shop",
            SHOP,
            "--company",
            company,
            "--account",
            &chosen,
        ],
    );
    assert!(decided.contains("\"requeued\":1"), "{decided}");
    drain(&pool, &sim).await;
    assert_eq!(sim.count("Account"), 2);
    let linked = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", "77")
        .unwrap();
    assert_eq!(linked["Id"], json!(chosen));
    let (status, _) = common::origin_cli(&url, &["salesforce", "status"]);
    assert!(status.contains("\"linked\":1"), "{status}");
    // A second decision on the same company is refused.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .args([
            "salesforce",
            "review",
            "create",
            "--shop",
            SHOP,
            "--company",
            company,
        ])
        .env_clear()
        .env("WHOLESAIL_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not waiting for review"));
}

/// Records of each object the sync writes.
fn counts(sim: &Simulator) -> Vec<(&'static str, usize)> {
    [
        "Account",
        "Product2",
        "PricebookEntry",
        "Order",
        "OrderItem",
    ]
    .into_iter()
    .map(|o| (o, sim.count(o)))
    .collect()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn an_order_reaches_salesforce_with_lines_on_its_variants_price_book_entries(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let mut spec = OrderSpec::new(31, 3);
    spec.updated_at = T1.to_owned();
    let o = order(&spec);
    let company_id = o["company"]["id"].as_u64().unwrap();
    apply(
        &pool,
        &event(1, "companies/create", &company(company_id, "Tailspin", T1)),
    )
    .await;
    apply_catalog(&pool, &o, 100).await;
    apply(&pool, &event(2, "orders/create", &o)).await;
    drain(&pool, &sim).await;

    let book = sim.standard_pricebook_id();
    let sf_order = sim
        .record_by_external_id("Order", "Shopify_Order_Id__c", &o["id"].to_string())
        .expect("the order");
    assert_eq!(sf_order["Pricebook2Id"], json!(book));
    let lines = o["line_items"].as_array().unwrap();
    assert_eq!(sim.count("OrderItem"), lines.len());
    for line in lines {
        let item = sim
            .record_by_external_id("OrderItem", "Shopify_Line_Id__c", &line["id"].to_string())
            .expect("the order item");
        let entry = sim
            .record_by_external_id(
                "PricebookEntry",
                "Shopify_Variant_Id__c",
                &line["variant_id"].to_string(),
            )
            .expect("the variant's price book entry");
        let product = sim
            .record_by_external_id(
                "Product2",
                "Shopify_Variant_Id__c",
                &line["variant_id"].to_string(),
            )
            .expect("the variant's product");
        assert_eq!(item["OrderId"], sf_order["Id"]);
        assert_eq!(item["PricebookEntryId"], entry["Id"]);
        assert_eq!(item["Product2Id"], product["Id"]);
        assert_eq!(entry["Pricebook2Id"], json!(book));
        assert_eq!(item["Quantity"].as_f64(), line["quantity"].as_f64());
        let price: f64 = line["price"].as_str().unwrap().parse().unwrap();
        assert_eq!(item["UnitPrice"].as_f64(), Some(price));
        assert_eq!(entry["UnitPrice"].as_f64(), Some(price));
        assert_eq!(
            product["Name"],
            json!(format!(
                "{} - {}",
                line["title"].as_str().unwrap(),
                line["variant_title"].as_str().unwrap()
            ))
        );
        assert_eq!(product["StockKeepingUnit"], line["sku"]);
    }
    let before = counts(&sim);

    // The order is edited (a quantity) and its products are updated: the second sync updates
    // the records it wrote (create-only fields left out) and creates none.
    let mut edited = order(&OrderSpec {
        updated_at: T2.to_owned(),
        ..spec.clone()
    });
    edited["line_items"][0]["quantity"] = json!(99);
    apply(&pool, &event(3, "orders/updated", &edited)).await;
    for (i, p) in products_of(&o, T2).iter().enumerate() {
        apply(&pool, &event(200 + i as i64, "products/update", p)).await;
    }
    drain(&pool, &sim).await;
    assert_eq!(counts(&sim), before, "nothing created twice");
    let first = sim
        .record_by_external_id(
            "OrderItem",
            "Shopify_Line_Id__c",
            &lines[0]["id"].to_string(),
        )
        .unwrap();
    assert_eq!(first["Quantity"].as_f64(), Some(99.0));
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM salesforce_outbox WHERE status <> 'done'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(dead, 0);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_product_update_updates_product2_and_the_price_book_entry(pool: PgPool) {
    let sim = simulator().await;
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let product = |title: &str, price: &str, at: &str| {
        json!({"id": 555, "admin_graphql_api_id": "gid://shopify/Product/555", "title": title,
               "status": "active", "updated_at": at,
               "variants": [{"id": 5551, "product_id": 555, "sku": "HEX-M6", "title": "M6",
                             "price": price, "position": 1},
                            {"id": 5552, "product_id": 555, "sku": "HEX-M8", "title": "M8",
                             "price": "3.00", "position": 2}]})
    };
    apply(
        &pool,
        &event(1, "products/create", &product("Hex bolt", "2.50", T1)),
    )
    .await;
    drain(&pool, &sim).await;
    assert_eq!(sim.count("Product2"), 2);
    assert_eq!(sim.count("PricebookEntry"), 2);
    apply(
        &pool,
        &event(
            2,
            "products/update",
            &product("Hex bolt DIN 933", "2.75", T2),
        ),
    )
    .await;
    drain(&pool, &sim).await;
    assert_eq!(sim.count("Product2"), 2, "updated, not created");
    assert_eq!(sim.count("PricebookEntry"), 2);
    let p = sim
        .record_by_external_id("Product2", "Shopify_Variant_Id__c", "5551")
        .unwrap();
    assert_eq!(p["Name"], json!("Hex bolt DIN 933 - M6"));
    assert_eq!(p["IsActive"], json!(true));
    let entry = sim
        .record_by_external_id("PricebookEntry", "Shopify_Variant_Id__c", "5551")
        .unwrap();
    assert_eq!(entry["UnitPrice"].as_f64(), Some(2.75));
    assert_eq!(entry["Product2Id"], p["Id"]);
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn backfill_waits_at_the_budget_reserve_while_live_changes_flow(pool: PgPool) {
    let sim = Simulator::start(salesforce_simulator::Config {
        daily_api_requests: 60,
        ..salesforce_simulator::Config::default()
    })
    .await
    .unwrap();
    // Companies imported before the shop was connected: only a backfill sends them.
    for i in 0..5u64 {
        let name = ["Adatum", "Litware", "Proseware", "Wingtip", "Lamna"][i as usize];
        apply(
            &pool,
            &event(
                i as i64 + 1,
                "companies/create",
                &company(100 + i, name, T1),
            ),
        )
        .await;
    }
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let url = common::database_url(&pool);
    let (out, _) = common::origin_cli(
        &url,
        &["salesforce", "backfill", "--shop", SHOP, "--no-wait"],
    );
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["enqueued"]["companies"], json!(5), "{out}");
    // Again: the pending rows are left alone.
    let (again, _) = common::origin_cli(
        &url,
        &["salesforce", "backfill", "--shop", SHOP, "--no-wait"],
    );
    assert!(again.contains("\"companies\":0"), "{again}");

    // The org's other integrations used half of today's 60 requests: with a reserve of 0.5,
    // the backfill waits.
    let other = client(&sim);
    while sim.api_usage().0 < 30 {
        other.limits().await.unwrap();
    }
    let settings = Settings {
        reserve: 0.5,
        budget_recheck_ms: 50,
        ..test_settings()
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(sync_with(&pool, &sim, settings).run(stop.clone()));
    apply(
        &pool,
        &event(10, "companies/create", &company(200, "Fourth Coffee", T1)),
    )
    .await;
    common::eventually(
        Duration::from_secs(10),
        "the live company is sent",
        || async {
            sim.record_by_external_id("Account", "Shopify_Company_Id__c", "200")
                .is_some()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.count("Account"), 1, "no backfill record sent");
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM salesforce_outbox WHERE lane = 'backfill' AND status = 'pending'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(waiting, 5);

    // A new API day: the backfill drains.
    sim.advance_to_next_day();
    common::eventually(Duration::from_secs(10), "the backfill drains", || async {
        sim.count("Account") == 6
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(outbox_status(&pool).await.get("done"), Some(&6));
}

// ---- Salesforce → Wholesail: the change subscription and quote to cash ----

fn inbound_settings() -> inbound::Settings {
    inbound::Settings {
        retry_base_ms: 50,
        retry_max_ms: 200,
        write_back_poll_ms: 50,
        ..inbound::Settings::default()
    }
}

/// SHOP's change subscription, in-process (no Shopify shop behind it unless `shops` has one).
fn subscription(pool: &PgPool, sim: &Simulator, shops: Arc<Shops>) -> Inbound {
    Inbound::new(
        pool.clone(),
        common::domain(SHOP),
        client(sim),
        sim.pubsub_url(),
        shops,
        inbound_settings(),
    )
}

/// Makes the subscription resume after the simulator's newest event (the first subscription
/// of an org starts at LATEST, which a test cannot synchronise with).
async fn resume_after_newest(pool: &PgPool, sim: &Simulator) {
    let newest = sim.change_events().last().expect("an event").replay_id;
    sqlx::query(
        "INSERT INTO salesforce_replay (shop, replay_id, committed_at) VALUES ($1, $2, now())
         ON CONFLICT (shop) DO UPDATE SET replay_id = $2",
    )
    .bind(SHOP)
    .bind(newest.to_be_bytes().to_vec())
    .execute(pool)
    .await
    .unwrap();
}

/// The replay position stored for SHOP, as the simulator's counter.
async fn stored_replay(pool: &PgPool) -> Option<u64> {
    let id: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT replay_id FROM salesforce_replay WHERE shop = $1")
            .bind(SHOP)
            .fetch_optional(pool)
            .await
            .unwrap();
    id.map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

/// Waits until the subscription has applied every event the simulator holds.
async fn caught_up(pool: &PgPool, sim: &Simulator) {
    let newest = sim.change_events().last().expect("an event").replay_id;
    common::eventually(
        Duration::from_secs(20),
        "the subscription catches up",
        || async { stored_replay(pool).await >= Some(newest) },
    )
    .await;
}

async fn owned_fields(pool: &PgPool, account: &str) -> Value {
    sqlx::query_scalar(
        "SELECT fields FROM salesforce_owned_fields WHERE object = 'Account' AND salesforce_id = $1",
    )
    .bind(account)
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or(Value::Null)
}

/// A company written to Salesforce by the sync; its Account's id.
async fn synced_company(pool: &PgPool, sim: &Simulator, id: u64, name: &str) -> String {
    outbox::connect(pool, &common::domain(SHOP)).await.unwrap();
    apply(pool, &event(1, "companies/create", &company(id, name, T1))).await;
    drain(pool, sim).await;
    let account = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", &id.to_string())
        .unwrap();
    account["Id"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn salesforce_owned_changes_land_and_drift_is_restored_after_an_outage(pool: PgPool) {
    let sim = simulator().await;
    let account = synced_company(&pool, &sim, 42, "Fabrikam").await;
    resume_after_newest(&pool, &sim).await;
    let shops = Arc::new(Shops::new(vec![]).unwrap());

    let stop = CancellationToken::new();
    let task = tokio::spawn(subscription(&pool, &sim, shops.clone()).run(stop.clone()));
    // The sync's own write (a rename) comes back as a change event and is not drift.
    apply(
        &pool,
        &event(2, "companies/update", &company(42, "Fabrikam Inc", T2)),
    )
    .await;
    drain(&pool, &sim).await;
    sim.user_update("Account", &account, json!({"Rating": "Hot"}))
        .unwrap();
    caught_up(&pool, &sim).await;
    assert_eq!(owned_fields(&pool, &account).await["Rating"], json!("Hot"));
    let drift: i64 = sqlx::query_scalar("SELECT count(*) FROM salesforce_drift")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(drift, 0, "the sync's own writes are not drift");

    // Outage: the subscriber is down while a salesperson edits the Account.
    stop.cancel();
    task.await.unwrap();
    let resume_from = stored_replay(&pool).await;
    sim.user_update(
        "Account",
        &account,
        json!({"Description": "Net 60", "Name": "Fabrikam (do not use)"}),
    )
    .unwrap();
    sim.user_update("Account", &account, json!({"Rating": "Warm"}))
        .unwrap();

    let stop = CancellationToken::new();
    let task = tokio::spawn(subscription(&pool, &sim, shops).run(stop.clone()));
    caught_up(&pool, &sim).await;
    assert!(stored_replay(&pool).await > resume_from);
    let fields = owned_fields(&pool, &account).await;
    assert_eq!(fields["Rating"], json!("Warm"));
    assert_eq!(fields["Description"], json!("Net 60"));
    // The rename is drift: reported once, and the company is sent again.
    let (fields, record, restore): (Vec<String>, Option<String>, bool) = sqlx::query_as(
        "SELECT fields, record_key, restore_enqueued FROM salesforce_drift WHERE salesforce_id = $1",
    )
    .bind(&account)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(fields, vec!["Name".to_owned()]);
    assert_eq!(record.as_deref(), Some("gid://shopify/Company/42"));
    assert!(restore);
    drain(&pool, &sim).await;
    let restored = sim.record("Account", &account).unwrap();
    assert_eq!(restored["Name"], json!("Fabrikam Inc"));
    assert_eq!(restored["Description"], json!("Net 60"));
    // The restore is the sync's own write again: still one drift report.
    caught_up(&pool, &sim).await;
    let drift: i64 = sqlx::query_scalar("SELECT count(*) FROM salesforce_drift")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(drift, 1);
    stop.cancel();
    task.await.unwrap();
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn an_expired_replay_id_falls_back_to_a_query_catch_up_and_says_so(pool: PgPool) {
    let sim = simulator().await;
    let account = synced_company(&pool, &sim, 43, "Contoso").await;
    resume_after_newest(&pool, &sim).await;
    sqlx::query("UPDATE salesforce_replay SET committed_at = now() - interval '1 minute'")
        .execute(&pool)
        .await
        .unwrap();
    // While nothing listens, the Account is rated; then the events age out of retention.
    sim.user_update("Account", &account, json!({"Rating": "Cold"}))
        .unwrap();
    sim.advance_clock(Duration::from_secs(73 * 3600));

    let stop = CancellationToken::new();
    let task = tokio::spawn(
        subscription(&pool, &sim, Arc::new(Shops::new(vec![]).unwrap())).run(stop.clone()),
    );
    common::eventually(Duration::from_secs(20), "the catch-up", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM salesforce_catchups WHERE finished_at IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
            == 1
    })
    .await;
    let (reason, records): (String, i32) =
        sqlx::query_as("SELECT reason, records FROM salesforce_catchups")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(reason.contains("replay id is no longer held"), "{reason}");
    assert!(records >= 1);
    assert_eq!(owned_fields(&pool, &account).await["Rating"], json!("Cold"));
    // From here on the subscription follows new events again.
    sim.user_update("Account", &account, json!({"Rating": "Hot"}))
        .unwrap();
    common::eventually(Duration::from_secs(20), "the next change", || async {
        owned_fields(&pool, &account).await["Rating"] == json!("Hot")
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}

/// SHOP's change subscription and the quote write-back, in-process until `stop`.
fn quote_to_cash(
    pool: &PgPool,
    sim: &Simulator,
    shops: Arc<Shops>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(subscription(pool, sim, shops).run(stop.clone())),
        tokio::spawn(
            WriteBack::new(
                pool.clone(),
                HashMap::from([(common::domain(SHOP), client(sim))]),
                Duration::from_millis(50),
            )
            .run(stop.clone()),
        ),
    ]
}

/// A salesperson approves `quote`; the Quote once `field` is written onto it.
async fn approve(sim: &Simulator, quote: &str, field: &str) -> serde_json::Map<String, Value> {
    sim.user_update("Quote", quote, json!({"Status": "Approved"}))
        .unwrap();
    common::eventually(Duration::from_secs(60), field, || async {
        sim.record("Quote", quote)
            .unwrap()
            .get(field)
            .is_some_and(Value::is_string)
    })
    .await;
    sim.record("Quote", quote).unwrap()
}

const QUOTE_LOCATION: &str = "gid://shopify/CompanyLocation/7700001";

/// A Shopify shop of `products` products (variant 0 of each synced into origin) and company
/// `company`'s one location.
async fn shopify_shop(pool: &PgPool, products: u64, company: u64) -> shopify_simulator::Simulator {
    let mut config = shopify_simulator::SimulatorConfig::default();
    config.shops[0].catalog = shopify_simulator::CatalogSpec::new(5, products);
    let sim = shopify_simulator::Simulator::start(config).await.unwrap();
    let catalog = sim.catalog(shopify_simulator::DEFAULT_SHOP);
    for i in 0..products {
        let v = catalog.variant(i, 0).unwrap();
        sqlx::query(
            "INSERT INTO variants (shop, id, product_id, sku, title, price, inventory_item_id)
             VALUES ($1, $2, $3, $4, $5, $6 / 100.0, $7)",
        )
        .bind(SHOP)
        .bind(v.id as i64)
        .bind(v.product_id as i64)
        .bind(&v.sku)
        .bind(&v.title)
        .bind(v.price_cents as i64)
        .bind(v.inventory_item_id as i64)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO company_locations (shop, admin_graphql_api_id, company_admin_graphql_api_id,
                                        name, shipping_country_code)
         VALUES ($1, $2, $3, 'Receiving dock', 'US')",
    )
    .bind(SHOP)
    .bind(QUOTE_LOCATION)
    .bind(format!("gid://shopify/Company/{company}"))
    .execute(pool)
    .await
    .unwrap();
    sim
}

/// A Quote of `lines` lines (variant 0 of products 0..lines) on the Account of `company`,
/// created by a salesperson; its id.
fn user_quote(
    sim: &Simulator,
    shopify: &shopify_simulator::Simulator,
    company: u64,
    lines: u64,
) -> String {
    let account = sim
        .user_create(
            "Account",
            json!({"Name": "Northwind", "Shopify_Company_Id__c": company.to_string()}),
        )
        .unwrap();
    let book = sim.records("Pricebook2")[0]["Id"].clone();
    let quote = sim
        .user_create(
            "Quote",
            json!({"Name": "Q-1001", "AccountId": account, "Pricebook2Id": book, "Status": "Draft"}),
        )
        .unwrap();
    let catalog = shopify.catalog(shopify_simulator::DEFAULT_SHOP);
    for i in 0..lines {
        let variant = catalog.variant(i, 0).unwrap().id.to_string();
        let product = sim
            .user_create(
                "Product2",
                json!({"Name": format!("Product {i}"), "Shopify_Variant_Id__c": variant}),
            )
            .unwrap();
        let entry = sim
            .user_create(
                "PricebookEntry",
                json!({"Pricebook2Id": book, "Product2Id": product, "UnitPrice": 10,
                       "IsActive": true, "Shopify_Variant_Id__c": variant}),
            )
            .unwrap();
        sim.user_create(
            "QuoteLineItem",
            json!({"QuoteId": quote, "PricebookEntryId": entry, "Quantity": 1 + i % 4,
                   "UnitPrice": 10}),
        )
        .unwrap();
    }
    quote
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_quote_approved_in_salesforce_comes_back_with_its_checkout_links(pool: PgPool) {
    const LINES: u64 = 600;
    const COMPANY: u64 = 77;
    let shopify = shopify_shop(&pool, LINES, COMPANY).await;
    let sim = simulator().await;
    let quote = user_quote(&sim, &shopify, COMPANY, LINES);
    resume_after_newest(&pool, &sim).await;
    let shops = Arc::new(
        Shops::new(vec![ShopConfig {
            domain: common::domain(SHOP),
            url: Some(shopify.base_url().into()),
            access_token: SecretString::from(shopify_simulator::DEFAULT_TOKEN),
            api_version: Some("2026-01".into()),
        }])
        .unwrap(),
    );
    let stop = CancellationToken::new();
    let mut tasks = quote_to_cash(&pool, &sim, shops.clone(), &stop);
    tasks.push(tokio::spawn(
        JobLoop::new(
            pool.clone(),
            shops,
            draft_orders::Settings {
                backoff_base_ms: 50,
                backoff_max_ms: 200,
                poll_interval_ms: 100,
                ..draft_orders::Settings::default()
            },
            "test-jobs".into(),
        )
        .run(stop.clone()),
    ));

    let written = approve(&sim, &quote, "Shopify_Invoice_Urls__c").await;
    let drafts = shopify.draft_orders(shopify_simulator::DEFAULT_SHOP);
    assert_eq!(drafts.len(), 2, "600 lines are two drafts of ≤ 499");
    let urls: Vec<&str> = written["Shopify_Invoice_Urls__c"]
        .as_str()
        .unwrap()
        .lines()
        .collect();
    let mut expected: Vec<&str> = drafts.iter().map(|d| d.invoice_url.as_str()).collect();
    expected.sort_unstable();
    let mut got = urls.clone();
    got.sort_unstable();
    assert_eq!(got, expected);
    let status = written["Shopify_Draft_Status__c"].as_str().unwrap();
    assert!(status.starts_with("completed: 2 draft orders"), "{status}");
    let lines: usize = drafts.iter().map(|d| d.lines.len()).sum();
    assert_eq!(lines as u64, LINES);

    // Approving the same quote again makes nothing new.
    sim.user_update("Quote", &quote, json!({"Status": "Draft"}))
        .unwrap();
    sim.user_update("Quote", &quote, json!({"Status": "Approved"}))
        .unwrap();
    caught_up(&pool, &sim).await;
    assert_eq!(
        shopify.draft_orders(shopify_simulator::DEFAULT_SHOP).len(),
        2
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM draft_order_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_quote_that_cannot_become_draft_orders_says_why_on_the_quote(pool: PgPool) {
    let sim = simulator().await;
    // The Account is not a Shopify company: nothing to bill.
    let account = sim
        .user_create("Account", json!({"Name": "Walk-in"}))
        .unwrap();
    let quote = sim
        .user_create(
            "Quote",
            json!({"Name": "Q-2", "AccountId": account, "Status": "Draft"}),
        )
        .unwrap();
    resume_after_newest(&pool, &sim).await;
    let stop = CancellationToken::new();
    let tasks = quote_to_cash(&pool, &sim, Arc::new(Shops::new(vec![]).unwrap()), &stop);
    let written = approve(&sim, &quote, "Shopify_Draft_Status__c").await;
    let status = written["Shopify_Draft_Status__c"].as_str().unwrap();
    assert!(
        status.starts_with("rejected: ") && status.contains("Shopify_Company_Id__c"),
        "{status}"
    );
    assert!(written
        .get("Shopify_Invoice_Urls__c")
        .is_none_or(Value::is_null));
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_admin_api_shows_the_sync_and_takes_the_operators_decisions(pool: PgPool) {
    let sim = simulator().await;
    user_account(&sim, "Initech LLC", None);
    user_account(&sim, "Initech Limited", None);
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    apply(
        &pool,
        &event(1, "companies/create", &company(88, "Initech", T1)),
    )
    .await;
    drain(&pool, &sim).await;
    let addr = common::serve_routes(pool.clone(), 1 << 20).await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("http://{addr}{path}"))
            .bearer_auth(common::ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    let (code, status) = call(get.clone(), "/admin/salesforce/status", None).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["matches"]["review"], json!(1));
    assert_eq!(status["inbound"]["quotes_unwritten"], json!(0));
    let (_, review) = call(
        get.clone(),
        &format!("/admin/salesforce/review?shop={SHOP}"),
        None,
    )
    .await;
    assert_eq!(review["review"][0]["name"], json!("Initech"));
    let (_, dead) = call(get.clone(), "/admin/salesforce/dead-letters", None).await;
    assert_eq!(dead["dead"].as_array().unwrap().len(), 1, "{dead}");

    // Link without an Account is refused; create decides and re-queues the parked row.
    let company = "gid://shopify/Company/88";
    let (code, refused) = call(
        post.clone(),
        "/admin/salesforce/review/link",
        Some(json!({"shop": SHOP, "company": company})),
    )
    .await;
    assert_eq!(code, 400, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("account"));
    let (code, decided) = call(
        post.clone(),
        "/admin/salesforce/review/create",
        Some(json!({"shop": SHOP, "company": company})),
    )
    .await;
    assert_eq!(code, 200, "{decided}");
    assert_eq!(decided["requeued"], json!(1));
    let (code, again) = call(
        post.clone(),
        "/admin/salesforce/review/create",
        Some(json!({"shop": SHOP, "company": company})),
    )
    .await;
    assert_eq!(code, 404, "{again}");
    assert_eq!(again["error"]["code"], json!("not_found"));
    drain(&pool, &sim).await;
    assert_eq!(sim.count("Account"), 3, "the operator chose a new Account");

    let (code, unknown) = call(
        post.clone(),
        "/admin/salesforce/backfill",
        Some(json!({"shop": "other.myshopify.com"})),
    )
    .await;
    assert_eq!(code, 409, "{unknown}");
    let (code, backfill) = call(
        post,
        "/admin/salesforce/backfill",
        Some(json!({"shop": SHOP})),
    )
    .await;
    assert_eq!(code, 200, "{backfill}");
    assert_eq!(backfill["enqueued"]["companies"], json!(1), "{backfill}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action LIKE '%/admin/salesforce/%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(audited >= 4, "writes are audited: {audited}");
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn one_candidate_query_serves_a_batch_of_companies_and_each_is_decided_alone(pool: PgPool) {
    let sim = simulator().await;
    let existing = user_account(&sim, "Northwind Traders, Inc.", Some("northwind.example"));
    user_account(&sim, "Contoso Ltd", None);
    user_account(&sim, "Contoso Limited", None);
    outbox::connect(&pool, &common::domain(SHOP)).await.unwrap();
    let (mut o, northwind) = order_of(21, T1);
    o["email"] = json!("buyer@northwind.example");
    apply_catalog(&pool, &o, 100).await;
    apply(&pool, &event(1, "orders/create", &o)).await;
    // Three companies in one batch: one to link, one ambiguous, one new.
    for (i, (id, name)) in [
        (northwind, "Northwind Traders"),
        (4_401, "Contoso"),
        (4_402, "Tailspin Toys"),
    ]
    .into_iter()
    .enumerate()
    {
        apply(
            &pool,
            &event(2 + i as i64, "companies/create", &company(id, name, T1)),
        )
        .await;
    }
    let queries_before = sim.call_count(CallKind::Query);
    drain(&pool, &sim).await;
    let decisions: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT company, decision FROM salesforce_links")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(
        decisions[&format!("gid://shopify/Company/{northwind}")],
        "linked"
    );
    assert_eq!(decisions["gid://shopify/Company/4401"], "review");
    assert_eq!(decisions["gid://shopify/Company/4402"], "created");
    let linked = sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", &northwind.to_string())
        .unwrap();
    assert_eq!(linked["Id"], json!(existing));
    assert_eq!(sim.count("Account"), 4, "only Tailspin Toys was created");
    // Queries of the round: the standard price book and one candidate query for the three
    // companies (one per company before).
    assert_eq!(sim.call_count(CallKind::Query) - queries_before, 2);
}
