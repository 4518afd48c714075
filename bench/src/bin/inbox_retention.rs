//! `cargo xtask bench inbox-retention [--rows N]`: what purging old done rows costs, today's
//! inbox (one table; [`retention::purge`]'s batched `DELETE`s) against the same rows in an
//! inbox partitioned by day (`DETACH PARTITION` + `DROP TABLE` per expired day).
//!
//! Both tables get N rows (default 1,000,000) of small stripped orders spread evenly over 60
//! days, all `done`, with the inbox's indexes; the purge removes the 30 oldest days (half).
//! Reported: wall time, WAL written, and the table's size after the purge (a `DELETE` leaves
//! the space to autovacuum; a dropped partition returns it at once). Needs `DATABASE_URL`; works
//! in the scratch database `wholesail_bench_retention`, recreated on each run.
//!
//! The partitioned table's unique key has to include the partition key (`webhook_id,
//! inserted_at`): PostgreSQL has no global unique index, so it no longer deduplicates a
//! redelivery that lands in another day's partition. That is why the inbox stays one table
//! (see origin/src/pipeline/retention.rs and the report in BENCHMARKS.md).

use std::time::Instant;

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tokio_util::sync::CancellationToken;
use wholesail_origin::pipeline::retention::{self, Settings};

const DB: &str = "wholesail_bench_retention";
const DAYS: i64 = 60;
const KEEP_DAYS: u32 = 30;

/// A payload of about the size of a small stripped order (~400 bytes).
const PAYLOAD: &str = r##"'{"id": 1, "name": "#1001", "email": "buyer@example.com", "currency": "USD",
  "total_price": "120.00", "financial_status": "paid", "updated_at": "2026-11-23T10:00:00Z",
  "customer": {"id": 7000000000001, "email": "buyer@example.com"},
  "shipping_address": {"country_code": "US", "province_code": "OH", "zip": "43004",
                       "city": "Columbus"},
  "line_items": [{"id": 1, "sku": "A-1", "quantity": 2, "price": "30.00"},
                 {"id": 2, "sku": "A-2", "quantity": 2, "price": "30.00"}]}'::jsonb"##;

async fn scratch_database() -> Result<PgPool> {
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
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(admin_opts.database(DB))
        .await?;
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
}

/// Fills `table` with `rows` done rows over the last [`DAYS`] days, oldest first.
async fn fill(pool: &PgPool, table: &str, rows: i64) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {table} (webhook_id, shop, topic, api_version, received_at, inserted_at,
                              stripping, original_bytes, payload, status, processed_at,
                              processed_count)
         SELECT 'w-' || g, 'shop-' || (g % 50) || '.myshopify.com', 'orders/create', '2025-07',
                t, t, 'allowlist', 4000, {PAYLOAD}, 'done', t, 1
         FROM generate_series(1, $1) AS g,
              LATERAL (SELECT now() - interval '{DAYS} days'
                              + (g::float8 / $1) * interval '{DAYS} days' AS t) AS ts"
    ))
    .bind(rows)
    .execute(pool)
    .await?;
    sqlx::query(&format!("VACUUM ANALYZE {table}"))
        .execute(pool)
        .await?;
    Ok(())
}

/// The partitioned inbox: the same columns and indexes, one partition per day.
async fn partitioned(pool: &PgPool) -> Result<()> {
    sqlx::query(
        "CREATE TABLE inbox_by_day (LIKE inbox INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
         PARTITION BY RANGE (inserted_at)",
    )
    .execute(pool)
    .await?;
    for ddl in [
        "ALTER TABLE inbox_by_day ADD PRIMARY KEY (shop, id, inserted_at)",
        "ALTER TABLE inbox_by_day ADD UNIQUE (shop, webhook_id, inserted_at)",
        "CREATE INDEX ON inbox_by_day (shop, run_at, id) WHERE status = 'pending'",
        "CREATE INDEX ON inbox_by_day (run_at) WHERE status = 'pending'",
        "CREATE INDEX ON inbox_by_day (locked_until) WHERE status = 'processing'",
        "CREATE INDEX ON inbox_by_day (status, inserted_at)
             WHERE status IN ('dead', 'quarantined')",
        "CREATE INDEX ON inbox_by_day (shop, topic, inserted_at)",
        "CREATE INDEX ON inbox_by_day (event_id) WHERE event_id IS NOT NULL",
        "CREATE INDEX ON inbox_by_day (shop, (payload -> 'customer' ->> 'id'))
             WHERE payload ? 'customer'",
        "CREATE INDEX ON inbox_by_day (shop, lower(payload ->> 'email')) WHERE payload ? 'email'",
        "CREATE SEQUENCE inbox_by_day_id",
        "ALTER TABLE inbox_by_day ALTER id SET DEFAULT nextval('inbox_by_day_id')",
    ] {
        sqlx::query(ddl).execute(pool).await?;
    }
    for day in 0..=DAYS {
        sqlx::query(&format!(
            "CREATE TABLE inbox_day_{day} PARTITION OF inbox_by_day FOR VALUES
             FROM (date_trunc('day', now()) - interval '{from} days')
             TO (date_trunc('day', now()) - interval '{to} days')",
            from = DAYS - day,
            to = DAYS - day - 1,
        ))
        .execute(pool)
        .await?;
    }
    Ok(())
}

async fn wal_lsn(pool: &PgPool) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await?)
}

async fn wal_since(pool: &PgPool, lsn: &str) -> Result<f64> {
    let bytes: f64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8")
            .bind(lsn)
            .fetch_one(pool)
            .await?;
    Ok(bytes / 1e6)
}

async fn size_mb(pool: &PgPool, table: &str) -> Result<f64> {
    let bytes: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
         FROM pg_class c
         WHERE c.oid = $1::regclass
            OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)",
    )
    .bind(table)
    .fetch_one(pool)
    .await?;
    Ok(bytes as f64 / 1e6)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: i64 = match args.iter().position(|a| a == "--rows") {
        Some(i) => args.get(i + 1).context("--rows N")?.parse()?,
        None => 1_000_000,
    };
    let pool = scratch_database().await?;
    eprintln!("filling both tables with {rows} done rows over {DAYS} days…");
    fill(&pool, "inbox", rows).await?;
    partitioned(&pool).await?;
    fill(&pool, "inbox_by_day", rows).await?;

    let before = (
        size_mb(&pool, "inbox").await?,
        size_mb(&pool, "inbox_by_day").await?,
    );

    // Today's inbox: the retention task's batched DELETEs.
    let lsn = wal_lsn(&pool).await?;
    let t = Instant::now();
    let settings = Settings {
        retention_days: KEEP_DAYS,
        ..Settings::default()
    };
    let purged = retention::purge(&pool, &settings, &CancellationToken::new()).await?;
    let delete_secs = t.elapsed().as_secs_f64();
    let delete_wal = wal_since(&pool, &lsn).await?;
    let delete_size = size_mb(&pool, "inbox").await?;

    // Partitioned: detach and drop the expired days.
    let lsn = wal_lsn(&pool).await?;
    let t = Instant::now();
    let mut dropped_rows = 0i64;
    for day in 0..(DAYS - i64::from(KEEP_DAYS)) {
        dropped_rows +=
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM inbox_day_{day}"))
                .fetch_one(&pool)
                .await?;
        sqlx::query(&format!(
            "ALTER TABLE inbox_by_day DETACH PARTITION inbox_day_{day}"
        ))
        .execute(&pool)
        .await?;
        sqlx::query(&format!("DROP TABLE inbox_day_{day}"))
            .execute(&pool)
            .await?;
    }
    let drop_secs = t.elapsed().as_secs_f64();
    let drop_wal = wal_since(&pool, &lsn).await?;
    let drop_size = size_mb(&pool, "inbox_by_day").await?;

    println!(
        "inbox retention: {rows} done rows over {DAYS} days, purge the {} oldest days\n",
        DAYS - i64::from(KEEP_DAYS)
    );
    println!("| purge | rows | wall s | rows/s | WAL MB | table+indexes MB before → after |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| one table: batched DELETE (5,000/batch, retention::purge) | {} | {delete_secs:.2} | {:.0} | {delete_wal:.1} | {:.0} → {delete_size:.0} |",
        purged.retention,
        purged.retention as f64 / delete_secs,
        before.0
    );
    println!(
        "| partitioned by day: DETACH + DROP | {dropped_rows} | {drop_secs:.2} | {:.0} | {drop_wal:.1} | {:.0} → {drop_size:.0} |",
        dropped_rows as f64 / drop_secs,
        before.1
    );
    println!("\n(the DETACH/DROP pass counts each partition's rows first; the count is included)");
    Ok(())
}
