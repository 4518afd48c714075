//! Quote to cash against real PostgreSQL and the Shopify simulator: a quote over the draft-order
//! line limit becomes linked drafts that add up to the cent; unknown outcomes and crashes
//! between parts still leave exactly n drafts; resubmissions are one job; invalid quotes are
//! rejected with every error; the cost bucket is never overdrawn; callbacks are signed and
//! retried.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use shopify_simulator::{
    AfterApply, BucketConfig, CatalogSpec, Simulator, SimulatorConfig, DEFAULT_SHOP, DEFAULT_TOKEN,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wholesail_origin::app::{router, AppState};
use wholesail_origin::draft_orders::callback::Callbacks;
use wholesail_origin::draft_orders::jobs::JobState;
use wholesail_origin::draft_orders::{self, JobLoop, Settings};
use wholesail_origin::shops::{ShopConfig, Shops};
use wholesail_webhook::{Keyring, SigningKey};

use common::{database_url, eventually};
use wholesail_origin::auth::{tokens, Scope};

const LOCATION: &str = "gid://shopify/CompanyLocation/8800001";
/// Warehouses (Shopify location ids) the test stock is spread over.
const WAREHOUSES: [i64; 3] = [601, 602, 603];
const CALLBACK_SECRET: &str = "callback-test-secret-0123456789abcdefg";
/// The integrator token the tests submit quotes with (name `erp`, signs with
/// [`CALLBACK_SECRET`]).
const INTEGRATOR_TOKEN: &str = "wso_erp-integrator-test-token-000000000";
/// The callback receiver's host name; [`TestDns`] sends it to loopback (the real resolver
/// would refuse loopback: callbacks only go to public addresses).
const CALLBACK_HOST: &str = "erp.test";

/// The test's DNS: [`CALLBACK_HOST`] is 127.0.0.1.
struct TestDns;

impl reqwest::dns::Resolve for TestDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = name.as_str() == CALLBACK_HOST;
        Box::pin(async move {
            let addrs = found.then(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The simulator, a catalog of `products` products, and their variant 0 synced into origin's
/// tables: prices, stock in one of [`WAREHOUSES`] (line `i` → warehouse `i % 3`), the buyer.
async fn shop(pool: &PgPool, products: u64, bucket: BucketConfig) -> Simulator {
    let mut config = SimulatorConfig::default();
    config.shops[0].catalog = CatalogSpec::new(11, products);
    config.bucket = bucket;
    let sim = Simulator::start(config).await.unwrap();
    let catalog = sim.catalog(DEFAULT_SHOP);
    let variants: Vec<_> = (0..products)
        .map(|i| catalog.variant(i, 0).expect("variant 0 exists"))
        .collect();
    let col = |f: &dyn Fn(usize) -> i64| (0..variants.len()).map(f).collect::<Vec<i64>>();
    sqlx::query(
        "INSERT INTO variants (shop, id, product_id, sku, title, price, inventory_item_id)
         SELECT $1, id, product_id, sku, title, cents / 100.0, item
         FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
              AS t(id, product_id, sku, title, cents, item)",
    )
    .bind(DEFAULT_SHOP)
    .bind(col(&|i| variants[i].id as i64))
    .bind(col(&|i| variants[i].product_id as i64))
    .bind(variants.iter().map(|v| v.sku.clone()).collect::<Vec<_>>())
    .bind(variants.iter().map(|v| v.title.clone()).collect::<Vec<_>>())
    .bind(col(&|i| variants[i].price_cents as i64))
    .bind(col(&|i| variants[i].inventory_item_id as i64))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO inventory_levels (shop, inventory_item_id, location_id, available,
                                       source_updated_at, source_digest)
         SELECT $1, item, location, 1000, now(), 0
         FROM unnest($2::bigint[], $3::bigint[]) AS t(item, location)",
    )
    .bind(DEFAULT_SHOP)
    .bind(col(&|i| variants[i].inventory_item_id as i64))
    .bind(col(&|i| WAREHOUSES[i % 3]))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO company_locations (shop, admin_graphql_api_id, name, shipping_country_code)
         VALUES ($1, $2, 'Receiving dock', 'US')",
    )
    .bind(DEFAULT_SHOP)
    .bind(LOCATION)
    .execute(pool)
    .await
    .unwrap();
    sim
}

/// Negotiated prices: every third product at 87 % of its list price (rounded to the cent).
async fn negotiate(pool: &PgPool, sim: &Simulator, products: u64) -> HashMap<u64, u64> {
    let catalog = sim.catalog(DEFAULT_SHOP);
    let mut prices = HashMap::new();
    for i in (0..products).step_by(3) {
        let v = catalog.variant(i, 0).unwrap();
        let price = v.price_cents * 87 / 100;
        prices.insert(v.id, price);
        sqlx::query(
            "INSERT INTO rule_price_breaks (shop, company_location, target_kind, target_id, min_quantity, unit_price)
             VALUES ($1, $2, 'product', $3, 1, $4 / 100.0)",
        )
        .bind(DEFAULT_SHOP)
        .bind(LOCATION)
        .bind(v.product_id as i64)
        .bind(price as i64)
        .execute(pool)
        .await
        .unwrap();
    }
    prices
}

fn quote(quote_id: &str, sim: &Simulator, lines: u64) -> Value {
    let catalog = sim.catalog(DEFAULT_SHOP);
    json!({
        "shop": DEFAULT_SHOP,
        "quote_id": quote_id,
        "company_location_id": LOCATION,
        "lines": (0..lines).map(|i| json!({
            "variant_id": catalog.variant(i, 0).unwrap().id,
            "quantity": 1 + i % 4,
        })).collect::<Vec<_>>(),
        "shipping": {"title": "LTL freight", "price": "250.00"},
        "note": "Spring restock",
    })
}

/// Origin's routes and one job loop, in-process.
struct Origin {
    addr: std::net::SocketAddr,
    loops: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

fn shops(sim: &Simulator) -> Arc<Shops> {
    Arc::new(
        Shops::new(vec![ShopConfig {
            domain: common::domain(DEFAULT_SHOP),
            url: Some(sim.base_url().into()),
            access_token: SecretString::from(DEFAULT_TOKEN),
            api_version: Some("2026-01".into()),
        }])
        .unwrap(),
    )
}

fn settings() -> Settings {
    Settings {
        backoff_base_ms: 50,
        backoff_max_ms: 200,
        poll_interval_ms: 100,
        callback_hosts: vec![CALLBACK_HOST.into()],
        ..Settings::default()
    }
}

async fn origin(pool: &PgPool, sim: &Simulator, settings: Settings) -> Origin {
    tokens::insert(
        pool,
        "erp",
        &[Scope::Integrator],
        INTEGRATOR_TOKEN,
        Some(CALLBACK_SECRET),
    )
    .await
    .unwrap();
    let state = AppState {
        pool: pool.clone(),
        keyring: Arc::new(Keyring::new(vec![], 300)),
        shopify: None,
        max_lag_secs: 60.0,
        metrics: wholesail_origin::ops::recorder(),
        shops: shops(sim),
        catalog: wholesail_origin::catalog::Runner::from_url(
            pool.clone(),
            &database_url(pool),
            wholesail_origin::catalog::Settings::default(),
        )
        .unwrap(),
    };
    let shutdown = CancellationToken::new();
    let routes = draft_orders::api::router(draft_orders::api::DraftOrdersApi {
        pool: pool.clone(),
        shops: state.shops.clone(),
        callbacks: settings.callback_policy(),
    });
    let callbacks = Callbacks::with_resolver(&settings, Arc::new(TestDns));
    let loops = JobLoop::new(pool.clone(), state.shops.clone(), settings, "loop-a".into())
        .with_callbacks(callbacks);
    let loops = tokio::spawn(loops.run(shutdown.clone()));
    let app = router(state, 16 << 20).merge(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Origin {
        addr,
        loops,
        shutdown,
    }
}

impl Origin {
    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        let r = reqwest::Client::new()
            .post(format!("http://{}/v1/draft-orders", self.addr))
            .bearer_auth(INTEGRATOR_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap())
    }

    async fn status(&self, job: &str) -> Value {
        reqwest::Client::new()
            .get(format!("http://{}/v1/draft-orders/{job}", self.addr))
            .bearer_auth(INTEGRATOR_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls the job until it has ended; its final status.
    async fn ended(&self, job: &str) -> Value {
        let start = Instant::now();
        loop {
            let s = self.status(job).await;
            if s["status"] != "processing" {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "job still processing: {s:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.loops.await.unwrap();
    }
}

fn cents(amount: &Value) -> u64 {
    let s = amount.as_str().unwrap();
    let (w, f) = s.split_once('.').unwrap();
    w.parse::<u64>().unwrap() * 100 + f.parse::<u64>().unwrap()
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_1200_line_quote_becomes_three_linked_drafts_that_add_up_to_the_cent(pool: PgPool) {
    let sim = shop(&pool, 1200, BucketConfig::STANDARD).await;
    let negotiated = negotiate(&pool, &sim, 1200).await;
    let origin = origin(&pool, &sim, settings()).await;
    let catalog = sim.catalog(DEFAULT_SHOP);
    let expected: u64 = (0..1200u64)
        .map(|i| {
            let v = catalog.variant(i, 0).unwrap();
            negotiated.get(&v.id).copied().unwrap_or(v.price_cents) * (1 + i % 4)
        })
        .sum::<u64>()
        + 25_000;

    let sent = Instant::now();
    let (code, accepted) = origin.post(&quote("Q-1200", &sim, 1200)).await;
    let first_response = sent.elapsed();
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["status"], "processing");
    assert!(
        first_response < Duration::from_secs(1),
        "answered in {first_response:?}"
    );
    let job = accepted["job"].as_str().unwrap().to_owned();

    let done = origin.ended(&job).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(
        done["progress"],
        json!({"parts_created": 3, "parts_total": 3})
    );
    assert_eq!(cents(&done["total"]), expected);

    let drafts = sim.draft_orders(DEFAULT_SHOP);
    assert_eq!(drafts.len(), 3);
    assert_eq!(
        drafts.iter().map(|d| d.total_cents()).sum::<u64>(),
        expected
    );
    for (i, d) in drafts.iter().enumerate() {
        let shown = &done["drafts"][i];
        assert!(d.lines.len() <= 499);
        assert_eq!(d.total_cents(), cents(&shown["total"]));
        assert_eq!(shown["id"], format!("gid://shopify/DraftOrder/{}", d.id));
        assert_eq!(shown["invoice_url"], d.invoice_url.as_str());
        assert!(d.has_tag(&format!("wholesail-group:{job}")));
        assert!(d.has_tag(&format!("wholesail-part:{job}-{}", i + 1)));
        assert!(d.has_tag(&format!("part {} of 3", i + 1)));
        assert_eq!(d.shipping.as_ref().map(|s| s.1), (i == 0).then_some(25_000));
        // Negotiated prices are a fixed amount off each unit of the list price.
        for l in &d.lines {
            let unit = negotiated.get(&l.variant_id.unwrap()).copied();
            match (&l.discount, unit) {
                (Some(disc), Some(unit)) => {
                    assert_eq!(disc.value_type, "FIXED_AMOUNT");
                    assert_eq!(disc.amount_cents, (l.unit_price_cents - unit) * l.quantity);
                }
                (None, None) => {}
                other => panic!("discount {other:?} on {l:?}"),
            }
        }
        let link = sim
            .metafield(
                DEFAULT_SHOP,
                &format!("gid://shopify/DraftOrder/{}", d.id),
                "$app:wholesail",
                "draft_group",
            )
            .expect("group metafield");
        let link: Value = serde_json::from_str(&link.value).unwrap();
        assert_eq!(
            (
                link["group"].as_str(),
                link["part"].as_u64(),
                link["of"].as_u64()
            ),
            (Some(job.as_str()), Some(i as u64 + 1), Some(3))
        );
    }
    // Three warehouses of 400 lines each: each warehouse's lines in one draft.
    let inventory: HashMap<u64, i64> = (0..1200u64)
        .map(|i| {
            (
                catalog.variant(i, 0).unwrap().id,
                WAREHOUSES[i as usize % 3],
            )
        })
        .collect();
    for d in &drafts {
        let mut here: Vec<i64> = d
            .lines
            .iter()
            .map(|l| inventory[&l.variant_id.unwrap()])
            .collect();
        here.dedup();
        assert_eq!(here.len(), 1, "one warehouse per draft");
        assert_eq!(d.lines.len(), 400);
    }
    assert!(sim.throttled(DEFAULT_SHOP).is_empty());
    let operations: Vec<String> = sim
        .cost_log(DEFAULT_SHOP)
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert_eq!(
        operations, ["draftOrderCreate"; 3],
        "no lookups when no create was ever in doubt"
    );
    origin.stop().await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_create_whose_outcome_is_unknown_is_found_by_its_tag_not_created_twice(pool: PgPool) {
    let sim = shop(&pool, 1200, BucketConfig::STANDARD).await;
    // The second create is applied, then answered 502: Shopify's "outcome unknown".
    sim.fail_draft_create_after_applying(DEFAULT_SHOP, 2, AfterApply::Status(502));
    let origin = origin(&pool, &sim, settings()).await;
    let (_, accepted) = origin.post(&quote("Q-unknown", &sim, 1200)).await;
    let done = origin.ended(accepted["job"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(sim.draft_orders(DEFAULT_SHOP).len(), 3);
    let recovered: Vec<bool> = done["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["recovered"].as_bool().unwrap())
        .collect();
    assert_eq!(recovered, [false, true, false]);
    assert_eq!(done["attempts"], 2);
    let creates = sim
        .cost_log(DEFAULT_SHOP)
        .iter()
        .filter(|c| c.operation == "draftOrderCreate")
        .count();
    assert_eq!(creates, 3, "part 2 was looked up, not created again");
    origin.stop().await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_worker_that_dies_between_parts_leaves_exactly_n_drafts_after_another_takes_over(
    pool: PgPool,
) {
    let sim = shop(&pool, 1200, BucketConfig::STANDARD).await;
    // The third create is applied but its answer never comes back in time: the worker
    // holding the job is killed while it waits.
    sim.fail_draft_create_after_applying(
        DEFAULT_SHOP,
        3,
        AfterApply::Delay(Duration::from_secs(600)),
    );
    let short_lease = Settings {
        lease_ms: 1_000,
        ..settings()
    };
    let origin = origin(&pool, &sim, short_lease.clone()).await;
    let (_, accepted) = origin.post(&quote("Q-crash", &sim, 1200)).await;
    let job = accepted["job"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the third draft", || async {
        sim.draft_orders(DEFAULT_SHOP).len() == 3
    })
    .await;
    assert_eq!(origin.status(&job).await["progress"]["parts_created"], 2);
    // Crash: the task dies without releasing its lease or recording part 3.
    origin.loops.abort();
    let _ = origin.loops.await;

    let survivor = JobLoop::new(pool.clone(), shops(&sim), short_lease, "loop-b".into());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(survivor.run(shutdown.clone()));
    let start = Instant::now();
    let done = loop {
        let s = wholesail_origin::draft_orders::jobs::status(&pool, &job)
            .await
            .unwrap()
            .unwrap();
        if s.status != JobState::Processing {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.status, JobState::Completed);
    assert_eq!(sim.draft_orders(DEFAULT_SHOP).len(), 3);
    assert!(done.drafts[2].recovered);
    assert_eq!(done.drafts.iter().filter_map(|d| d.id.as_ref()).count(), 3);
    shutdown.cancel();
    running.await.unwrap();
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_same_quote_submitted_twice_is_one_job_and_a_changed_one_is_refused(pool: PgPool) {
    let sim = shop(&pool, 600, BucketConfig::STANDARD).await;
    let origin = origin(&pool, &sim, settings()).await;
    let q = quote("Q-twice", &sim, 600);
    let (first, a) = origin.post(&q).await;
    let (second, b) = origin.post(&q).await;
    assert_eq!((first, second), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(a["job"], b["job"]);
    let mut changed = q.clone();
    changed["lines"][0]["quantity"] = json!(99);
    let (conflict, _) = origin.post(&changed).await;
    assert_eq!(conflict, StatusCode::CONFLICT);
    let done = origin.ended(a["job"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    let (again, c) = origin.post(&q).await;
    assert_eq!((again, &c["status"]), (StatusCode::OK, &json!("completed")));
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM draft_order_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    assert_eq!(sim.draft_orders(DEFAULT_SHOP).len(), 2);
    origin.stop().await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_quote_with_invalid_lines_is_rejected_with_every_error_and_no_draft(pool: PgPool) {
    let sim = shop(&pool, 900, BucketConfig::STANDARD).await;
    let catalog = sim.catalog(DEFAULT_SHOP);
    // Products of lines 5, 17 and 800 are sold by the case of 6; the quote asks 1–4 units.
    for i in [5u64, 17, 800] {
        sqlx::query(
            "INSERT INTO rule_line_limits (shop, company_location, target_kind, target_id, increment)
             VALUES ($1, $2, 'product', $3, 6)",
        )
        .bind(DEFAULT_SHOP)
        .bind(LOCATION)
        .bind(catalog.variant(i, 0).unwrap().product_id as i64)
        .execute(&pool)
        .await
        .unwrap();
    }
    let origin = origin(&pool, &sim, settings()).await;
    let (code, accepted) = origin.post(&quote("Q-bad", &sim, 900)).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let done = origin.ended(accepted["job"].as_str().unwrap()).await;
    assert_eq!(done["status"], "rejected", "{done:#}");
    let lines: Vec<u64> = done["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [5, 17, 800], "{:#}", done["errors"]);
    assert!(sim.draft_orders(DEFAULT_SHOP).is_empty());
    assert!(
        sim.cost_log(DEFAULT_SHOP).is_empty(),
        "Shopify was not called"
    );

    // A B2B contact needs the location's company, which origin has not seen.
    let mut b2b = quote("Q-b2b", &sim, 3);
    b2b["company_contact_id"] = json!("gid://shopify/CompanyContact/5");
    let (_, accepted) = origin.post(&b2b).await;
    let done = origin.ended(accepted["job"].as_str().unwrap()).await;
    assert_eq!(done["status"], "rejected");
    assert_eq!(done["errors"][0]["code"], "UNKNOWN_COMPANY");
    assert!(sim.draft_orders(DEFAULT_SHOP).is_empty());

    // Structural errors are refused at once, all of them.
    let mut broken = quote("Q-broken", &sim, 3);
    broken["company_location_id"] = json!("8800001");
    broken["lines"][1]["quantity"] = json!(0);
    broken["lines"][2]["quantity"] = json!(0);
    let (code, refused) = origin.post(&broken).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused["error"]["details"].as_array().unwrap().len(),
        3,
        "{refused:#}"
    );
    let unauthenticated = reqwest::Client::new()
        .post(format!("http://{}/v1/draft-orders", origin.addr))
        .json(&quote("Q-anon", &sim, 3))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    origin.stop().await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_small_cost_bucket_is_never_overdrawn(pool: PgPool) {
    // 20 points, 10 restored per second: the three creates (30 points) cannot all go at once.
    let bucket = BucketConfig {
        maximum_available: 20.0,
        restore_rate: 10.0,
    };
    let sim = shop(&pool, 1200, bucket).await;
    let origin = origin(&pool, &sim, settings()).await;
    let started = Instant::now();
    let (_, accepted) = origin.post(&quote("Q-paced", &sim, 1200)).await;
    let done = origin.ended(accepted["job"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(sim.draft_orders(DEFAULT_SHOP).len(), 3);
    assert!(
        sim.throttled(DEFAULT_SHOP).is_empty(),
        "{:?}",
        sim.throttled(DEFAULT_SHOP)
    );
    let points: u32 = sim.cost_log(DEFAULT_SHOP).iter().map(|c| c.actual).sum();
    let floor = f64::from(points).max(20.0) - 20.0;
    assert!(
        started.elapsed().as_secs_f64() >= floor / 10.0 * 0.9,
        "{points} points in {:?}",
        started.elapsed()
    );
    origin.stop().await;
}

/// A receiver that fails the first callback and accepts the next.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

async fn receive(
    axum::extract::State(r): axum::extract::State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut seen = r.0.lock().unwrap();
    seen.push((headers, body));
    if seen.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_outcome_is_posted_signed_to_the_callback_retried_and_invoices_are_sent(pool: PgPool) {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hooks/quotes", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!(
        "http://{CALLBACK_HOST}:{}/hooks/quotes",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let sim = shop(&pool, 700, BucketConfig::STANDARD).await;
    let origin = origin(&pool, &sim, settings()).await;
    let mut q = quote("Q-callback", &sim, 700);
    q["callback_url"] = json!(hook);
    q["send_invoice"] = json!(true);
    let (_, accepted) = origin.post(&q).await;
    let job = accepted["job"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(30),
        "the callback delivered",
        || async { origin.status(&job).await["callback"]["state"] == "delivered" },
    )
    .await;
    let status = origin.status(&job).await;
    assert_eq!(status["callback"]["attempts"], 2);
    let seen = receiver.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let keyring = Keyring::new(vec![SigningKey::new("erp", CALLBACK_SECRET).unwrap()], 300);
    for (headers, body) in &seen {
        let sig = headers
            .get(wholesail_webhook::SIGNATURE_HEADER)
            .unwrap()
            .to_str()
            .unwrap();
        keyring
            .verify(sig, body, common::now())
            .expect("the callback is signed with the integrator's callback secret");
        let posted: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(posted["status"], "completed");
        assert_eq!(posted["drafts"].as_array().unwrap().len(), 2);
    }
    for d in sim.draft_orders(DEFAULT_SHOP) {
        assert_eq!(d.invoice_sends.len(), 1, "one invoice email per draft");
    }
    assert!(status["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["invoice_sent_at"].is_string()));
    origin.stop().await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_job_is_only_visible_to_its_token_and_a_callback_needs_a_callback_secret(pool: PgPool) {
    let sim = shop(&pool, 10, BucketConfig::STANDARD).await;
    let origin = origin(&pool, &sim, settings()).await;
    let other = "wso_other-integrator-test-token-0000000";
    tokens::insert(&pool, "other", &[Scope::Integrator], other, None)
        .await
        .unwrap();
    let q = quote("Q-mine", &sim, 3);
    let (status, accepted) = origin.post(&q).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job = accepted["job"].as_str().unwrap();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", origin.addr);
    let theirs = http
        .get(url(&format!("/v1/draft-orders/{job}")))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        theirs.status(),
        404,
        "another integrator's job is not found"
    );
    let again = http
        .post(url("/v1/draft-orders"))
        .bearer_auth(other)
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        409,
        "another integrator's quote id is taken"
    );
    let mut q = quote("Q-theirs", &sim, 3);
    q["callback_url"] = json!(format!("http://{CALLBACK_HOST}/hooks"));
    let refused = http
        .post(url("/v1/draft-orders"))
        .bearer_auth(other)
        .json(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body = refused.text().await.unwrap();
    assert!(body.contains("callback secret"), "{body}");
    origin.stop().await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_draft_shopify_refuses_fails_the_job_with_the_reason(pool: PgPool) {
    let sim = shop(&pool, 10, BucketConfig::STANDARD).await;
    // A variant origin knows but the shop does not (deleted in Shopify since the last sync).
    sqlx::query(
        "INSERT INTO variants (shop, id, product_id, sku, title, price) VALUES ($1, 77, 7, 'GONE', 'Gone', 5.00)",
    )
    .bind(DEFAULT_SHOP)
    .execute(&pool)
    .await
    .unwrap();
    let origin = origin(&pool, &sim, settings()).await;
    let mut q = quote("Q-gone", &sim, 3);
    q["lines"][1]["variant_id"] = json!(77);
    let (_, accepted) = origin.post(&q).await;
    let done = origin.ended(accepted["job"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let reason = done["error"].as_str().unwrap();
    assert!(reason.contains("no longer available"), "{reason}");
    assert_eq!(done["attempts"], 1, "a refusal is not retried");
    assert!(sim.draft_orders(DEFAULT_SHOP).is_empty());
    origin.stop().await;
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn the_cli_submits_a_quote_file_that_origin_serve_turns_into_drafts(pool: PgPool) {
    let sim = shop(&pool, 600, BucketConfig::STANDARD).await;
    let db = database_url(&pool);
    let shops = format!(
        r#"[{{domain="{DEFAULT_SHOP}",url="{}",access_token="{DEFAULT_TOKEN}"}}]"#,
        sim.base_url()
    );
    let env = [
        ("WHOLESAIL_SHOPS", shops.as_str()),
        ("WHOLESAIL_DRAFT_ORDERS__POLL_INTERVAL_MS", "100"),
    ];
    let serve = common::Origin::spawn(&db, &env);
    let dir = std::env::temp_dir().join(format!("wholesail-quote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("quote.json");
    std::fs::write(&file, quote("Q-cli", &sim, 600).to_string()).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_origin"));
        cmd.args(["draft-orders", "create", "--wait", "--file"])
            .arg(&file)
            .env_clear()
            .env("WHOLESAIL_DATABASE_URL", &db)
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (first, last) = stdout.split_once('\n').unwrap();
    let accepted: Value = serde_json::from_str(first).unwrap();
    let done: Value = serde_json::from_str(last).unwrap();
    assert_eq!(accepted["status"], "processing");
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["progress"]["parts_total"], 2);
    assert_eq!(sim.draft_orders(DEFAULT_SHOP).len(), 2);
    assert!(
        serve.terminate(Duration::from_secs(20)),
        "origin exits cleanly"
    );
}

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_job_whose_workers_keep_dying_fails_after_max_attempts_with_the_reason(pool: PgPool) {
    let sim = shop(&pool, 10, BucketConfig::STANDARD).await;
    let q: draft_orders::quote::QuoteRequest =
        serde_json::from_value(quote("Q-doomed", &sim, 3)).unwrap();
    let shops = shops(&sim);
    let (status, created) = draft_orders::api::submit(&pool, &shops, &Default::default(), &q, None)
        .await
        .unwrap();
    assert!(created);
    // Three claims already made, each by a worker that died (lease expired, nothing done).
    sqlx::query(
        "UPDATE draft_order_jobs SET attempts = 3, locked_by = 'dead', locked_until = now() - interval '1 second'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let jobs = JobLoop::new(
        pool.clone(),
        shops,
        Settings {
            max_attempts: 3,
            ..settings()
        },
        "loop-c".into(),
    );
    assert!(
        jobs.run_once().await.unwrap(),
        "the expired lease is claimable"
    );
    let done = draft_orders::jobs::status(&pool, &status.job)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobState::Failed);
    assert!(done.error.unwrap().contains("gave up after 3 claims"));
    assert!(sim.draft_orders(DEFAULT_SHOP).is_empty());
    assert!(!jobs.run_once().await.unwrap(), "nothing left to do");
}

/// While the shop's breaker is open a job is not retried every backoff step: it is released
/// with `run_at` past the cool-down and nothing reaches Shopify; once the shop recovers it
/// completes with exactly one draft.
#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_job_waits_out_the_shops_open_breaker_then_completes(pool: PgPool) {
    use wholesail_origin::draft_orders::{jobs, quote::QuoteRequest};
    use wholesail_shopify_admin::{BreakerConfig, BreakerState};

    let sim = shop(&pool, 10, BucketConfig::STANDARD).await;
    let cool_down = Duration::from_secs(2);
    let shops = Arc::new(
        Shops::with_breaker(
            vec![ShopConfig {
                domain: common::domain(DEFAULT_SHOP),
                url: Some(sim.base_url().into()),
                access_token: SecretString::from(DEFAULT_TOKEN),
                api_version: Some("2026-01".into()),
            }],
            BreakerConfig {
                failure_threshold: 2,
                cool_down,
                max_cool_down: Duration::from_secs(10),
            },
        )
        .unwrap(),
    );
    let client = shops.client(&common::domain(DEFAULT_SHOP)).unwrap();
    let quote: QuoteRequest = serde_json::from_value(quote("Q-storm", &sim, 3)).unwrap();
    let (job, _) = jobs::submit(&pool, &quote, None).await.unwrap();
    let runner = JobLoop::new(pool.clone(), shops.clone(), settings(), "loop-storm".into());

    sim.set_faults(shopify_simulator::FaultConfig {
        error_rate: 1.0,
        ..Default::default()
    });
    eventually(Duration::from_secs(10), "the breaker to open", || async {
        runner.run_once().await.unwrap();
        matches!(client.breaker().state(), BreakerState::Open { .. })
    })
    .await;
    // The step that met the open breaker released the job past the cool-down.
    eventually(Duration::from_secs(5), "the job released", || async {
        let (locked, error): (Option<String>, Option<String>) =
            sqlx::query_as("SELECT locked_by, error FROM draft_order_jobs WHERE id = $1")
                .bind(&job)
                .fetch_one(&pool)
                .await
                .unwrap();
        locked.is_none() && error.is_some_and(|e| e.contains("circuit open"))
    })
    .await;
    let wait: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM run_at - now())::float8 FROM draft_order_jobs WHERE id = $1",
    )
    .bind(&job)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        wait > cool_down.as_secs_f64() * 0.5,
        "run_at only {wait}s away"
    );
    let requests = sim.requests();
    assert!(
        !runner.run_once().await.unwrap(),
        "nothing due before the cool-down"
    );
    assert_eq!(sim.requests(), requests);

    sim.set_faults(shopify_simulator::FaultConfig::default());
    eventually(Duration::from_secs(20), "the job to complete", || async {
        runner.run_once().await.unwrap();
        jobs::status(&pool, &job).await.unwrap().unwrap().status == JobState::Completed
    })
    .await;
    assert_eq!(client.breaker().state(), BreakerState::Closed);
    assert_eq!(sim.draft_orders(DEFAULT_SHOP).len(), 1);
}

/// A quantity over the cap is refused at submission (422) naming the line.
#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn a_quantity_over_the_cap_is_refused_at_submission(pool: PgPool) {
    let sim = shop(&pool, 5, BucketConfig::STANDARD).await;
    let origin = origin(&pool, &sim, settings()).await;
    let mut q = quote("Q-huge", &sim, 3);
    q["lines"][2]["quantity"] = json!(4_000_000_000u32);
    let (code, refused) = origin.post(&q).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused["error"]["code"], "invalid_quote", "{refused:#}");
    assert_eq!(refused["error"]["details"][0]["line"], 2, "{refused:#}");
    assert_eq!(refused["error"]["details"][0]["code"], "INVALID_QUANTITY");
    origin.stop().await;
}
