//! Compaction of the catalog's write marks (`catalog_dirty`): between two resyncs every
//! webhook write adds one, so a busy shop's marks would grow with its traffic. What a mark
//! says is only "compare this key at the next merge", so repeated marks of one key are
//! reduced to one.
//!
//! Only marks older than [`SETTLED`] are touched. A merge deletes exactly the marks it saw
//! when it began; a mark committed after that (even one with a smaller id, from a transaction
//! that began earlier) must survive it. Once every mark of a key is an hour old, their
//! transactions have long committed and any merge that saw some of them has ended (neither
//! lasts an hour), so keeping any one of them keeps the key marked.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// The age after which repeated marks are compacted.
pub const SETTLED: Duration = Duration::from_secs(3600);

/// Time between compactions in `origin serve`.
pub const INTERVAL: Duration = Duration::from_secs(600);

/// Deletes every mark older than [`SETTLED`] that repeats an older-than-[`SETTLED`] mark of
/// the same shop and key with a larger id; returns how many.
pub async fn compact(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM catalog_dirty WHERE (shop, mark_id) IN (
             SELECT shop, mark_id FROM (
                 SELECT shop, mark_id,
                        row_number() OVER (PARTITION BY shop, product_id, variant_id,
                                                        inventory_item_id
                                           ORDER BY mark_id DESC) AS newer
                 FROM catalog_dirty WHERE marked_at < now() - $1::float8 * interval '1 second'
             ) m
             WHERE newer > 1)",
        SETTLED.as_secs_f64(),
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// Runs [`compact`] every `interval` until `shutdown`.
pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
        match compact(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(marks = n, "catalog write marks compacted"),
            Err(e) => tracing::warn!(error = %e, "catalog marks not compacted; next pass retries"),
        }
    }
}
