//! The first resync of a shop with no catalog row, loaded straight into the live tables.
//!
//! Staging then merging writes every row twice: a COPY into staging, then an `INSERT … SELECT`
//! about as costly as a COPY into the live tables. When there is nothing to compare with,
//! the rows go to the live tables once, in ONE transaction on one connection ([`begin`]):
//! it takes the shop's lock (shared, as the merge does) and goes on only if the shop is not
//! redacted, has no catalog row, no B2B rule (the stock trigger must see a level's variant,
//! which a chunked load may not have written yet) and no linked reconciliation run; otherwise
//! the runner stages as usual. Each kind's rows are encoded into a buffer of its own and, once
//! it holds [`CHUNK`] bytes, sent in key order ([`KeyOrdered`]) as one binary `COPY … FROM
//! STDIN` into the live table by a writer task, so parsing and PostgreSQL's inserts overlap;
//! memory is the buffers and the chunks in flight, plus the ids of the export's products (8
//! bytes and change each). At the end the variants whose product is not in the export are
//! deleted (the merge never writes them): the load remembers the product ids its variants
//! named that no product line had, so this is one index lookup per such id, none in a
//! consistent export. The caller then marks the run completed in the same transaction
//! ([`Loaded`]). Readers see nothing until it commits; the export's digests are stored after it
//! ([`store_digests`]).
//!
//! A webhook committing a row under one of the export's keys makes a COPY fail with a unique
//! violation (one still in flight makes it wait): the runner then imports the file again
//! through staging, whose merge takes the guarded path. The transaction lasts the whole
//! download, where a staged import holds one only for its merge.

use std::collections::HashSet;

use bytes::Bytes;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wholesail_webhook::ShopDomain;

use super::copy::{encode_live, Live, StagedCounts, KINDS};
use super::digest::ProductDigests;
use super::jsonl::Record;
use super::key_order::{self, KeyOrdered};
use super::merge::{self, MergeSummary};
pub use super::scope::LoadedDigests;

/// Bytes of encoded rows per COPY statement.
pub const CHUNK: usize = 1024 * 1024;

/// Chunks encoded ahead of the writer.
const IN_FLIGHT: usize = 2;

/// The COPY statement of each kind, in [`KINDS`] order.
const COPIES: [&str; 4] = [
    "COPY products (shop, id, admin_graphql_api_id, title, handle, status, vendor, product_type,
                    tags, source_updated_at, written_by) FROM STDIN (FORMAT binary)",
    "COPY variants (shop, id, product_id, sku, barcode, title, price, compare_at_price, position,
                    inventory_item_id, source_updated_at, written_by) FROM STDIN (FORMAT binary)",
    "COPY inventory_levels (shop, inventory_item_id, location_id, available, source_updated_at,
                            source_digest, written_by) FROM STDIN (FORMAT binary)",
    "COPY catalog_metafields (shop, metafield_id, owner_type, owner_id, namespace, key, type,
                              value, written_by) FROM STDIN (FORMAT binary)",
];

/// Why a direct load stopped.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// A statement failed (a unique violation when a webhook wrote one of the keys).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The writer task panicked.
    #[error("the COPY writer stopped: {0}")]
    Writer(#[from] tokio::task::JoinError),
    /// PostgreSQL did not count the rows that were sent.
    #[error("COPY reported {written:?} rows for the {read:?} read")]
    Count {
        /// Rows by kind, as the COPYs reported them.
        written: [u64; 4],
        /// Rows by kind, as read from the export.
        read: [u64; 4],
    },
}

/// A transaction and the rows each kind's COPYs reported.
type Written = (Transaction<'static, Postgres>, [u64; 4]);

/// One kind's rows, ready to send.
struct Chunk {
    kind: usize,
    bytes: Bytes,
}

/// A direct load in progress.
pub struct Direct {
    chunks: Option<mpsc::Sender<Chunk>>,
    writer: JoinHandle<Result<Written, sqlx::Error>>,
    bufs: [KeyOrdered; 4],
    counts: StagedCounts,
    /// Ids of the products read so far.
    products: HashSet<i64>,
    /// Product ids variants named that no product line has had yet.
    absent: HashSet<i64>,
    shop: String,
    written_by: String,
}

/// A finished direct load, its transaction still open for the run's `completed` status.
pub struct Loaded {
    /// The transaction holding every row.
    pub tx: Transaction<'static, Postgres>,
    /// Rows read from the export, by kind.
    pub staged: StagedCounts,
    /// Rows written (all inserted).
    pub merged: MergeSummary,
}

/// Starts a direct load of `shop` for run `run` when it applies (see the module), or `None`
/// (nothing held) when the run must stage.
pub async fn begin(
    pool: &PgPool,
    run: i64,
    shop: &ShopDomain,
) -> Result<Option<Direct>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    crate::shop_lock::shared(&mut tx, shop).await?;
    let eligible = !crate::shop_lock::is_redacted(&mut tx, shop).await?
        && merge::shop_is_empty(&mut tx, shop).await?
        && sqlx::query_scalar!(
            r#"SELECT NOT EXISTS (SELECT 1 FROM rule_line_limits WHERE shop = $1)
                AND NOT EXISTS (SELECT 1 FROM rule_quotas WHERE shop = $1)
                AND NOT EXISTS (SELECT 1 FROM rule_sku_warehouses WHERE shop = $1)
                AND NOT EXISTS (SELECT 1 FROM rule_sku_regions WHERE shop = $1)
                AND NOT EXISTS (SELECT 1 FROM reconcile_runs
                                WHERE shop = $1 AND catalog_run = $2) AS "eligible!""#,
            shop.as_str(),
            run,
        )
        .fetch_one(&mut *tx)
        .await?;
    if !eligible {
        return Ok(None);
    }
    super::scope::see_marks(&mut tx, shop.as_str()).await?;
    let (chunks, rx) = mpsc::channel(IN_FLIGHT);
    let buf = || KeyOrdered::new(CHUNK + (CHUNK >> 3));
    Ok(Some(Direct {
        chunks: Some(chunks),
        writer: tokio::spawn(write(tx, rx)),
        bufs: [buf(), buf(), buf(), buf()],
        counts: StagedCounts::default(),
        products: HashSet::new(),
        absent: HashSet::new(),
        shop: shop.as_str().to_owned(),
        written_by: merge::written_by(run),
    }))
}

/// The writer task: each chunk as one COPY into its live table.
async fn write(
    mut tx: Transaction<'static, Postgres>,
    mut chunks: mpsc::Receiver<Chunk>,
) -> Result<Written, sqlx::Error> {
    let mut rows = [0u64; 4];
    while let Some(c) = chunks.recv().await {
        let mut copy = tx.copy_in_raw(COPIES[c.kind]).await?;
        copy.send(c.bytes).await?;
        rows[c.kind] += copy.finish().await?;
    }
    Ok((tx, rows))
}

/// Stores the digests of the export direct load `run` of `shop` committed, after its commit
/// (see [`LoadedDigests`] for what may stop it): 0.5 s of work at 1M variants that the
/// catalog's readers need not wait for. A failure is logged: the next resync then compares
/// everything.
pub async fn store_digests(
    pool: &PgPool,
    shop: &ShopDomain,
    run: i64,
    digests: &ProductDigests,
) -> Option<LoadedDigests> {
    match super::scope::store_loaded(pool, shop, run, digests).await {
        Ok(stored) => {
            if stored != LoadedDigests::Stored {
                tracing::info!(run, ?stored, "the direct load's digests were not stored");
            }
            Some(stored)
        }
        Err(e) => {
            tracing::warn!(run, error = %e,
                "storing the direct load's digests failed: the next resync compares everything");
            None
        }
    }
}

/// Analyses the live catalog tables after a direct load of run `run` committed: they were
/// filled without statistics, and until autovacuum gets to them the planner misjudges every
/// statement on them (a resync right after the first load read all 1M live variants through
/// a bitmap of the shop's rows to find 40,000 by id). A failure is logged and left to
/// autovacuum.
pub async fn analyze_live(pool: &PgPool, run: i64) {
    if let Err(e) = sqlx::query!("ANALYZE products, variants, inventory_levels, catalog_metafields")
        .execute(pool)
        .await
    {
        tracing::warn!(run, error = %e, "analysing the catalog tables after the direct load failed");
    }
}

impl Drop for Direct {
    /// An abandoned load (an error, a cancel) stops its writer; the transaction rolls back.
    fn drop(&mut self) {
        self.writer.abort();
    }
}

impl Direct {
    /// Encodes `record` into its kind's buffer and hands a full buffer to the writer.
    pub async fn write(&mut self, record: &Record<'_>) -> Result<(), DirectError> {
        match record {
            Record::Product(p) => {
                self.products.insert(p.id);
                self.absent.remove(&p.id);
            }
            Record::Variant(v) if !self.products.contains(&v.product_id) => {
                self.absent.insert(v.product_id);
            }
            _ => {}
        }
        let k = self.counts.add(record);
        let live = Live {
            shop: &self.shop,
            written_by: &self.written_by,
        };
        self.bufs[k].push(key_order::key(record), |buf| {
            encode_live(record, &live, buf)
        });
        if self.bufs[k].len() >= CHUNK {
            self.send(k).await?;
        }
        Ok(())
    }

    /// Sends kind `k`'s buffered rows, if any, as one COPY; a writer that has stopped answers
    /// with its error.
    async fn send(&mut self, k: usize) -> Result<(), DirectError> {
        if self.bufs[k].is_empty() {
            return Ok(());
        }
        let bytes = self.bufs[k].take();
        let sent = match &self.chunks {
            Some(chunks) => chunks.send(Chunk { kind: k, bytes }).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer dropped its end: it returned its error.
        self.chunks = None;
        (&mut self.writer).await??;
        unreachable!("the COPY writer ended while chunks could still be sent")
    }

    /// Sends the last rows, waits for every COPY, checks PostgreSQL counted what was read,
    /// deletes the variants whose product is not in the export, the shop's digests (the export's
    /// are stored after the commit, [`store_digests`]) and the marks seen when the load began.
    pub async fn finish(mut self) -> Result<Loaded, DirectError> {
        for k in 0..KINDS.len() {
            self.send(k).await?;
        }
        self.chunks = None;
        let (mut tx, rows) = (&mut self.writer).await??;
        let staged = self.counts;
        let read = [
            staged.products,
            staged.variants,
            staged.inventory_levels,
            staged.metafields,
        ];
        if rows != read {
            return Err(DirectError::Count {
                written: rows,
                read,
            });
        }
        // Variants of products the export lacks. Found from what was read rather than by an
        // anti-join of the variants just written with the products (0.55 s at 1M variants).
        let mut orphans = 0;
        if !self.absent.is_empty() {
            let absent: Vec<i64> = self.absent.iter().copied().collect();
            orphans = sqlx::query!(
                "DELETE FROM variants
                 WHERE shop = $1 AND written_by = $2 AND product_id = ANY($3)",
                self.shop,
                self.written_by,
                &absent,
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        super::scope::lock_digests(&mut tx, &self.shop).await?;
        super::scope::forget_digests(&mut tx, &self.shop).await?;
        super::scope::forget_seen_marks(&mut tx, &self.shop).await?;
        let [products, variants, levels, metafields] = rows;
        Ok(Loaded {
            tx,
            staged,
            merged: MergeSummary::inserted([products, variants - orphans, levels, metafields]),
        })
    }
}
