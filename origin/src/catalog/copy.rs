//! Binary COPY of routed records into one run's staging tables.
//!
//! Each run gets its own UNLOGGED tables (`catalog_stage_<run>_<kind>`, made `LIKE` the
//! templates in `migrations/0010_catalog.sql`). Lines of different kinds interleave in an
//! export, so each kind has its own connection with its own `COPY … FROM STDIN (FORMAT
//! binary)` open for the whole import: a record is encoded and handed to its table's stream
//! at once, and nothing is held back. Memory is the writers' buffers, whatever the file size.

use std::pin::Pin;

use serde::Serialize;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};

use super::jsonl::Record;

/// The staged kinds, in merge order.
pub const KINDS: [&str; 4] = ["products", "variants", "inventory_levels", "metafields"];

/// The staging table of `kind` for run `run`.
pub fn table(run: i64, kind: &str) -> String {
    format!("catalog_stage_{run}_{kind}")
}

/// Rows staged by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StagedCounts {
    /// Product rows.
    pub products: u64,
    /// Variant rows.
    pub variants: u64,
    /// Inventory level rows.
    pub inventory_levels: u64,
    /// Metafield rows.
    pub metafields: u64,
}

impl StagedCounts {
    /// All rows.
    pub fn total(&self) -> u64 {
        self.products + self.variants + self.inventory_levels + self.metafields
    }
}

struct Stream {
    writer: Pin<Box<BinaryCopyInWriter>>,
    // Kept alive while the COPY runs.
    _client: Client,
}

/// The open COPY streams of one run.
pub struct Staging {
    streams: Vec<Stream>,
    counts: StagedCounts,
}

fn columns(kind: &str) -> (&'static str, Vec<Type>) {
    use Type as T;
    match kind {
        "products" => (
            "id, gid, title, handle, status, vendor, product_type, tags, updated_at",
            vec![T::INT8, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::TIMESTAMPTZ],
        ),
        "variants" => (
            "id, product_id, sku, barcode, title, price, compare_at_price, position, inventory_item_id, updated_at",
            vec![T::INT8, T::INT8, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::INT4, T::INT8, T::TIMESTAMPTZ],
        ),
        "inventory_levels" => (
            "variant_id, inventory_item_id, location_id, available, updated_at",
            vec![T::INT8, T::INT8, T::INT8, T::INT4, T::TIMESTAMPTZ],
        ),
        _ => (
            "id, owner_type, owner_id, namespace, key, type, value",
            vec![T::INT8, T::TEXT, T::INT8, T::TEXT, T::TEXT, T::TEXT, T::TEXT],
        ),
    }
}

/// Connects to the database with `config`, the connection driven by a spawned task.
pub fn connect(
    config: &tokio_postgres::Config,
) -> impl std::future::Future<Output = Result<Client, tokio_postgres::Error>> + Send + 'static {
    // Owned, so the future borrows nothing (callers' futures stay `Send` for any lifetime).
    let config = config.clone();
    async move {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "catalog COPY connection ended");
            }
        });
        Ok(client)
    }
}

/// Drops the staging tables of `run`, if they exist.
pub async fn drop_tables(client: &Client, run: i64) -> Result<(), tokio_postgres::Error> {
    let sql: String = KINDS
        .iter()
        .map(|k| format!("DROP TABLE IF EXISTS {};", table(run, k)))
        .collect();
    client.batch_execute(&sql).await
}

impl Staging {
    /// (Re)creates the staging tables of `run` and opens one COPY stream per kind.
    pub async fn open(
        config: &tokio_postgres::Config,
        run: i64,
    ) -> Result<Staging, tokio_postgres::Error> {
        let admin = connect(config).await?;
        drop_tables(&admin, run).await?;
        let create: String = KINDS
            .iter()
            .map(|k| {
                format!(
                    "CREATE UNLOGGED TABLE {} (LIKE catalog_stage_{k});",
                    table(run, k)
                )
            })
            .collect();
        admin.batch_execute(&create).await?;
        let mut streams = Vec::with_capacity(KINDS.len());
        for kind in KINDS {
            let client = connect(config).await?;
            let (cols, types) = columns(kind);
            let sink = client
                .copy_in(&format!(
                    "COPY {} ({cols}) FROM STDIN (FORMAT binary)",
                    table(run, kind)
                ))
                .await?;
            streams.push(Stream {
                writer: Box::pin(BinaryCopyInWriter::new(sink, &types)),
                _client: client,
            });
        }
        Ok(Staging {
            streams,
            counts: StagedCounts::default(),
        })
    }

    /// Rows written so far.
    pub fn counts(&self) -> StagedCounts {
        self.counts
    }

    /// Encodes `record` into its table's COPY stream.
    pub async fn write(&mut self, record: &Record<'_>) -> Result<(), tokio_postgres::Error> {
        match record {
            Record::Product(p) => {
                self.counts.products += 1;
                let row: [&(dyn ToSql + Sync); 9] = [
                    &p.id,
                    &p.gid,
                    &p.title.as_deref(),
                    &p.handle.as_deref(),
                    &p.status,
                    &p.vendor.as_deref(),
                    &p.product_type.as_deref(),
                    &p.tags,
                    &p.updated_at,
                ];
                self.streams[0].writer.as_mut().write(&row).await
            }
            Record::Variant(v) => {
                self.counts.variants += 1;
                let row: [&(dyn ToSql + Sync); 10] = [
                    &v.id,
                    &v.product_id,
                    &v.sku.as_deref(),
                    &v.barcode.as_deref(),
                    &v.title.as_deref(),
                    &v.price,
                    &v.compare_at_price,
                    &v.position,
                    &v.inventory_item_id,
                    &v.updated_at,
                ];
                self.streams[1].writer.as_mut().write(&row).await
            }
            Record::InventoryLevel(l) => {
                self.counts.inventory_levels += 1;
                let row: [&(dyn ToSql + Sync); 5] = [
                    &l.variant_id,
                    &l.inventory_item_id,
                    &l.location_id,
                    &l.available,
                    &l.updated_at,
                ];
                self.streams[2].writer.as_mut().write(&row).await
            }
            Record::Metafield(m) => {
                self.counts.metafields += 1;
                let row: [&(dyn ToSql + Sync); 7] = [
                    &m.id,
                    &m.owner_type,
                    &m.owner_id,
                    &m.namespace.as_ref(),
                    &m.key.as_ref(),
                    &m.kind.as_ref(),
                    &m.value.as_ref(),
                ];
                self.streams[3].writer.as_mut().write(&row).await
            }
        }
    }

    /// Ends every COPY (the rows become visible) and returns the counts.
    pub async fn finish(mut self) -> Result<StagedCounts, tokio_postgres::Error> {
        for s in &mut self.streams {
            s.writer.as_mut().finish().await?;
        }
        Ok(self.counts)
    }
}
