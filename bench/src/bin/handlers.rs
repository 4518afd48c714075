//! `cargo xtask bench handlers`: the time to apply one stripped 500-line order through
//! `handlers::apply` (parse into typed structs, version-guarded upsert, line set replacement,
//! commit), beside a reference measured in the same run: the same order row and 500 line rows
//! written by two plain multi-row `INSERT … VALUES` statements with no guards, in one committed
//! transaction, into the same tables.
//!
//! The same history of a second order goes through the workers' set path
//! (`handlers::apply_set_in_batch`, a set of one event), timed the same way.
//!
//! Two passes: durable commits, then `synchronous_commit = off`, which leaves out the WAL flush
//! (shared with every other process on the machine, so the noisiest part) and shows the
//! handlers' own cost. Needs `DATABASE_URL` (the xtask sets it); works in a scratch database
//! `wholesail_bench_handlers`, recreated on each run. Cases are interleaved round by round so
//! machine noise hits them alike; figures are medians.

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::Value;
use shopify_simulator::payloads::{order, OrderSpec};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, Postgres, QueryBuilder};
use wholesail_bench::median;
use wholesail_origin::handlers::{self, InboxEvent, Outcome};

const LINES: usize = 500;
const ROUNDS: usize = 61;
const DB: &str = "wholesail_bench_handlers";
const SHOP: &str = "bench.myshopify.com";

/// A stripped `orders/*` event for the order `body`.
fn event(id: i64, topic: &str, body: &Value) -> Result<InboxEvent> {
    let stripped = wholesail_webhook::strip(topic, body.to_string().as_bytes())?;
    Ok(InboxEvent {
        id,
        webhook_id: format!("bench-{id}"),
        event_id: None,
        shop: wholesail_bench::shop_domain(SHOP),
        topic: topic.to_owned(),
        payload: stripped.json,
    })
}

fn spec(seed: u64, id: u64, updated_at: &str) -> OrderSpec {
    OrderSpec {
        seed,
        id,
        lines: LINES,
        updated_at: updated_at.to_owned(),
    }
}

/// How the workers apply an event.
#[derive(Clone, Copy)]
enum Path {
    /// One event (`handlers::apply`).
    Event,
    /// A batch's order events as a set (`handlers::apply_set_in_batch`), here a set of one.
    Set,
}

/// Applies `event` by `path` in a committed transaction, as the worker does; seconds taken.
async fn timed(
    conn: &mut PgConnection,
    event: &InboxEvent,
    path: Path,
    expect: Outcome,
) -> Result<f64> {
    let t = Instant::now();
    let mut tx = conn.begin().await?;
    let outcome = match path {
        Path::Event => Ok(handlers::apply(&mut tx, event).await?),
        Path::Set => match handlers::apply_set_in_batch(&mut tx, &[event])
            .await?
            .as_slice()
        {
            [Ok(v)] => Ok(v.outcome()),
            other => Err(format!("{other:?}")),
        },
    };
    tx.commit().await?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        outcome.as_ref() == Ok(&expect),
        "{}: {outcome:?}, expected {expect:?}",
        event.topic
    );
    Ok(secs)
}

/// The reference: the same rows by plain multi-row INSERTs; seconds. With `parse`, the timing
/// includes parsing the payload text into a `serde_json::Value` (untyped); without, the rows
/// are ready before the clock starts.
async fn timed_reference(
    conn: &mut PgConnection,
    shop: &str,
    payload: &str,
    parse: bool,
) -> Result<f64> {
    let parsed: Value = serde_json::from_str(payload)?;
    let t = Instant::now();
    let order: Value = if parse {
        serde_json::from_str(payload)?
    } else {
        parsed
    };
    let lines = order["line_items"].as_array().context("line_items")?;
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO orders (shop, id, name, email, currency, total_price, subtotal_price,
                             total_tax, line_count, source_updated_at, source_digest)
         VALUES ($1, $2, $3, $4, $5, $6::numeric, $7::numeric, $8::numeric, $9, now(), 0)",
    )
    .bind(shop)
    .bind(order["id"].as_i64())
    .bind(order["name"].as_str())
    .bind(order["email"].as_str())
    .bind(order["currency"].as_str())
    .bind(order["total_price"].as_str())
    .bind(order["subtotal_price"].as_str())
    .bind(order["total_tax"].as_str())
    .bind(lines.len() as i32)
    .execute(&mut *tx)
    .await?;
    let mut insert: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO order_lines (shop, order_id, id, position, variant_id, product_id, sku,
                                  quantity, current_quantity, price, total_discount) ",
    );
    insert.push_values(lines.iter().enumerate(), |mut row, (i, l)| {
        row.push_bind(shop)
            .push_bind(order["id"].as_i64())
            .push_bind(l["id"].as_i64())
            .push_bind(i as i32 + 1)
            .push_bind(l["variant_id"].as_i64())
            .push_bind(l["product_id"].as_i64())
            .push_bind(l["sku"].as_str())
            .push_bind(l["quantity"].as_i64().map(|q| q as i32))
            .push_bind(l["current_quantity"].as_i64().map(|q| q as i32))
            .push_bind(l["price"].as_str())
            .push_unseparated("::numeric")
            .push_bind(l["total_discount"].as_str())
            .push_unseparated("::numeric");
    });
    insert.build().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(t.elapsed().as_secs_f64())
}

/// A fresh scratch database with the migrations applied.
async fn scratch_database() -> Result<PgConnection> {
    let url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set: run `eval \"$(cargo xtask pg)\"` first")?;
    let admin_opts: PgConnectOptions = url.parse()?;
    let mut admin = admin_opts.connect().await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {DB}"))
        .execute(&mut admin)
        .await?;
    let opts = admin_opts.database(DB);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts.clone())
        .await?;
    sqlx::migrate!("../migrations").run(&pool).await?;
    pool.close().await;
    Ok(opts.connect().await?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut conn = scratch_database().await?;
    const T1: &str = "2026-11-23T10:00:00-05:00";
    const T2: &str = "2026-11-23T10:05:00-05:00";
    const T3: &str = "2026-11-23T10:10:00-05:00";

    // Setup (not timed): per round, a new order, a newer version with the same lines (as
    // orders/paid sends), a newer version with every line changed (another seed, same line
    // ids), and the create again, late.
    let mut rounds = Vec::with_capacity(ROUNDS);
    let mut set_rounds = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS as u64 {
        let id = 6_000_000_000_000 + round;
        let n = round as i64 * 10;
        let create = event(n + 1, "orders/create", &order(&spec(round, id, T1)))?;
        let mut paid = order(&spec(round, id, T2));
        paid["financial_status"] = "paid".into();
        let paid = event(n + 2, "orders/paid", &paid)?;
        let edited = event(
            n + 3,
            "orders/updated",
            &order(&spec(round + 1_000, id, T3)),
        )?;
        let late = InboxEvent {
            id: n + 4,
            webhook_id: format!("late-{round}"),
            ..create.clone()
        };
        // The same history for another order, applied through the workers' set path.
        let id = 7_000_000_000_000 + round;
        let set_create = event(n + 5, "orders/create", &order(&spec(round, id, T1)))?;
        let mut set_paid = order(&spec(round, id, T2));
        set_paid["financial_status"] = "paid".into();
        let set_paid = event(n + 6, "orders/paid", &set_paid)?;
        let set_edited = event(
            n + 7,
            "orders/updated",
            &order(&spec(round + 1_000, id, T3)),
        )?;
        rounds.push([create, paid, edited, late]);
        set_rounds.push([set_create, set_paid, set_edited]);
    }
    let payload_bytes = rounds[0][0].payload.len();
    println!(
        "500-line stripped order ({payload_bytes} B payload), median of {ROUNDS} transactions \
         per case, one connection, cases interleaved:"
    );
    for (mode, setting) in [
        ("durable commits (synchronous_commit = on)", "on"),
        (
            "without the commit's WAL flush (synchronous_commit = off): the handler's own cost",
            "off",
        ),
    ] {
        sqlx::query("TRUNCATE orders, order_lines")
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("SET synchronous_commit = {setting}"))
            .execute(&mut conn)
            .await?;
        let mut samples: [Vec<f64>; 9] = Default::default();
        for ([create, paid, edited, late], [set_create, set_paid, set_edited]) in
            rounds.iter().zip(&set_rounds)
        {
            samples[0].push(
                timed_reference(&mut conn, "reference.myshopify.com", &create.payload, false)
                    .await?,
            );
            samples[1].push(
                timed_reference(&mut conn, "parsed.myshopify.com", &create.payload, true).await?,
            );
            samples[2].push(timed(&mut conn, create, Path::Event, Outcome::Applied).await?);
            samples[3].push(timed(&mut conn, paid, Path::Event, Outcome::Applied).await?);
            samples[4].push(timed(&mut conn, edited, Path::Event, Outcome::Applied).await?);
            samples[5].push(timed(&mut conn, late, Path::Event, Outcome::Stale).await?);
            samples[6].push(timed(&mut conn, set_create, Path::Set, Outcome::Applied).await?);
            samples[7].push(timed(&mut conn, set_paid, Path::Set, Outcome::Applied).await?);
            samples[8].push(timed(&mut conn, set_edited, Path::Set, Outcome::Applied).await?);
        }
        let lines: i64 = sqlx::query_scalar("SELECT count(*) FROM order_lines WHERE shop = $1")
            .bind(SHOP)
            .fetch_one(&mut conn)
            .await?;
        anyhow::ensure!(lines == (2 * ROUNDS * LINES) as i64, "{lines} lines stored");

        let medians = samples.map(median);
        let reference = medians[0];
        println!("\n{mode}\n");
        println!("| case | median ms | lines/s | vs reference |");
        println!("|---|---:|---:|---:|");
        for (name, secs) in [
            "reference: plain multi-row INSERT, no guards (pre-parsed)",
            "reference + parsing the payload into serde_json::Value",
            "apply orders/create (new order)",
            "apply orders/paid (newer, lines unchanged)",
            "apply orders/updated (newer, all 500 lines changed)",
            "apply stale orders/create (guard rejects)",
            "set path (workers' batch): orders/create",
            "set path: orders/paid (lines unchanged)",
            "set path: orders/updated (all 500 lines changed)",
        ]
        .into_iter()
        .zip(medians)
        {
            println!(
                "| {name} | {:.2} | {:.0} | {:.2}× |",
                secs * 1e3,
                LINES as f64 / secs,
                secs / reference
            );
        }
    }
    Ok(())
}
