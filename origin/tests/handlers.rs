//! The topic handlers against real PostgreSQL: out-of-order and duplicate delivery, line and
//! variant sets, tombstones, compliance, invalid payloads. Each test calls `handlers::apply`
//! directly, in a transaction as the worker does, with payloads stripped by the real allowlist.

use serde_json::{json, Value};
use shopify_simulator::payloads::{order, OrderSpec};
use sqlx::PgPool;
use wholesail_origin::handlers::{self, HandlerError, InboxEvent, Outcome};

const SHOP: &str = "northwind.myshopify.com";

/// An event as the worker would hand it over, with a fresh webhook id per delivery.
fn event(topic: &str, payload: &Value) -> InboxEvent {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A delete payload intake would quarantine (not the delete shape) is handed over as it
    // is, so the handlers' own checks stay tested.
    let stripped = match wholesail_webhook::strip(topic, payload.to_string().as_bytes()) {
        Ok(s) => s.json,
        Err(wholesail_webhook::StripError::NotDeleteShape(_)) => payload.to_string(),
        Err(e) => panic!("test payloads are JSON: {e}"),
    };
    InboxEvent {
        id,
        webhook_id: format!("wh-{id}"),
        event_id: Some(format!("ev-{id}")),
        shop: shop_domain(SHOP),
        topic: topic.to_owned(),
        payload: stripped,
    }
}

/// Applies `event` in its own transaction, as the worker does.
async fn apply(pool: &PgPool, event: &InboxEvent) -> Result<Outcome, HandlerError> {
    let mut tx = pool.begin().await.unwrap();
    let outcome = handlers::apply(&mut tx, event).await;
    if outcome.is_ok() {
        tx.commit().await.unwrap();
    }
    outcome
}

/// A generated order (`lines` lines) at `updated_at`.
fn order_at(seed: u64, lines: usize, updated_at: &str) -> Value {
    let mut spec = OrderSpec::new(seed, lines);
    spec.updated_at = updated_at.to_owned();
    order(&spec)
}

fn order_id(seed: u64) -> i64 {
    OrderSpec::new(seed, 0).id as i64
}

const T1: &str = "2026-11-23T10:00:00-05:00";
const T2: &str = "2026-11-23T10:05:00-05:00";
const T3: &str = "2026-11-23T10:10:00-05:00";

/// The order row's mutable fields, as text, for whole-row comparisons.
async fn order_row(pool: &PgPool, id: i64) -> (String, Option<String>, String, i32) {
    sqlx::query_as(
        "SELECT source_updated_at::text, financial_status, total_price::text, line_count
         FROM orders WHERE shop = $1 AND id = $2",
    )
    .bind(SHOP)
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The order's lines as (id, quantity, price text), ordered by position.
async fn lines(pool: &PgPool, id: i64) -> Vec<(i64, i32, String)> {
    sqlx::query_as(
        "SELECT id, quantity, price::text FROM order_lines
         WHERE shop = $1 AND order_id = $2 ORDER BY position",
    )
    .bind(SHOP)
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE shop = $1"))
        .bind(SHOP)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn order_create_then_update_keeps_the_newest(pool: PgPool) {
    let created = order_at(1, 3, T1);
    let mut updated = order_at(1, 3, T2);
    updated["financial_status"] = json!("paid");
    updated["total_price"] = json!("1234.56");

    assert_eq!(
        apply(&pool, &event("orders/create", &created))
            .await
            .unwrap(),
        Outcome::Applied
    );
    assert_eq!(
        apply(&pool, &event("orders/updated", &updated))
            .await
            .unwrap(),
        Outcome::Applied
    );

    let (at, status, total, line_count) = order_row(&pool, order_id(1)).await;
    assert_eq!(at, "2026-11-23 15:05:00+00");
    assert_eq!(status.as_deref(), Some("paid"));
    assert_eq!(total, "1234.56", "money is exact numeric, not float");
    assert_eq!(line_count, 3);
    assert_eq!(lines(&pool, order_id(1)).await.len(), 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn order_update_before_create_ends_with_the_update(pool: PgPool) {
    let created = order_at(2, 2, T1);
    let mut updated = order_at(2, 2, T2);
    updated["financial_status"] = json!("paid");

    assert_eq!(
        apply(&pool, &event("orders/updated", &updated))
            .await
            .unwrap(),
        Outcome::Applied
    );
    assert_eq!(
        apply(&pool, &event("orders/create", &created))
            .await
            .unwrap(),
        Outcome::Stale
    );

    let (at, status, _, _) = order_row(&pool, order_id(2)).await;
    assert_eq!(at, "2026-11-23 15:05:00+00");
    assert_eq!(status.as_deref(), Some("paid"));
    assert_eq!(count(&pool, "orders").await, 1);
    assert_eq!(count(&pool, "order_lines").await, 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn stale_update_after_a_newer_one_changes_nothing(pool: PgPool) {
    let mut newest = order_at(3, 4, T3);
    newest["financial_status"] = json!("refunded");
    // The stale version has one line fewer and another status: neither may leak in.
    let mut stale = order_at(3, 3, T2);
    stale["financial_status"] = json!("paid");

    apply(&pool, &event("orders/updated", &newest))
        .await
        .unwrap();
    let row_before = order_row(&pool, order_id(3)).await;
    let lines_before = lines(&pool, order_id(3)).await;
    let applied_before: String =
        sqlx::query_scalar("SELECT applied_at::text FROM orders WHERE id = $1")
            .bind(order_id(3))
            .fetch_one(&pool)
            .await
            .unwrap();

    assert_eq!(
        apply(&pool, &event("orders/paid", &stale)).await.unwrap(),
        Outcome::Stale
    );

    assert_eq!(order_row(&pool, order_id(3)).await, row_before);
    assert_eq!(lines(&pool, order_id(3)).await, lines_before);
    let applied_after: String =
        sqlx::query_scalar("SELECT applied_at::text FROM orders WHERE id = $1")
            .bind(order_id(3))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(applied_after, applied_before, "the row was not rewritten");
}

#[sqlx::test(migrations = "../migrations")]
async fn same_event_from_two_subscriptions_has_one_effect(pool: PgPool) {
    let body = order_at(4, 5, T1);
    // Two subscriptions: same payload, different webhook ids.
    let first = event("orders/create", &body);
    let second = event("orders/create", &body);
    assert_ne!(first.webhook_id, second.webhook_id);

    assert_eq!(apply(&pool, &first).await.unwrap(), Outcome::Applied);
    assert_eq!(apply(&pool, &second).await.unwrap(), Outcome::Stale);

    assert_eq!(count(&pool, "orders").await, 1);
    assert_eq!(count(&pool, "order_lines").await, 5);
}

#[sqlx::test(migrations = "../migrations")]
async fn same_second_update_with_different_content_wins(pool: PgPool) {
    let created = order_at(5, 1, T1);
    let mut tagged = order_at(5, 1, T1);
    tagged["tags"] = json!("wholesale, net30, priority");

    apply(&pool, &event("orders/create", &created))
        .await
        .unwrap();
    assert_eq!(
        apply(&pool, &event("orders/updated", &tagged))
            .await
            .unwrap(),
        Outcome::Applied
    );

    let tags: String = sqlx::query_scalar("SELECT tags FROM orders WHERE id = $1")
        .bind(order_id(5))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tags, "wholesale, net30, priority");
}

#[sqlx::test(migrations = "../migrations")]
async fn five_hundred_line_order_applies_and_removed_lines_are_deleted(pool: PgPool) {
    let full = order_at(6, 500, T1);
    assert_eq!(
        apply(&pool, &event("orders/create", &full)).await.unwrap(),
        Outcome::Applied
    );
    let before = lines(&pool, order_id(6)).await;
    assert_eq!(before.len(), 500);
    let expected: Vec<(i64, i32, String)> = full["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["id"].as_i64().unwrap(),
                l["quantity"].as_i64().unwrap() as i32,
                l["price"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        before, expected,
        "every line stored in payload order, prices exact"
    );

    // The update removes every other line and changes one quantity.
    let mut edited = order_at(6, 500, T2);
    let kept: Vec<Value> = edited["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .step_by(2)
        .cloned()
        .collect();
    edited["line_items"] = Value::Array(kept);
    edited["line_items"][0]["quantity"] = json!(999);
    assert_eq!(
        apply(&pool, &event("orders/edited-as-updated", &edited))
            .await
            .unwrap(),
        Outcome::Ignored
    );
    assert_eq!(
        apply(&pool, &event("orders/updated", &edited))
            .await
            .unwrap(),
        Outcome::Applied
    );

    let after = lines(&pool, order_id(6)).await;
    assert_eq!(after.len(), 250);
    assert_eq!(after[0], (expected[0].0, 999, expected[0].2.clone()));
    let after_ids: Vec<i64> = after.iter().map(|l| l.0).collect();
    let expected_ids: Vec<i64> = expected.iter().step_by(2).map(|l| l.0).collect();
    assert_eq!(after_ids, expected_ids);
    assert_eq!(order_row(&pool, order_id(6)).await.3, 250);
}

#[sqlx::test(migrations = "../migrations")]
async fn order_delete_is_final_even_against_a_late_create(pool: PgPool) {
    let created = order_at(7, 2, T1);
    let id = order_id(7);
    let deleted = json!({"id": id});

    // The delete arrives first; the create is late and must not resurrect the order.
    assert_eq!(
        apply(&pool, &event("orders/delete", &deleted))
            .await
            .unwrap(),
        Outcome::Applied
    );
    assert_eq!(
        apply(&pool, &event("orders/create", &created))
            .await
            .unwrap(),
        Outcome::Stale
    );
    assert_eq!(
        apply(&pool, &event("orders/delete", &deleted))
            .await
            .unwrap(),
        Outcome::Stale
    );

    let (deleted_at, name): (bool, Option<String>) = sqlx::query_as(
        "SELECT deleted_at IS NOT NULL, name FROM orders WHERE shop = $1 AND id = $2",
    )
    .bind(SHOP)
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(deleted_at);
    assert_eq!(name, None);
    assert_eq!(count(&pool, "order_lines").await, 0);
}

fn product(updated_at: &str, variants: &[(i64, &str, &str)]) -> Value {
    json!({
        "id": 8_000_000_000_001i64,
        "admin_graphql_api_id": "gid://shopify/Product/8000000000001",
        "title": "Hex Bolt M8", "handle": "hex-bolt-m8", "status": "active",
        "vendor": "Northwind Industrial", "product_type": "Fasteners", "tags": "bolts",
        "body_html": "<p>dropped by the allowlist</p>",
        "created_at": "2026-01-01T00:00:00Z", "published_at": "2026-01-02T00:00:00Z",
        "updated_at": updated_at,
        "variants": variants.iter().enumerate().map(|(i, (id, sku, price))| json!({
            "id": id, "product_id": 8_000_000_000_001i64, "sku": sku, "price": price,
            "compare_at_price": null, "position": i + 1, "inventory_quantity": 10,
            "inventory_item_id": id + 1000, "weight": 1.5, "updated_at": updated_at
        })).collect::<Vec<_>>(),
        "images": [{"src": "https://cdn.example/bolt.png"}]
    })
}

#[sqlx::test(migrations = "../migrations")]
async fn product_variants_follow_the_newest_product_and_delete_is_final(pool: PgPool) {
    let v1 = product(
        T1,
        &[(1, "B-1", "0.10"), (2, "B-2", "0.20"), (3, "B-3", "0.30")],
    );
    let v2 = product(
        T2,
        &[(1, "B-1", "0.11"), (3, "B-3", "0.30"), (4, "B-4", "0.40")],
    );

    assert_eq!(
        apply(&pool, &event("products/update", &v2)).await.unwrap(),
        Outcome::Applied
    );
    assert_eq!(
        apply(&pool, &event("products/create", &v1)).await.unwrap(),
        Outcome::Stale
    );
    let variants: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, sku, price::text FROM variants WHERE shop = $1 ORDER BY id")
            .bind(SHOP)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        variants,
        vec![
            (1, "B-1".into(), "0.11".into()),
            (3, "B-3".into(), "0.30".into()),
            (4, "B-4".into(), "0.40".into())
        ]
    );

    let deleted = json!({"id": 8_000_000_000_001i64});
    assert_eq!(
        apply(&pool, &event("products/delete", &deleted))
            .await
            .unwrap(),
        Outcome::Applied
    );
    let v3 = product(T3, &[(1, "B-1", "0.12")]);
    assert_eq!(
        apply(&pool, &event("products/update", &v3)).await.unwrap(),
        Outcome::Stale
    );
    assert_eq!(count(&pool, "variants").await, 0);
    let title: Option<String> =
        sqlx::query_scalar("SELECT title FROM products WHERE deleted_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        title.as_deref(),
        Some("Hex Bolt M8"),
        "the tombstone keeps the last version"
    );
}

fn level(available: i64, updated_at: &str) -> Value {
    json!({"inventory_item_id": 44, "location_id": 55, "available": available,
           "updated_at": updated_at,
           "admin_graphql_api_id": "gid://shopify/InventoryLevel/55?inventory_item_id=44"})
}

#[sqlx::test(migrations = "../migrations")]
async fn inventory_levels_out_of_order_keep_the_newest(pool: PgPool) {
    let arrivals = [
        (level(7, T2), Outcome::Applied),
        (level(9, T1), Outcome::Stale),
        (level(3, T3), Outcome::Applied),
        (level(7, T2), Outcome::Stale),
    ];
    for (payload, expected) in arrivals {
        assert_eq!(
            apply(&pool, &event("inventory_levels/update", &payload))
                .await
                .unwrap(),
            expected
        );
    }
    let (available, rows): (i32, i64) =
        sqlx::query_as("SELECT max(available), count(*) FROM inventory_levels WHERE shop = $1")
            .bind(SHOP)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((available, rows), (3, 1));
}

fn customer(id: i64, updated_at: &str) -> Value {
    json!({"id": id, "email": "avery@northwind.example", "first_name": "Avery",
           "last_name": "Buyer", "phone": "+16145550100", "state": "enabled",
           "tags": "b2b", "tax_exempt": false, "created_at": "2025-01-10T12:00:00-05:00",
           "updated_at": updated_at, "addresses": [{"address1": "1 Main"}]})
}

#[sqlx::test(migrations = "../migrations")]
async fn customer_redact_erases_personal_data_and_audits_once(pool: PgPool) {
    // The generated order's customer id is 7_000_000_000_000 + seed % 1000.
    let customer_id = 7_000_000_000_009i64;
    apply(
        &pool,
        &event("customers/create", &customer(customer_id, T1)),
    )
    .await
    .unwrap();
    apply(&pool, &event("orders/create", &order_at(9, 2, T1)))
        .await
        .unwrap();
    let other_order = order_at(10, 1, T1);
    apply(&pool, &event("orders/create", &other_order))
        .await
        .unwrap();

    let redact = json!({"shop_id": 954889, "shop_domain": SHOP,
                        "customer": {"id": customer_id, "email": "avery@northwind.example",
                                     "phone": "+16145550100"},
                        "orders_to_redact": [order_id(9)]});
    assert_eq!(
        apply(&pool, &event("customers/redact", &redact))
            .await
            .unwrap(),
        Outcome::Applied
    );
    // A second subscription's delivery of the same request: no second audit row.
    assert_eq!(
        apply(&pool, &event("customers/redact", &redact))
            .await
            .unwrap(),
        Outcome::Stale
    );

    let pii: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT unnest(ARRAY[email, first_name, last_name, phone, state]) FROM customers
         WHERE id = $1",
    )
    .bind(customer_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(pii, [None, None, None, None, Some("enabled".into())]);
    let order_pii: (Option<String>, Option<String>, Option<String>, String) =
        sqlx::query_as("SELECT email, shipping_zip, shipping_city, name FROM orders WHERE id = $1")
            .bind(order_id(9))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(order_pii, (None, None, None, "#1009".into()));
    let other_email: Option<String> = sqlx::query_scalar("SELECT email FROM orders WHERE id = $1")
        .bind(order_id(10))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        other_email.is_some(),
        "another customer's order is untouched"
    );

    // Later versions cannot bring the data back.
    apply(
        &pool,
        &event("customers/update", &customer(customer_id, T3)),
    )
    .await
    .unwrap();
    apply(&pool, &event("orders/updated", &order_at(9, 2, T3)))
        .await
        .unwrap();
    let (email, order_email): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT email FROM customers WHERE id = $1), (SELECT email FROM orders WHERE id = $2)",
    )
    .bind(customer_id)
    .bind(order_id(9))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((email, order_email), (None, None));

    let audit: Vec<(String, String, Value)> =
        sqlx::query_as("SELECT topic, subject, details FROM compliance_audit")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "customers/redact");
    assert_eq!(audit[0].1, format!("customer:{customer_id}"));
    assert_eq!(audit[0].2["customer_rows_erased"], json!(1));
    assert_eq!(audit[0].2["orders_erased"], json!([order_id(9)]));
    assert!(
        !audit[0].2.to_string().contains("northwind.example"),
        "no PII in the audit"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn redaction_before_the_customer_arrives_keeps_later_data_erased(pool: PgPool) {
    let redact = json!({"shop_domain": SHOP, "customer": {"id": 77}, "orders_to_redact": []});
    apply(&pool, &event("customers/redact", &redact))
        .await
        .unwrap();
    assert_eq!(
        apply(&pool, &event("customers/create", &customer(77, T1)))
            .await
            .unwrap(),
        Outcome::Applied
    );
    let (email, tags): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT email, tags FROM customers WHERE id = 77")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((email, tags.as_deref()), (None, Some("b2b")));
}

#[sqlx::test(migrations = "../migrations")]
async fn data_request_records_what_we_hold_without_the_data(pool: PgPool) {
    let customer_id = 7_000_000_000_011i64;
    apply(
        &pool,
        &event("customers/create", &customer(customer_id, T1)),
    )
    .await
    .unwrap();
    apply(&pool, &event("orders/create", &order_at(11, 1, T1)))
        .await
        .unwrap();
    let request = json!({"shop_id": 954889, "shop_domain": SHOP,
                         "customer": {"id": customer_id, "email": "avery@northwind.example"},
                         "orders_requested": [order_id(11)], "data_request": {"id": 9999}});
    assert_eq!(
        apply(&pool, &event("customers/data_request", &request))
            .await
            .unwrap(),
        Outcome::Applied
    );

    let details: Value = sqlx::query_scalar(
        "SELECT details FROM compliance_audit WHERE topic = 'customers/data_request'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(details["data_request_id"], json!(9999));
    assert_eq!(
        details["held"]["customer_row"]["personal_fields"],
        json!(["email", "first_name", "last_name", "phone"])
    );
    assert_eq!(details["held"]["orders_held"], json!([order_id(11)]));
    assert!(!details.to_string().contains("avery@"));
}

#[sqlx::test(migrations = "../migrations")]
async fn compliance_payload_naming_another_shop_is_rejected(pool: PgPool) {
    let redact = json!({"shop_domain": "other.myshopify.com", "customer": {"id": 1}});
    let err = apply(&pool, &event("customers/redact", &redact))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not the delivering shop"), "{err}");
    assert_eq!(count(&pool, "customers").await, 0);
}

fn shop(updated_at: &str) -> Value {
    json!({"id": 954889, "name": "Northwind", "email": "owner@northwind.example",
           "domain": "northwind.example", "myshopify_domain": SHOP, "plan_name": "plus",
           "updated_at": updated_at})
}

#[sqlx::test(migrations = "../migrations")]
async fn app_uninstalled_marks_the_shop_once_and_audits(pool: PgPool) {
    apply(&pool, &event("shop/update", &shop(T1)))
        .await
        .unwrap();
    let uninstall = shop(T2);
    assert_eq!(
        apply(&pool, &event("app/uninstalled", &uninstall))
            .await
            .unwrap(),
        Outcome::Applied
    );
    assert_eq!(
        apply(&pool, &event("app/uninstalled", &uninstall))
            .await
            .unwrap(),
        Outcome::Stale
    );
    let (uninstalled, plan): (bool, Option<String>) =
        sqlx::query_as("SELECT uninstalled_at IS NOT NULL, plan_name FROM shops WHERE shop = $1")
            .bind(SHOP)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(uninstalled);
    assert_eq!(plan.as_deref(), Some("plus"));
    assert_eq!(count(&pool, "compliance_audit").await, 1);
    // The data stays until shop/redact.
    apply(&pool, &event("orders/create", &order_at(12, 1, T1)))
        .await
        .unwrap();
    assert_eq!(count(&pool, "orders").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn shop_redact_deletes_operational_data_and_later_events_are_not_applied(pool: PgPool) {
    apply(&pool, &event("orders/create", &order_at(13, 3, T1)))
        .await
        .unwrap();
    apply(
        &pool,
        &event("products/create", &product(T1, &[(1, "B-1", "0.10")])),
    )
    .await
    .unwrap();
    apply(&pool, &event("customers/create", &customer(5, T1)))
        .await
        .unwrap();
    apply(&pool, &event("inventory_levels/update", &level(1, T1)))
        .await
        .unwrap();
    // Another shop's data must survive.
    let mut other = event("orders/create", &order_at(14, 1, T1));
    other.shop = shop_domain("other.myshopify.com");
    apply(&pool, &other).await.unwrap();

    let redact = json!({"shop_id": 954889, "shop_domain": SHOP});
    assert_eq!(
        apply(&pool, &event("shop/redact", &redact)).await.unwrap(),
        Outcome::Applied
    );
    for table in [
        "orders",
        "order_lines",
        "products",
        "variants",
        "customers",
        "inventory_levels",
    ] {
        assert_eq!(count(&pool, table).await, 0, "{table}");
    }
    let others: i64 = sqlx::query_scalar("SELECT count(*) FROM order_lines WHERE shop <> $1")
        .bind(SHOP)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(others, 1);

    // A late (or replayed) event for the redacted shop is not applied.
    let late = event("orders/updated", &order_at(13, 3, T2));
    assert_eq!(apply(&pool, &late).await.unwrap(), Outcome::Stale);
    assert_eq!(count(&pool, "orders").await, 0);

    let details: Value =
        sqlx::query_scalar("SELECT details FROM compliance_audit WHERE topic = 'shop/redact'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(details["rows_deleted"]["order_lines"], json!(3));
    assert_eq!(details["rows_deleted"]["variants"], json!(1));
}

#[sqlx::test(migrations = "../migrations")]
async fn companies_and_locations_are_keyed_by_gid_and_guarded(pool: PgPool) {
    let company = |name: &str, at: &str| {
        json!({"admin_graphql_api_id": "gid://shopify/Company/1", "name": name,
               "external_id": "NW-1", "note": null, "customer_since": "2025-01-01T00:00:00Z",
               "created_at": "2025-01-01T00:00:00Z", "updated_at": at,
               "main_contact_admin_graphql_api_id": "gid://shopify/CompanyContact/2"})
    };
    apply(
        &pool,
        &event("companies/update", &company("Northwind Ltd", T2)),
    )
    .await
    .unwrap();
    assert_eq!(
        apply(&pool, &event("companies/create", &company("Northwind", T1)))
            .await
            .unwrap(),
        Outcome::Stale
    );
    let location = json!({"admin_graphql_api_id": "gid://shopify/CompanyLocation/3",
        "name": "Columbus DC", "external_id": "DC-1", "created_at": "2025-01-01T00:00:00Z",
        "updated_at": T1, "phone": "+1",
        "company": {"admin_graphql_api_id": "gid://shopify/Company/1", "name": "Northwind Ltd"},
        "shipping_address": {"city": "Columbus", "zip": "43004", "country_code": "US",
                             "province_code": "OH", "address1": "dropped"}});
    assert_eq!(
        apply(&pool, &event("company_locations/create", &location))
            .await
            .unwrap(),
        Outcome::Applied
    );
    let row: (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT c.name, l.company_admin_graphql_api_id, l.shipping_province_code
         FROM companies c JOIN company_locations l
           ON l.shop = c.shop AND l.company_admin_graphql_api_id = c.admin_graphql_api_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "Northwind Ltd".into(),
            Some("gid://shopify/Company/1".into()),
            Some("OH".into())
        )
    );
    let gone = json!({"admin_graphql_api_id": "gid://shopify/CompanyLocation/3"});
    assert_eq!(
        apply(&pool, &event("company_locations/delete", &gone))
            .await
            .unwrap(),
        Outcome::Applied
    );
    assert_eq!(
        apply(&pool, &event("company_locations/update", &location))
            .await
            .unwrap(),
        Outcome::Stale
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn invalid_payloads_are_rejected_with_the_reason(pool: PgPool) {
    let mut no_lines = order_at(15, 1, T1);
    no_lines.as_object_mut().unwrap().remove("line_items");
    let mut no_updated_at = order_at(15, 1, T1);
    no_updated_at.as_object_mut().unwrap().remove("updated_at");
    let mut bad_money = order_at(15, 1, T1);
    bad_money["line_items"][0]["price"] = json!("12,50");
    let mut bad_time = order_at(15, 1, T1);
    bad_time["updated_at"] = json!("yesterday");
    let mut twice = order_at(15, 2, T1);
    twice["line_items"][1]["id"] = twice["line_items"][0]["id"].clone();
    let cases = [
        ("orders/create", no_lines, "missing field `line_items`"),
        (
            "orders/updated",
            no_updated_at,
            "missing field `updated_at`",
        ),
        (
            "orders/create",
            bad_money,
            "invalid value: string \"12,50\"",
        ),
        (
            "orders/create",
            bad_time,
            "invalid value: string \"yesterday\", expected an RFC 3339 timestamp",
        ),
        ("orders/create", twice, "appears twice"),
        (
            "products/update",
            json!({"id": 1, "updated_at": T1}),
            "missing field `variants`",
        ),
        (
            "inventory_levels/update",
            json!({"location_id": 1, "updated_at": T1}),
            "missing field `inventory_item_id`",
        ),
        (
            "products/delete",
            json!({"title": "no id"}),
            "missing field `id`",
        ),
    ];
    for (topic, payload, reason) in cases {
        match apply(&pool, &event(topic, &payload)).await {
            Err(HandlerError::InvalidPayload {
                topic: t,
                reason: r,
            }) => {
                assert_eq!(t, topic);
                assert!(
                    r.contains(reason),
                    "{topic}: {r:?} should mention {reason:?}"
                );
            }
            other => panic!("{topic}: expected InvalidPayload, got {other:?}"),
        }
    }
    assert_eq!(count(&pool, "orders").await, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn topics_without_a_handler_are_ignored(pool: PgPool) {
    let payload = json!({"id": 1, "token": "abc"});
    for topic in ["carts/update", "inventory_items/update"] {
        assert_eq!(
            apply(&pool, &event(topic, &payload)).await.unwrap(),
            Outcome::Ignored
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn bulk_finish_of_an_operation_no_run_owns_changes_nothing(pool: PgPool) {
    let payload = json!({
        "admin_graphql_api_id": "gid://shopify/BulkOperation/1", "status": "completed"
    });
    assert_eq!(
        apply(&pool, &event("bulk_operations/finish", &payload))
            .await
            .unwrap(),
        Outcome::Stale
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_versions_of_one_order_end_with_the_newest_lines(pool: PgPool) {
    // Two workers (or two origin processes) apply two newer versions of one order at once.
    apply(&pool, &event("orders/create", &order_at(16, 10, T1)))
        .await
        .unwrap();
    let mut first = pool.begin().await.unwrap();
    let grown = event("orders/updated", &order_at(16, 20, T2));
    assert_eq!(
        handlers::apply(&mut first, &grown).await.unwrap(),
        Outcome::Applied
    );

    // The second waits for the first's row lock, then must see the first's 10 new lines.
    let shrunk = event("orders/updated", &order_at(16, 3, T3));
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { apply(&pool, &shrunk).await.unwrap() }
    });
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), Outcome::Applied);

    let ids: Vec<i64> = lines(&pool, order_id(16))
        .await
        .iter()
        .map(|l| l.0)
        .collect();
    let base = order_id(16) * 1000;
    assert_eq!(ids, vec![base, base + 1, base + 2]);
    assert_eq!(order_row(&pool, order_id(16)).await.3, 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn payloads_read_back_from_the_jsonb_inbox_apply_and_deduplicate(pool: PgPool) {
    // The worker hands over `inbox.payload::text`: jsonb reorders keys and reformats numbers.
    let mut body = order_at(17, 3, T1);
    body["total_price"] = json!("1000.10");
    let mut first = event("orders/create", &body);
    first.payload = sqlx::query_scalar("SELECT $1::jsonb::text")
        .bind(&first.payload)
        .fetch_one(&pool)
        .await
        .unwrap();
    let second = InboxEvent {
        id: first.id + 1_000_000,
        webhook_id: "another-subscription".into(),
        ..first.clone()
    };
    assert_eq!(apply(&pool, &first).await.unwrap(), Outcome::Applied);
    assert_eq!(apply(&pool, &second).await.unwrap(), Outcome::Stale);
    assert_eq!(order_row(&pool, order_id(17)).await.2, "1000.10");
    assert_eq!(lines(&pool, order_id(17)).await.len(), 3);
}

#[sqlx::test(migrations = "../migrations")]
async fn inventory_level_disconnect_removes_the_level_unless_a_newer_version_holds_it(
    pool: PgPool,
) {
    // Fails before the fix: the topic had no handler (`Ignored`) and the level stayed.
    let gone = json!({"inventory_item_id": 44, "location_id": 55});
    apply(&pool, &event("inventory_levels/update", &level(4, T1)))
        .await
        .unwrap();
    assert_eq!(
        apply(&pool, &event("inventory_levels/disconnect", &gone))
            .await
            .unwrap(),
        Outcome::Applied
    );
    assert_eq!(count(&pool, "inventory_levels").await, 0);
    assert_eq!(
        apply(&pool, &event("inventory_levels/disconnect", &gone))
            .await
            .unwrap(),
        Outcome::Stale
    );
    // A version written after the disconnect was triggered (a reconnect) is kept.
    let later = "2100-01-01T00:00:00Z";
    apply(&pool, &event("inventory_levels/connect", &level(6, later)))
        .await
        .unwrap();
    assert_eq!(
        apply(&pool, &event("inventory_levels/disconnect", &gone))
            .await
            .unwrap(),
        Outcome::Stale
    );
    assert_eq!(count(&pool, "inventory_levels").await, 1);
}

fn shop_domain(s: &str) -> wholesail_webhook::ShopDomain {
    wholesail_webhook::ShopDomain::parse(s).expect("a myshopify domain")
}
