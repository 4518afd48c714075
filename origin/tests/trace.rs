//! Traceability and known timing, against a real `origin serve` and PostgreSQL: an order's
//! timeline from the signed envelope to applied, a late retry skipped as stale with its
//! reason, what last wrote the row, lookups by order name, GID, SKU and email, unknown and
//! malformed queries, and the end-to-end latency metrics judged against the configured
//! objective.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const SHOP: &str = "trace-shop.myshopify.com";
const T1: &str = "2026-11-20T10:00:00Z";
const T2: &str = "2026-11-20T11:00:00Z";

/// A signed-envelope body for `topic` with the stripped `body`, triggered at `triggered_at`.
fn envelope_of(webhook_id: &str, topic: &str, triggered_at: &str, body: &Value) -> Value {
    let raw = serde_json::to_vec(body).unwrap();
    let stripped = wholesail_webhook::strip(topic, &raw).unwrap();
    let body: Value = serde_json::from_str(&stripped.json).unwrap();
    json!({
        "meta": {
            "webhook_id": webhook_id,
            "event_id": format!("evt-{webhook_id}"),
            "topic": topic,
            "shop": SHOP,
            "api_version": "2025-07",
            "triggered_at": triggered_at,
            "name": null
        },
        "received_at_ms": now() * 1000,
        "original_bytes": raw.len(),
        "payload": {"json": {"stripping": "allowlist", "body": body}}
    })
}

/// Order 1042 (`#1042`) at version `updated_at`.
fn order_1042(updated_at: &str) -> Value {
    let mut o = order(1042);
    o["id"] = json!(1042);
    o["admin_graphql_api_id"] = json!("gid://shopify/Order/1042");
    o["name"] = json!("#1042");
    o["updated_at"] = json!(updated_at);
    o
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

/// Posts one envelope and waits until the worker has finished it.
async fn deliver(origin: &Origin, pool: &PgPool, envelope: Value) {
    let webhook_id = envelope["meta"]["webhook_id"].as_str().unwrap().to_owned();
    let resp = post_signed(
        &origin.url("/internal/webhooks"),
        &json!({ "envelopes": [envelope] }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    eventually(Duration::from_secs(20), "the event is done", || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM inbox WHERE webhook_id = $1")
            .bind(&webhook_id)
            .fetch_optional(pool)
            .await
            .unwrap()
            .as_deref()
            == Some("done")
    })
    .await;
}

async fn inbox_id(pool: &PgPool, webhook_id: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM inbox WHERE webhook_id = $1")
        .bind(webhook_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn get(origin: &Origin, path_and_query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(origin.url(path_and_query))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

/// An inbox row's webhook id, outcome, reason and subject.
type InboxOutcome = (String, Option<String>, Option<String>, Option<String>);

/// The sample of `name{labels}` in a Prometheus text scrape.
fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn an_orders_trace_shows_intake_applied_a_stale_retry_and_its_writer(pool: PgPool) {
    grant_admin(&pool).await;
    let origin = Origin::spawn(
        &database_url(&pool),
        &[
            ("WHOLESAIL_SLO__SHOPIFY_TO_APPLIED__OBJECTIVE_SECS", "45"),
            ("WHOLESAIL_SLO__SHOPIFY_TO_APPLIED__TARGET_RATIO", "0.995"),
        ],
    );
    // Created, updated an hour later (both triggered now: within the objective), then the
    // create delivered again under a new webhook id (triggered days ago: a late retry).
    deliver(
        &origin,
        &pool,
        envelope_of("w-create", "orders/create", &now_rfc3339(), &order_1042(T1)),
    )
    .await;
    deliver(
        &origin,
        &pool,
        envelope_of(
            "w-update",
            "orders/updated",
            &now_rfc3339(),
            &order_1042(T2),
        ),
    )
    .await;
    deliver(
        &origin,
        &pool,
        envelope_of("w-late", "orders/updated", T1, &order_1042(T1)),
    )
    .await;
    let update = inbox_id(&pool, "w-update").await;
    let late = inbox_id(&pool, "w-late").await;

    // The inbox rows carry their outcome and subject; the row its writer.
    let rows: Vec<InboxOutcome> = sqlx::query_as(
        "SELECT webhook_id, outcome, outcome_reason, subject FROM inbox ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let stale_reason = "older than stored updated_at 2026-11-20T11:00:00Z \
                        (this version: 2026-11-20T10:00:00Z)";
    let gid = "gid://shopify/Order/1042";
    assert_eq!(
        rows,
        vec![
            (
                "w-create".into(),
                Some("applied".into()),
                None,
                Some(gid.into())
            ),
            (
                "w-update".into(),
                Some("applied".into()),
                None,
                Some(gid.into())
            ),
            (
                "w-late".into(),
                Some("stale".into()),
                Some(stale_reason.into()),
                Some(gid.into())
            ),
        ]
    );
    let writers: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT written_by FROM orders WHERE shop = $1
         UNION ALL SELECT DISTINCT written_by FROM order_lines WHERE shop = $1",
    )
    .bind(SHOP)
    .fetch_all(&pool)
    .await
    .unwrap();
    // The update changed the order row; its lines were equal, so not rewritten.
    let create = inbox_id(&pool, "w-create").await;
    assert_eq!(
        writers,
        vec![
            Some(format!("inbox:{update}")),
            Some(format!("inbox:{create}"))
        ]
    );

    // The trace by order name, over HTTP.
    let resp = get(&origin, "/admin/trace?q=%231042").await;
    assert_eq!(resp.status(), 200);
    let trace: Value = resp.json().await.unwrap();
    let records = trace["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["gid"], gid);
    assert_eq!(record["label"], "#1042");
    assert_eq!(record["written_by"], format!("inbox:{update}"));
    assert_eq!(
        record["writer"],
        json!({"kind": "inbox", "id": update, "topic": "orders/updated", "source": "edge",
               "webhook_id": "w-update"})
    );
    let timeline = record["timeline"].as_array().unwrap();
    let times: Vec<&str> = timeline.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let parsed: Vec<OffsetDateTime> = times
        .iter()
        .map(|t| OffsetDateTime::parse(t, &Rfc3339).unwrap())
        .collect();
    assert!(
        parsed.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {times:?}"
    );
    let of =
        |what: &str| -> Vec<&Value> { timeline.iter().filter(|e| e["what"] == what).collect() };
    assert_eq!(of("shopify_triggered").len(), 3);
    assert_eq!(of("edge_received").len(), 3);
    assert_eq!(of("inbox_received").len(), 3);
    assert_eq!(of("applied").len(), 2);
    let stale = of("stale");
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0]["detail"], stale_reason);
    assert_eq!(stale[0]["inbox_id"], late);
    // The late retry was triggered first, long before the others.
    assert_eq!(timeline[0]["what"], "shopify_triggered");
    assert_eq!(timeline[0]["inbox_id"], late);

    // The same record by GID, limited to its shop; none in another shop.
    let by_gid: Value = get(&origin, &format!("/admin/trace?q={gid}&shop={SHOP}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_gid["records"][0]["timeline"], record["timeline"]);
    let elsewhere = get(
        &origin,
        &format!("/admin/trace?q={gid}&shop=other.myshopify.com"),
    )
    .await;
    assert_eq!(elsewhere.status(), 404);

    // The CLI: an aligned table by default, the same JSON with --json.
    let url = database_url(&pool);
    let (table, _) = origin_cli(&url, &["trace", "#1042"]);
    assert!(
        table.starts_with(&format!("{gid} #1042  {SHOP}  (order)\n")),
        "{table}"
    );
    assert!(table.contains(&format!("by inbox:{update}\n")), "{table}");
    let stale_line = table
        .lines()
        .find(|l| l.contains("skipped (stale)"))
        .unwrap();
    assert!(stale_line.ends_with(stale_reason), "{stale_line}");
    let (json_out, _) = origin_cli(&url, &["trace", "#1042", "--shop", SHOP, "--json"]);
    let cli_trace: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(cli_trace["records"][0]["timeline"], record["timeline"]);

    // Known timing: two applied within the 45 s objective, the late one was stale (not
    // counted); the configured objective is exported.
    let scrape = get(&origin, "/metrics").await.text().await.unwrap();
    let stage = r#"stage="shopify_to_applied""#;
    assert_eq!(
        sample(
            &scrape,
            &format!(r#"wholesail_slo_events_total{{{stage},result="good"}}"#)
        ),
        Some(2.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            &format!(r#"wholesail_slo_events_total{{{stage},result="bad"}}"#)
        ),
        None
    );
    assert_eq!(
        sample(
            &scrape,
            &format!("wholesail_e2e_latency_seconds_count{{{stage}}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &scrape,
            &format!("wholesail_slo_objective_seconds{{{stage}}}")
        ),
        Some(45.0)
    );
    assert_eq!(
        sample(&scrape, &format!("wholesail_slo_target_ratio{{{stage}}}")),
        Some(0.995)
    );
    assert_eq!(
        sample(
            &scrape,
            r#"wholesail_slo_objective_seconds{stage="order_to_quota"}"#
        ),
        Some(120.0)
    );

    // An order applied long after Shopify triggered it is bad against the objective.
    let mut old = order(2042);
    old["updated_at"] = json!(T1);
    deliver(
        &origin,
        &pool,
        envelope_of("w-old", "orders/create", T1, &old),
    )
    .await;
    let scrape = get(&origin, "/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(
            &scrape,
            &format!(r#"wholesail_slo_events_total{{{stage},result="bad"}}"#)
        ),
        Some(1.0),
        "{scrape}"
    );
}

fn product() -> Value {
    json!({
        "id": 8_000_000_000_001i64,
        "admin_graphql_api_id": "gid://shopify/Product/8000000000001",
        "title": "Hex Bolt M8", "handle": "hex-bolt-m8", "status": "active",
        "vendor": "Northwind Industrial", "product_type": "Fasteners", "tags": "bolts",
        "created_at": "2026-01-01T00:00:00Z", "published_at": "2026-01-02T00:00:00Z",
        "updated_at": T1,
        "variants": [{
            "id": 44, "product_id": 8_000_000_000_001i64, "sku": "BOLT-M8", "price": "0.10",
            "compare_at_price": null, "position": 1, "inventory_quantity": 10,
            "inventory_item_id": 4044, "updated_at": T1
        }]
    })
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_sku_and_an_email_are_traced_to_their_records(pool: PgPool) {
    grant_admin(&pool).await;
    let origin = Origin::spawn(&database_url(&pool), &[]);
    deliver(
        &origin,
        &pool,
        envelope_of("p-1", "products/create", T1, &product()),
    )
    .await;
    let level = json!({"inventory_item_id": 4044, "location_id": 55, "available": 7,
                       "updated_at": T1});
    deliver(
        &origin,
        &pool,
        envelope_of("l-1", "inventory_levels/update", T1, &level),
    )
    .await;
    let customer = json!({"id": 77, "admin_graphql_api_id": "gid://shopify/Customer/77",
                          "email": "Avery@Northwind.example", "first_name": "Avery",
                          "last_name": "Buyer", "state": "enabled", "tags": "b2b",
                          "created_at": "2025-01-10T12:00:00Z", "updated_at": T1});
    deliver(
        &origin,
        &pool,
        envelope_of("c-1", "customers/create", T1, &customer),
    )
    .await;
    // The same customer version again: stale, the same version.
    deliver(
        &origin,
        &pool,
        envelope_of("c-2", "customers/update", T1, &customer),
    )
    .await;

    // A SKU: the variant, with its product's and its inventory item's events.
    let sku: Value = get(&origin, "/admin/trace?q=BOLT-M8")
        .await
        .json()
        .await
        .unwrap();
    let record = &sku["records"][0];
    assert_eq!(record["kind"], "variant");
    assert_eq!(record["gid"], "gid://shopify/ProductVariant/44");
    assert_eq!(
        record["written_by"],
        format!("inbox:{}", inbox_id(&pool, "p-1").await)
    );
    let applied: Vec<i64> = record["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "applied")
        .map(|e| e["inbox_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        applied,
        vec![inbox_id(&pool, "p-1").await, inbox_id(&pool, "l-1").await]
    );
    let level_writer: Option<String> =
        sqlx::query_scalar("SELECT written_by FROM inventory_levels WHERE shop = $1")
            .bind(SHOP)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        level_writer,
        Some(format!("inbox:{}", inbox_id(&pool, "l-1").await))
    );

    // An email, whatever its case: the customer, and the repeated version skipped.
    let email: Value = get(&origin, "/admin/trace?q=avery%40northwind.EXAMPLE")
        .await
        .json()
        .await
        .unwrap();
    let record = &email["records"][0];
    assert_eq!(record["kind"], "customer");
    assert_eq!(record["gid"], "gid://shopify/Customer/77");
    let stale: Vec<&Value> = record["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "stale")
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(
        stale[0]["detail"],
        "same version already applied (updated_at 2026-11-20T10:00:00Z)"
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn unknown_and_malformed_queries_say_what_to_do(pool: PgPool) {
    let addr = serve_routes(pool.clone(), 1 << 20).await;
    let client = reqwest::Client::new();
    let ask = |q: &str| {
        client
            .get(format!("http://{addr}/admin/trace"))
            .query(&[("q", q)])
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let missing = ask("#9999").await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["message"], "no record matches #9999");

    let collection = ask("gid://shopify/Collection/1").await.unwrap();
    assert_eq!(collection.status(), 400);
    let body: Value = collection.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot trace a Collection: trace an Order"),
        "{body}"
    );
    assert_eq!(ask(" ").await.unwrap().status(), 400);

    // ops:read is required.
    let anonymous = client
        .get(format!("http://{addr}/admin/trace?q=%231"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // The CLI fails with the same message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .args(["trace", "BOLT-NONE"])
        .env_clear()
        .env("WHOLESAIL_DATABASE_URL", database_url(&pool))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no record matches BOLT-NONE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
