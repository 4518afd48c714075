//! Personal data and shop redaction against real PostgreSQL: `shop/redact` racing an event of
//! the same shop, `customers/redact` reaching every table (checked on a `pg_dump` of the whole
//! database).

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use shopify_simulator::payloads::{order, OrderSpec};
use sqlx::{Connection, PgConnection, PgPool};
use wholesail_origin::handlers::{self, InboxEvent, Outcome};

const SHOP: &str = "northwind.myshopify.com";

async fn rows_of_shop(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE shop = $1"))
        .bind(SHOP)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The race an outside storm found: an order event passes its redacted check, `shop/redact`
/// commits, then the order's rows commit and survive the redaction. With the per-shop lock the
/// redaction waits for the order's transaction and deletes its rows. (Without the lock the
/// redaction finished first and the order's 3 lines were left: this test failed.)
#[sqlx::test(migrations = "../migrations")]
async fn shop_redact_waits_for_an_event_in_flight_and_leaves_none_of_its_rows(pool: PgPool) {
    let url = common::database_url(&pool);
    let mut handler = PgConnection::connect(&url).await.unwrap();
    let mut redactor = PgConnection::connect(&url).await.unwrap();
    let redactor_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut redactor)
        .await
        .unwrap();

    // The handler's transaction applies an order and stays open.
    let mut tx = handler.begin().await.unwrap();
    let order_event = common::inbox_event(SHOP, 1, "orders/create", &order(&OrderSpec::new(13, 3)));
    assert_eq!(
        handlers::apply(&mut tx, &order_event).await.unwrap(),
        Outcome::Applied
    );

    // The redaction runs meanwhile on its own connection.
    let redact = common::inbox_event(
        SHOP,
        2,
        "shop/redact",
        &json!({"shop_id": 954889, "shop_domain": SHOP}),
    );
    let redaction = tokio::spawn(async move {
        let mut rtx = redactor.begin().await.unwrap();
        let outcome = handlers::apply(&mut rtx, &redact).await.unwrap();
        rtx.commit().await.unwrap();
        outcome
    });
    // Either the redaction finishes (no lock: the bug) or it waits on the shop's lock.
    common::eventually(Duration::from_secs(10), "redaction done or waiting", || {
        let pool = pool.clone();
        let finished = redaction.is_finished();
        async move {
            let waiting: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks
                                WHERE pid = $1 AND locktype = 'advisory' AND NOT granted)",
            )
            .bind(redactor_pid)
            .fetch_one(&pool)
            .await
            .unwrap();
            finished || waiting
        }
    })
    .await;
    tx.commit().await.unwrap();
    assert_eq!(redaction.await.unwrap(), Outcome::Applied);

    for table in ["orders", "order_lines"] {
        assert_eq!(rows_of_shop(&pool, table).await, 0, "{table} of the shop");
    }
    // And an event arriving after the redaction is not applied.
    let mut conn = pool.acquire().await.unwrap();
    let late = common::inbox_event(SHOP, 3, "orders/updated", &order(&OrderSpec::new(13, 3)));
    assert_eq!(
        handlers::apply(&mut conn, &late).await.unwrap(),
        Outcome::Stale
    );
}

/// `shop/redact` over a catalog that webhooks wrote (so marked for the next resync) and a
/// resync digested: no catalog row, mark or digest of the shop is left, and a write later in
/// the same transaction (the batch's next event) is marked again.
#[sqlx::test(migrations = "../migrations")]
async fn shop_redact_leaves_no_catalog_row_mark_or_digest(pool: PgPool) {
    let catalog = "INSERT INTO products (shop, id, title, source_updated_at, written_by)
         VALUES ($1, 7, 'Crate', now(), 'inbox:1');
         INSERT INTO variants (shop, id, product_id, inventory_item_id, written_by)
         VALUES ($1, 40, 7, 45, 'inbox:1');
         INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,
                                       source_updated_at, source_digest, written_by)
         VALUES ($1, 45, 1, 3, now(), 0, 'inbox:2');
         INSERT INTO catalog_digests (shop, product_id, digest) VALUES ($1, 7, 99)"
        .replace("$1", &format!("'{SHOP}'"));
    sqlx::raw_sql(&catalog).execute(&pool).await.unwrap();
    assert_eq!(
        rows_of_shop(&pool, "catalog_dirty").await,
        3,
        "one mark per write"
    );
    let redact = common::inbox_event(
        SHOP,
        2,
        "shop/redact",
        &json!({"shop_id": 954889, "shop_domain": SHOP}),
    );
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        handlers::apply(&mut tx, &redact).await.unwrap(),
        Outcome::Applied
    );
    for table in [
        "products",
        "variants",
        "inventory_levels",
        "catalog_dirty",
        "catalog_digests",
    ] {
        let rows: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE shop = $1"))
                .bind(SHOP)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(rows, 0, "{table} of the shop");
    }
    sqlx::raw_sql(
        "INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,
                                       source_updated_at, source_digest, written_by)
         VALUES ('other.myshopify.com', 45, 1, 3, now(), 0, 'inbox:3');
         DELETE FROM inventory_levels WHERE shop = 'other.myshopify.com'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let marks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM catalog_dirty WHERE shop = 'other.myshopify.com'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        marks, 2,
        "the insert and the delete after the redaction are marked"
    );
}

const EMAIL: &str = "purchasing@northwind.example";
const PHONE: &str = "+16145550199";
const OTHER_EMAIL: &str = "someone-else@northwind.example";

/// An envelope of `topic` for `SHOP` carrying `body` (stripped by the real allowlist, as the
/// edge does).
fn envelope(webhook_id: &str, topic: &str, body: &Value) -> Value {
    let stripped = wholesail_webhook::strip(topic, body.to_string().as_bytes()).unwrap();
    let body: Value = serde_json::from_str(&stripped.json).unwrap();
    json!({
        "meta": {"webhook_id": webhook_id, "event_id": format!("evt-{webhook_id}"),
                 "topic": topic, "shop": SHOP, "api_version": "2025-07",
                 "triggered_at": "2026-11-23T10:00:00Z", "name": null},
        "received_at_ms": common::now() * 1000,
        "original_bytes": 1000,
        "payload": {"json": {"stripping": "allowlist", "body": body}}
    })
}

/// The `pg_dump` binary: on PATH, or the newest under /usr/lib/postgresql.
fn pg_dump() -> std::path::PathBuf {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("bin/pg_dump"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| "pg_dump".into())
}

/// `customers/redact` through the real intake and workers, then a `pg_dump` of the whole
/// database: the customer's email and phone appear nowhere (inbox payloads, the dead letter,
/// the quarantined raw body, the redaction's own payload, a draft-order quote), while another
/// customer's email is still there. (Before the change the dump held the email in the inbox
/// rows: this test failed.)
#[sqlx::test(migrations = "../migrations")]
async fn after_customers_redact_no_row_anywhere_contains_the_email(pool: PgPool) {
    let url = common::database_url(&pool);
    let origin = common::Origin::spawn(&url, &[]);
    let intake = origin.url("/internal/webhooks");

    let spec = OrderSpec::new(21, 2);
    let customer_id = 7_000_000_000_000 + spec.seed as i64 % 1000;
    let mut customer_order = order(&spec);
    customer_order["customer"]["phone"] = json!(PHONE);
    let mut other_order = order(&OrderSpec::new(22, 1));
    other_order["email"] = json!(OTHER_EMAIL);
    other_order["customer"]["email"] = json!(OTHER_EMAIL);
    let customer = json!({"id": customer_id, "email": EMAIL, "first_name": "Avery",
        "last_name": "Buyer", "phone": PHONE, "state": "enabled", "tags": "b2b",
        "updated_at": "2026-11-23T10:00:00-05:00"});
    let mut late_update = customer_order.clone();
    late_update["updated_at"] = json!("2026-11-23T11:00:00-05:00");
    let mut quarantined = envelope("q-1", "orders/create", &json!({}));
    quarantined["payload"] = json!({"malformed": {
        "reason": "expected value at line 1 column 40",
        "body_base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD,
            format!(r#"{{"id": 1, "email": "{EMAIL}", "phone": "{PHONE}", oops"#)),
    }});
    let batch = json!({"envelopes": [
        envelope("c-1", "customers/create", &customer),
        envelope("o-1", "orders/create", &customer_order),
        envelope("o-2", "orders/create", &other_order),
        quarantined,
    ]});
    assert_eq!(common::post_signed(&intake, &batch).await.status(), 200);
    // A dead letter naming the customer, from the edge's dead-letter queue.
    let dead = json!({"envelopes": [envelope("d-1", "orders/updated", &late_update)]});
    let resp = common::post_signed(&origin.url("/internal/dead-letters"), &dead).await;
    assert_eq!(resp.status(), 200);
    // A quote whose note names the buyer's email.
    sqlx::query(
        "INSERT INTO draft_order_jobs (id, shop, quote_id, company_location_id, request)
         VALUES ('dq_1', $1, 'Q-1', 'gid://shopify/CompanyLocation/1', $2)",
    )
    .bind(SHOP)
    .bind(json!({"note": format!("call {EMAIL} before shipping"), "lines": []}))
    .execute(&pool)
    .await
    .unwrap();
    common::eventually(Duration::from_secs(30), "the events applied", || async {
        common::count(&pool, "done").await == 3
    })
    .await;

    // bytea (the quarantined raw body) is dumped as hex.
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let dump_before = dump(&url);
    assert!(
        dump_before.contains(EMAIL),
        "the dump shows the email before"
    );
    assert!(
        dump_before.contains(&hex(EMAIL)),
        "and the raw body's bytes"
    );

    let redact = json!({"shop_id": 954889, "shop_domain": SHOP,
        "customer": {"id": customer_id, "email": EMAIL, "phone": PHONE},
        "orders_to_redact": [spec.id]});
    let batch = json!({"envelopes": [envelope("r-1", "customers/redact", &redact)]});
    assert_eq!(common::post_signed(&intake, &batch).await.status(), 200);
    common::eventually(Duration::from_secs(30), "the redaction applied", || async {
        common::count(&pool, "done").await == 4
    })
    .await;

    let dump = dump(&url);
    for secret in [EMAIL.to_owned(), PHONE.to_owned(), hex(EMAIL), hex(PHONE)] {
        let hits: Vec<&str> = dump.lines().filter(|l| l.contains(&secret)).collect();
        assert!(hits.is_empty(), "{secret} still in the dump: {hits:#?}");
    }
    assert!(
        dump.contains(OTHER_EMAIL),
        "another customer's data is kept"
    );
    // The dead letter is still there to replay, without the personal data.
    assert_eq!(common::count(&pool, "dead").await, 1);
    assert_eq!(common::count(&pool, "quarantined").await, 1);
    drop(origin);
}

/// The whole database as `pg_dump` writes it (data and schema, plain SQL).
fn dump(url: &str) -> String {
    let out = std::process::Command::new(pg_dump())
        .args(["--no-owner", "--no-privileges", url])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the dump is UTF-8")
}

/// An inbox row of `topic` for SHOP triggered `offset` from now; its id.
async fn inbox_row(pool: &PgPool, topic: &str, offset: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO inbox (webhook_id, shop, topic, api_version, triggered_at, received_at,
                            stripping, original_bytes, payload)
         VALUES (gen_random_uuid()::text, $1, $2, '2026-01', now() + $3::interval, now(),
                 'allowlist', 100, '{}')
         RETURNING id",
    )
    .bind(SHOP)
    .bind(topic)
    .bind(offset)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn after_shop_redact_only_an_event_triggered_later_reinstalls_the_shop(pool: PgPool) {
    let apply = |event: InboxEvent| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            let outcome = handlers::apply(&mut tx, &event).await.unwrap();
            tx.commit().await.unwrap();
            outcome
        }
    };
    let redact = json!({"shop_id": 954889, "shop_domain": SHOP});
    let id = inbox_row(&pool, "shop/redact", "-1 minute").await;
    assert_eq!(
        apply(common::inbox_event(SHOP, id, "shop/redact", &redact)).await,
        Outcome::Applied
    );

    // A retry of an order from before the uninstall: stale, the shop stays redacted.
    let late = inbox_row(&pool, "orders/create", "-3 days").await;
    let old_order = order(&OrderSpec::new(21, 2));
    assert_eq!(
        apply(common::inbox_event(SHOP, late, "orders/create", &old_order)).await,
        Outcome::Stale
    );
    assert_eq!(rows_of_shop(&pool, "orders").await, 0);

    // Triggered after the redaction: the app was installed again.
    let fresh = inbox_row(&pool, "orders/create", "1 second").await;
    let new_order = order(&OrderSpec::new(22, 2));
    assert_eq!(
        apply(common::inbox_event(
            SHOP,
            fresh,
            "orders/create",
            &new_order
        ))
        .await,
        Outcome::Applied
    );
    assert_eq!(rows_of_shop(&pool, "orders").await, 1);
    let (redacted, uninstalled): (Option<time::OffsetDateTime>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT redacted_at, uninstalled_at FROM shops WHERE shop = $1")
            .bind(SHOP)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((redacted, uninstalled), (None, None));
    let audit: Vec<String> = sqlx::query_scalar(
        "SELECT details->>'action' FROM compliance_audit WHERE shop = $1 ORDER BY id",
    )
    .bind(SHOP)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(audit, ["shop_data_deleted", "reinstalled"]);
    // The next events apply as usual.
    let next = inbox_row(&pool, "orders/create", "2 seconds").await;
    let another = order(&OrderSpec::new(23, 2));
    assert_eq!(
        apply(common::inbox_event(SHOP, next, "orders/create", &another)).await,
        Outcome::Applied
    );
}
