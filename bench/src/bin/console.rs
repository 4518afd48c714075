//! `cargo xtask bench console [--inbox N] [--problems N] [--requests R]`: the operations
//! console, the trace lookup and the `/metrics` scrape on a big database (scratch database
//! `wholesail_bench_console`, needs `DATABASE_URL`).
//!
//! Seeded with SQL (setup, not measured): `--inbox` rows (default 1,000,000) in one shop, the
//! events of `--inbox / 10` orders (10 events each: created, updated, a stale retry…) with
//! their subjects and outcomes as the workers leave them, the orders themselves and their
//! lines, and `--problems` (default 10,000) problems of two items each over every kind: dead
//! letters, quarantined rows, rules push errors, failed draft-order jobs, dead Salesforce rows
//! and unhealed reconciliation findings (items of one kind and reason make one problem).
//!
//! Measured over HTTP against origin's real router (console session cookie, bearer token for
//! the admin API), `--requests` sequential requests per page (default 200) after 10 warm-ups:
//! p50 and p99 of every console page (first page and a keyset page deep in a list), the trace
//! lookup (`GET /admin/trace` of random orders by name, gid and SKU, and the console's trace
//! page) and the scrape. Beside them, in the same run: `GET /livez` (the HTTP floor: the same
//! client, server and connection, no database) and the goals (pages p99 < 200 ms,
//! trace < 50 ms, scrape < 10 ms).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use reqwest::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use reqwest::{redirect, Client, StatusCode};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use wholesail_bench::scratch_database;
use wholesail_origin::auth::{tokens, Scope};

const DB: &str = "wholesail_bench_console";
const SHOP: &str = "bench-console.myshopify.com";
const TOKEN: &str = "wso_bench-console-operator-token-read-write-1";
const PAGE_GOAL_MS: f64 = 200.0;
const TRACE_GOAL_MS: f64 = 50.0;
const SCRAPE_GOAL_MS: f64 = 10.0;

struct Args {
    inbox: u64,
    problems: u64,
    requests: usize,
}

fn args() -> Result<Args> {
    let mut out = Args {
        inbox: 1_000_000,
        problems: 10_000,
        requests: 200,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--inbox" => out.inbox = value.parse()?,
            "--problems" => out.problems = value.parse()?,
            "--requests" => out.requests = value.parse()?,
            other => bail!("unknown flag {other}; flags: --inbox N --problems N --requests R"),
        }
    }
    ensure!(out.inbox >= 10_000, "--inbox must be at least 10,000");
    ensure!(out.requests >= 10, "--requests must be at least 10");
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let base = std::env::var("DATABASE_URL").context("DATABASE_URL (cargo xtask pg)")?;
    let db_url = format!("{}/{DB}", base.rsplit_once('/').context("DATABASE_URL")?.0);
    let pool = scratch_database(&base, DB, &db_url, 8).await?;
    let t = Instant::now();
    seed(&pool, &args).await?;
    println!(
        "seeded {} inbox rows, {} orders, {} problems ({} items) in {:.1} s",
        args.inbox,
        args.inbox / 10,
        args.problems,
        2 * args.problems,
        t.elapsed().as_secs_f64()
    );
    tokens::insert(
        &pool,
        "bench",
        &[Scope::OpsRead, Scope::OpsWrite],
        TOKEN,
        None,
    )
    .await?;
    let addr = serve(pool.clone(), &db_url).await?;
    let client = Client::builder()
        .redirect(redirect::Policy::none())
        .build()?;
    let cookie = sign_in(&client, addr).await?;
    let bench = Bench {
        client,
        addr,
        cookie,
        requests: args.requests,
    };

    let floor = bench
        .measure("GET /livez (HTTP floor)", &["/livez".into()], Auth::None)
        .await?;
    let problems: serde_json::Value = bench.json("/admin/problems?limit=100").await?;
    let total = problems["total"].as_i64().unwrap_or(0);
    let first = problems["rows"][0]["id"]
        .as_str()
        .context("no problem listed")?
        .to_owned();
    let deep = deep_cursor(&bench, 5).await?;
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/console".into()),
        ("problems, first page", "/console/problems".into()),
        (
            "problems, 6th keyset page",
            format!("/console/problems?cursor={}", urlencode(&deep)),
        ),
        (
            "a problem's items",
            format!("/console/problems/{}", urlencode(&first)),
        ),
        ("catalog runs", "/console/catalog".into()),
        ("rules push", "/console/rules".into()),
        ("draft-order jobs", "/console/drafts".into()),
        ("field ownership", "/console/ownership".into()),
        ("salesforce", "/console/salesforce".into()),
    ];
    let mut results = vec![("HTTP floor: GET /livez".to_owned(), floor, None)];
    for (name, path) in pages {
        let m = bench.measure(name, &[path], Auth::Cookie).await?;
        results.push((format!("console: {name}"), m, Some(PAGE_GOAL_MS)));
    }
    let orders = args.inbox / 10;
    let mut rng = rand::thread_rng();
    let picks: Vec<u64> = (0..64).map(|_| rng.gen_range(1..=orders)).collect();
    let by_name: Vec<String> = picks
        .iter()
        .map(|n| format!("/admin/trace?q=%23{}", 1000 + n))
        .collect();
    let by_gid: Vec<String> = picks
        .iter()
        .map(|n| format!("/admin/trace?q=gid://shopify/Order/{n}"))
        .collect();
    let by_sku: Vec<String> = picks
        .iter()
        .map(|n| format!("/admin/trace?q=SKU-{}", n % 5_000))
        .collect();
    let page: Vec<String> = picks
        .iter()
        .map(|n| format!("/console/trace?q=%23{}", 1000 + n))
        .collect();
    for (name, paths, auth) in [
        ("trace: order by name", &by_name, Auth::Bearer),
        ("trace: order by gid", &by_gid, Auth::Bearer),
        ("trace: variant by SKU", &by_sku, Auth::Bearer),
        ("trace: console page", &page, Auth::Cookie),
    ] {
        let m = bench.measure(name, paths, auth).await?;
        let goal = if auth == Auth::Cookie {
            PAGE_GOAL_MS
        } else {
            TRACE_GOAL_MS
        };
        results.push((name.to_owned(), m, Some(goal)));
    }
    let scrape = bench
        .measure("scrape", &["/metrics".into()], Auth::Bearer)
        .await?;
    results.push(("GET /metrics (scrape)".into(), scrape, Some(SCRAPE_GOAL_MS)));

    println!(
        "\n{} inbox rows, {} problems listed, {} requests each, sequential, one connection",
        args.inbox, total, args.requests
    );
    println!(
        "{:<34} {:>9} {:>9} {:>10} {:>8}",
        "", "p50 ms", "p99 ms", "p99/floor", "goal ms"
    );
    let mut missed = 0;
    for (name, m, goal) in &results {
        let verdict = match goal {
            Some(g) if m.p99 < *g => format!("{g:>8.0}  met"),
            Some(g) => {
                missed += 1;
                format!("{g:>8.0}  MISSED")
            }
            None => String::new(),
        };
        println!(
            "{name:<34} {:>9.2} {:>9.2} {:>9.1}× {verdict}",
            m.p50,
            m.p99,
            m.p99 / floor.p99
        );
    }
    println!("goals missed: {missed}");
    Ok(())
}

/// The cursor of the `n`th page after the first of `/admin/problems` (100 a page).
async fn deep_cursor(bench: &Bench, n: usize) -> Result<String> {
    let mut cursor: Option<String> = None;
    for _ in 0..n {
        let path = match &cursor {
            Some(c) => format!("/admin/problems?limit=100&cursor={}", urlencode(c)),
            None => "/admin/problems?limit=100".into(),
        };
        let page = bench.json(&path).await?;
        cursor = Some(
            page["next"]
                .as_str()
                .context("fewer problems than the deep page needs")?
                .to_owned(),
        );
    }
    cursor.context("no cursor")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Bearer,
    Cookie,
}

/// p50 and p99 in milliseconds.
#[derive(Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
}

struct Bench {
    client: Client,
    addr: SocketAddr,
    cookie: String,
    requests: usize,
}

impl Bench {
    async fn get(&self, path: &str, auth: Auth) -> Result<(StatusCode, usize)> {
        let mut req = self.client.get(format!("http://{}{path}", self.addr));
        req = match auth {
            Auth::None => req,
            Auth::Bearer => req.header(AUTHORIZATION, format!("Bearer {TOKEN}")),
            Auth::Cookie => req.header(COOKIE, &self.cookie),
        };
        let resp = req.send().await?;
        let status = resp.status();
        Ok((status, resp.bytes().await?.len()))
    }

    async fn json(&self, path: &str) -> Result<serde_json::Value> {
        let resp = self
            .client
            .get(format!("http://{}{path}", self.addr))
            .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
            .send()
            .await?;
        ensure!(resp.status().is_success(), "{path}: {}", resp.status());
        Ok(resp.json().await?)
    }

    /// `self.requests` GETs cycling through `paths` (shuffled), after 10 warm-ups; every
    /// answer must be 200.
    async fn measure(&self, name: &str, paths: &[String], auth: Auth) -> Result<Latency> {
        let mut order: Vec<&String> = paths.iter().cycle().take(self.requests).collect();
        order.shuffle(&mut rand::thread_rng());
        for path in order.iter().take(10) {
            self.get(path, auth).await?;
        }
        let mut ms = Vec::with_capacity(order.len());
        for path in order {
            let t = Instant::now();
            let (status, _) = self.get(path, auth).await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            ensure!(status == StatusCode::OK, "{name}: {path} answered {status}");
        }
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
        Ok(Latency {
            p50: at(0.5),
            p99: at(0.99),
        })
    }
}

async fn sign_in(client: &Client, addr: SocketAddr) -> Result<String> {
    let resp = client
        .post(format!("http://{addr}/console/sign-in"))
        .form(&[("token", TOKEN)])
        .send()
        .await?;
    ensure!(
        resp.status() == StatusCode::SEE_OTHER,
        "sign-in answered {}",
        resp.status()
    );
    let set = resp.headers()[SET_COOKIE].to_str()?;
    Ok(set.split(';').next().context("a cookie")?.to_owned())
}

/// Origin's router (console, admin API, probes, `/metrics`) on an ephemeral port.
async fn serve(pool: PgPool, db_url: &str) -> Result<SocketAddr> {
    let catalog = wholesail_origin::catalog::Runner::from_url(
        pool.clone(),
        db_url,
        wholesail_origin::catalog::Settings::default(),
    )?;
    let secret = secrecy::SecretString::from("bench-internal-signing-key-0123456789abcdef");
    let state = wholesail_origin::app::AppState {
        pool,
        keyring: Arc::new(wholesail_webhook::Keyring::new(
            vec![wholesail_webhook::SigningKey::new(
                "k1",
                secret.expose_secret(),
            )?],
            300,
        )),
        shopify: None,
        max_lag_secs: 60.0,
        metrics: wholesail_origin::ops::recorder(),
        shops: Arc::new(wholesail_origin::shops::Shops::default()),
        catalog,
    };
    let app = wholesail_origin::app::router(state, 1 << 20);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The inbox, orders, lines, variants and problem items (see the module doc).
async fn seed(pool: &PgPool, args: &Args) -> Result<()> {
    let orders = (args.inbox / 10) as i64;
    // Two items per problem. Items by kind: dead letters 40%, quarantined 20%, push errors
    // 10%, draft jobs 5%, Salesforce dead 10%, findings 15%; each kind's items share half as
    // many reasons (errors that name a record make problems of their own).
    let p = 2 * args.problems as i64;
    let dead = p * 40 / 100;
    let quarantined = p * 20 / 100;
    let push = p * 10 / 100;
    let drafts = p * 5 / 100;
    let sf = p * 10 / 100;
    let findings = p - dead - quarantined - push - drafts - sf;
    let (dead_r, quarantined_r, push_r, drafts_r, sf_r, findings_r) = (
        dead / 2,
        quarantined / 2,
        push / 2,
        drafts / 2,
        sf / 2,
        findings / 2,
    );
    let statements = [
        format!(
            "INSERT INTO orders (shop, id, admin_graphql_api_id, name, order_number, email,
                                 financial_status, currency, total_price, created_at,
                                 source_updated_at, written_by)
             SELECT '{SHOP}', n, 'gid://shopify/Order/' || n, '#' || (1000 + n),
                    n, 'buyer' || (n % 5000) || '@example.com', 'paid', 'USD', 100 + n % 900,
                    now() - interval '20 days' + n * interval '10 ms',
                    now() - interval '20 days' + n * interval '10 ms', 'inbox:' || (n * 10)
             FROM generate_series(1, {orders}) n"
        ),
        format!(
            "INSERT INTO variants (shop, id, product_id, sku, price, written_by)
             SELECT '{SHOP}', n, n / 10 + 1, 'SKU-' || n, 10 + n % 90, 'catalog_run:1'
             FROM generate_series(0, 4999) n"
        ),
        format!(
            "INSERT INTO order_lines (shop, order_id, id, position, variant_id, sku, quantity, price)
             SELECT '{SHOP}', n, n * 10 + k, k, (n * 3 + k) % 5000, 'SKU-' || ((n * 3 + k) % 5000),
                    1 + k, 10
             FROM generate_series(1, {orders}) n, generate_series(0, 2) k"
        ),
        // Ten events per order; the last of each order's events are the failed ones.
        format!(
            "INSERT INTO inbox (webhook_id, shop, topic, api_version, triggered_at, received_at,
                                inserted_at, source, stripping, original_bytes, payload, status,
                                attempts, processed_at, processed_count, outcome, outcome_reason,
                                subject, last_error)
             SELECT 'wh-' || i, '{SHOP}',
                    CASE WHEN e = 0 THEN 'orders/create' ELSE 'orders/updated' END,
                    '2026-10', t, t, t, 'edge', 'v1', 2000,
                    jsonb_build_object('id', o, 'admin_graphql_api_id', 'gid://shopify/Order/' || o,
                                       'name', '#' || (1000 + o),
                                       'updated_at', t),
                    CASE WHEN i <= {dead} THEN 'dead'
                         WHEN i <= {dead} + {quarantined} THEN 'quarantined' ELSE 'done' END,
                    1, CASE WHEN i > {dead} + {quarantined} THEN t + interval '40 ms' END,
                    CASE WHEN i > {dead} + {quarantined} THEN 1 ELSE 0 END,
                    CASE WHEN i > {dead} + {quarantined}
                         THEN CASE WHEN e = 9 THEN 'stale' ELSE 'applied' END END,
                    CASE WHEN i > {dead} + {quarantined} AND e = 9
                         THEN 'older than the stored version' END,
                    'gid://shopify/Order/' || o,
                    CASE WHEN i <= {dead} THEN 'handler failed: reason ' || (i % {dead_r})
                         WHEN i <= {dead} + {quarantined} THEN 'not JSON: reason ' || (i % {quarantined_r}) END
             FROM (SELECT i, (i - 1) / 10 + 1 AS o, (i - 1) % 10 AS e,
                          now() - interval '20 days' + i * interval '1 ms' AS t
                   FROM generate_series(1, {}) i) s",
            args.inbox
        ),
        format!(
            "INSERT INTO rules_push_errors (shop, company_location, error)
             SELECT '{SHOP}', 'gid://shopify/CompanyLocation/' || n,
                    'metafieldsSet: userErrors ' || (n % {push_r})
             FROM generate_series(1, {push}) n"
        ),
        format!(
            "INSERT INTO draft_order_jobs (id, shop, quote_id, company_location_id, request,
                                           status, error, finished_at)
             SELECT 'dq_' || lpad(to_hex(n), 20, '0'), '{SHOP}', 'Q-' || n, 'loc-' || (n % 50),
                    '{{}}', 'failed', 'draftOrderCreate: reason ' || (n % {drafts_r}), now()
             FROM generate_series(1, {drafts}) n"
        ),
        format!(
            "INSERT INTO salesforce_outbox (shop, object, record_key, status, last_error)
             SELECT '{SHOP}', 'order', n::text, 'dead', 'INVALID_FIELD: reason ' || (n % {sf_r})
             FROM generate_series(1, {sf}) n"
        ),
        format!(
            "INSERT INTO reconcile_runs (shop, scope, trigger, mode, finished_at)
             VALUES ('{SHOP}', 'orders', 'schedule', 'report', now())"
        ),
        format!(
            "INSERT INTO reconcile_findings (shop, run_id, kind, record, error)
             SELECT '{SHOP}', (SELECT max(id) FROM reconcile_runs), 'order_missing', n::text,
                    'heal failed: reason ' || (n % {findings_r})
             FROM generate_series(1, {findings}) n"
        ),
        "ANALYZE".to_owned(),
    ];
    for sql in statements {
        sqlx::query(&sql)
            .execute(pool)
            .await
            .with_context(|| sql.lines().next().unwrap_or_default().to_owned())?;
    }
    Ok(())
}
