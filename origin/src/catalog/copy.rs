//! Binary COPY of routed records into one run's staging tables.
//!
//! Each attempt of a run (see `driver`) gets its own UNLOGGED tables
//! (`catalog_stage_<run>_<attempt>_<kind>`, made `LIKE` the templates in
//! `migrations/0010_catalog.sql`), so no two drivers ever write or read each other's. Lines of different kinds interleave in an
//! export, so each kind has its own connection with its own `COPY … FROM STDIN (FORMAT
//! binary)` open for the whole import: a record is encoded straight into its table's buffer
//! (PostgreSQL's binary row format, written by hand: no per-field dispatch), and a buffer is
//! sent once it holds [`CHUNK`] bytes. Memory is those buffers, whatever the file size.

use std::pin::Pin;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::{Client, CopyInSink};

use crate::pg_tls::PgConnect;

use super::jsonl::Record;

/// Bytes of encoded rows gathered per table before they are sent (one COPY data message).
pub const CHUNK: usize = 256 * 1024;

/// The binary COPY header: signature, flags, header extension length.
pub(super) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// 2000-01-01T00:00:00Z, PostgreSQL's epoch, in Unix microseconds.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// The staged kinds, in merge order.
pub const KINDS: [&str; 4] = ["products", "variants", "inventory_levels", "metafields"];

/// The staging table of `kind` for attempt `attempt` of run `run`.
pub fn table(run: i64, attempt: i32, kind: &str) -> String {
    format!("catalog_stage_{run}_{attempt}_{kind}")
}

/// What [`Staging::finish`] counted.
#[derive(Debug, Clone, Copy)]
pub struct Staged {
    /// Rows this process encoded and sent.
    pub written: StagedCounts,
    /// Rows the server's COPYs stored.
    pub copied: StagedCounts,
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
    /// The counts given in [`KINDS`] order.
    pub(super) fn from_kinds([products, variants, inventory_levels, metafields]: [u64; 4]) -> Self {
        StagedCounts {
            products,
            variants,
            inventory_levels,
            metafields,
        }
    }

    /// All rows.
    pub fn total(&self) -> u64 {
        self.products + self.variants + self.inventory_levels + self.metafields
    }

    /// Counts `record`; returns its kind's place in [`KINDS`].
    pub(super) fn add(&mut self, record: &Record<'_>) -> usize {
        let (k, count) = match record {
            Record::Product(_) => (0, &mut self.products),
            Record::Variant(_) => (1, &mut self.variants),
            Record::InventoryLevel(_) => (2, &mut self.inventory_levels),
            Record::Metafield(_) => (3, &mut self.metafields),
        };
        *count += 1;
        k
    }
}

struct Stream {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    buf: BytesMut,
    // Kept alive while the COPY runs.
    _client: Client,
}

impl Stream {
    /// Sends the buffer once it is full.
    async fn flush_full(&mut self) -> Result<(), tokio_postgres::Error> {
        if self.buf.len() >= CHUNK {
            self.sink.send(self.buf.split().freeze()).await?;
        }
        Ok(())
    }
}

/// The open COPY streams of one run.
pub struct Staging {
    streams: Vec<Stream>,
    counts: StagedCounts,
}

fn columns(kind: &str) -> &'static str {
    match kind {
        "products" => "id, gid, title, handle, status, vendor, product_type, tags, updated_at",
        "variants" => "id, product_id, sku, barcode, title, price, compare_at_price, position, inventory_item_id, updated_at",
        "inventory_levels" => "variant_id, inventory_item_id, location_id, available, updated_at",
        _ => "id, owner_type, owner_id, namespace, key, type, value",
    }
}

/// One row in PostgreSQL's binary COPY format: a field count, then each field as its length
/// (-1 for NULL) and its bytes in the type's binary form.
struct Row<'b>(&'b mut BytesMut);

impl Row<'_> {
    fn start(buf: &mut BytesMut, fields: i16) -> Row<'_> {
        buf.put_i16(fields);
        Row(buf)
    }

    fn null(&mut self) -> &mut Self {
        self.0.put_i32(-1);
        self
    }

    fn int8(&mut self, v: i64) -> &mut Self {
        self.0.put_i32(8);
        self.0.put_i64(v);
        self
    }

    fn opt_int8(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    fn opt_int4(&mut self, v: Option<i32>) -> &mut Self {
        match v {
            Some(v) => {
                self.0.put_i32(4);
                self.0.put_i32(v);
                self
            }
            None => self.null(),
        }
    }

    /// `text` (UTF-8 bytes). Never longer than its JSONL line, which `jsonl::parse` caps
    /// below 2 GiB, so the length fits.
    fn text(&mut self, v: &str) -> &mut Self {
        self.0.put_i32(v.len() as i32);
        self.0.put_slice(v.as_bytes());
        self
    }

    fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// `timestamptz`: microseconds since PostgreSQL's epoch.
    fn timestamptz(&mut self, t: OffsetDateTime) -> &mut Self {
        let us = t.unix_timestamp() * 1_000_000 + i64::from(t.microsecond()) - PG_EPOCH_US;
        self.int8(us)
    }

    /// `numeric` from decimal text as `jsonl` checked it (`-`, 1 to 15 integer digits, up to
    /// 4 after the point): base-10000 digits from the integer part's most significant group,
    /// then the fraction as one group, the text's fraction length as the display scale.
    /// PostgreSQL strips the zero groups this leaves (`numeric_recv`).
    fn opt_numeric(&mut self, v: Option<&str>) -> &mut Self {
        let Some(v) = v else {
            return self.null();
        };
        let (negative, v) = v.strip_prefix('-').map_or((false, v), |r| (true, r));
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        let group = |s: &str| s.bytes().fold(0i16, |n, b| n * 10 + i16::from(b - b'0'));
        let mut digits = [0i16; 5];
        let mut n = 0;
        let mut end = match int.len() % 4 {
            0 => 4,
            r => r,
        };
        let mut start = 0;
        while start < int.len() {
            digits[n] = group(&int[start..end]);
            n += 1;
            (start, end) = (end, end + 4);
        }
        let weight = n as i16 - 1;
        if !frac.is_empty() {
            digits[n] = group(frac) * 10i16.pow(4 - frac.len() as u32);
            n += 1;
        }
        self.0.put_i32(8 + 2 * n as i32);
        self.0.put_i16(n as i16);
        self.0.put_i16(weight);
        self.0.put_u16(if negative { 0x4000 } else { 0 });
        self.0.put_i16(frac.len() as i16);
        for d in &digits[..n] {
            self.0.put_i16(*d);
        }
        self
    }
}

/// Appends `record` to `buf` as one row of its kind's staging table in PostgreSQL's binary
/// COPY format (what [`Staging::write`] sends).
pub fn encode(record: &Record<'_>, buf: &mut BytesMut) {
    encode_row(record, None, buf);
}

/// The live tables' rows (`direct`): the shop first and the writer (`written_by`) last, prices
/// as `numeric`; a level carries `source_digest` 0 instead of its variant.
pub(super) struct Live<'a> {
    /// The shop's domain.
    pub shop: &'a str,
    /// The run, as `written_by` records it.
    pub written_by: &'a str,
}

/// Appends `record` to `buf` as one row of its kind's live table (`Live`'s column order).
pub(super) fn encode_live(record: &Record<'_>, live: &Live<'_>, buf: &mut BytesMut) {
    encode_row(record, Some(live), buf);
}

fn encode_row(record: &Record<'_>, live: Option<&Live<'_>>, buf: &mut BytesMut) {
    let extra = if live.is_some() { 2 } else { 0 };
    let fields = match record {
        Record::Product(_) => 9,
        Record::Variant(_) => 10,
        Record::InventoryLevel(_) => 5,
        Record::Metafield(_) => 7,
    };
    let mut row = Row::start(buf, fields + extra);
    if let Some(l) = live {
        row.text(l.shop);
    }
    match record {
        Record::Product(p) => {
            row.int8(p.id)
                .text(p.gid)
                .opt_text(p.title.as_deref())
                .opt_text(p.handle.as_deref())
                .opt_text(p.status.as_deref())
                .opt_text(p.vendor.as_deref())
                .opt_text(p.product_type.as_deref())
                .opt_text(p.tags.as_deref())
                .timestamptz(p.updated_at);
        }
        Record::Variant(v) => {
            row.int8(v.id)
                .int8(v.product_id)
                .opt_text(v.sku.as_deref())
                .opt_text(v.barcode.as_deref())
                .opt_text(v.title.as_deref());
            if live.is_some() {
                row.opt_numeric(v.price).opt_numeric(v.compare_at_price);
            } else {
                row.opt_text(v.price).opt_text(v.compare_at_price);
            }
            row.opt_int4(v.position)
                .opt_int8(v.inventory_item_id)
                .timestamptz(v.updated_at);
        }
        Record::InventoryLevel(l) => {
            if live.is_none() {
                row.int8(l.variant_id);
            }
            row.int8(l.inventory_item_id)
                .int8(l.location_id)
                .opt_int4(l.available)
                .timestamptz(l.updated_at);
            if live.is_some() {
                row.int8(0);
            }
        }
        Record::Metafield(m) => {
            row.int8(m.id)
                .text(m.owner_type)
                .int8(m.owner_id)
                .text(&m.namespace)
                .text(&m.key)
                .text(&m.kind)
                .text(&m.value);
        }
    }
    if let Some(l) = live {
        row.text(l.written_by);
    }
}

/// Connects to the database with `config` (TLS as its URL says), the connection driven by a
/// spawned task.
pub fn connect(
    config: &PgConnect,
) -> impl std::future::Future<Output = Result<Client, tokio_postgres::Error>> + Send + 'static {
    config.connect()
}

/// Drops the staging tables of attempt `attempt` of `run`, if they exist.
pub async fn drop_tables(
    client: &Client,
    run: i64,
    attempt: i32,
) -> Result<(), tokio_postgres::Error> {
    let sql: String = KINDS
        .iter()
        .map(|k| format!("DROP TABLE IF EXISTS {};", table(run, attempt, k)))
        .collect();
    client.batch_execute(&sql).await
}

/// Drops the staging tables of every attempt of `run` (left by drivers that died), once the
/// run has ended; also the unnumbered ones of runs started before attempts existed.
pub async fn drop_run_tables(client: &Client, run: i64) -> Result<(), tokio_postgres::Error> {
    let names = client
        .query(
            "SELECT tablename::text FROM pg_tables
             WHERE schemaname = current_schema() AND tablename ~ $1",
            &[&format!(
                "^catalog_stage_{run}_([0-9]+_)?(products|variants|inventory_levels|metafields)$"
            )],
        )
        .await?;
    let sql: String = names
        .iter()
        .map(|r| format!("DROP TABLE IF EXISTS \"{}\";", r.get::<_, String>(0)))
        .collect();
    client.batch_execute(&sql).await
}

impl Staging {
    /// Creates the staging tables of attempt `attempt` of `run` (an attempt's tables are
    /// created once: finding them already there is an error) and opens one COPY stream per
    /// kind.
    pub async fn open(
        config: &PgConnect,
        run: i64,
        attempt: i32,
    ) -> Result<Staging, tokio_postgres::Error> {
        let admin = connect(config).await?;
        let create: String = KINDS
            .iter()
            .map(|k| {
                format!(
                    "CREATE UNLOGGED TABLE {} (LIKE catalog_stage_{k});",
                    table(run, attempt, k)
                )
            })
            .collect();
        admin.batch_execute(&create).await?;
        let mut streams = Vec::with_capacity(KINDS.len());
        for kind in KINDS {
            let client = connect(config).await?;
            let sink = client
                .copy_in(&format!(
                    "COPY {} ({}) FROM STDIN (FORMAT binary)",
                    table(run, attempt, kind),
                    columns(kind)
                ))
                .await?;
            let mut buf = BytesMut::with_capacity(CHUNK + (CHUNK >> 3));
            buf.put_slice(HEADER);
            streams.push(Stream {
                sink: Box::pin(sink),
                buf,
                _client: client,
            });
        }
        Ok(Staging {
            streams,
            counts: StagedCounts::default(),
        })
    }

    /// Encodes `record` into its table's COPY stream.
    pub async fn write(&mut self, record: &Record<'_>) -> Result<(), tokio_postgres::Error> {
        let k = self.counts.add(record);
        let stream = &mut self.streams[k];
        encode(record, &mut stream.buf);
        stream.flush_full().await
    }

    /// Ends every COPY (the rows become visible); returns the rows written and the rows
    /// the server says each COPY stored.
    pub async fn finish(mut self) -> Result<Staged, tokio_postgres::Error> {
        let mut copied = [0; 4];
        for (s, n) in self.streams.iter_mut().zip(&mut copied) {
            s.buf.put_i16(-1);
            s.sink.send(s.buf.split().freeze()).await?;
            *n = s.sink.as_mut().finish().await?;
        }
        Ok(Staged {
            written: self.counts,
            copied: StagedCounts::from_kinds(copied),
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::types::{IsNull, ToSql, Type};

    use super::super::jsonl;
    use super::*;

    /// The row as tokio-postgres' generic `ToSql` encoding writes it.
    fn reference(values: &[(&(dyn ToSql + Sync), Type)]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_i16(values.len() as i16);
        for (v, t) in values {
            let at = buf.len();
            buf.put_i32(0);
            let len = match v.to_sql_checked(t, &mut buf).unwrap() {
                IsNull::Yes => -1,
                IsNull::No => (buf.len() - at - 4) as i32,
            };
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        buf
    }

    #[test]
    fn rows_encode_byte_for_byte_as_tokio_postgres_writes_them() {
        use Type as T;
        let lines: [&[u8]; 5] = [
            br#"{"id":"gid://shopify/Product/7","title":"Caf\u00e9","handle":"h","status":"ACTIVE","tags":["a","b"],"updatedAt":"2026-03-04T05:06:07.123456+02:00"}"#,
            br#"{"id":"gid://shopify/ProductVariant/40","sku":"S","position":-3,"price":"123.45","compareAtPrice":null,"inventoryItem":{"id":"gid://shopify/InventoryItem/45"},"updatedAt":"1999-12-31T23:59:59Z","__parentId":"gid://shopify/Product/7"}"#,
            br#"{"id":"gid://shopify/ProductVariant/41","updatedAt":"2026-01-01T00:00:00Z","__parentId":"gid://shopify/Product/7"}"#,
            br#"{"id":"gid://shopify/InventoryLevel/600?inventory_item_id=45","location":{"id":"gid://shopify/Location/600"},"quantities":[{"name":"available","quantity":42}],"updatedAt":"2026-01-01T00:00:01Z","__parentId":"gid://shopify/ProductVariant/40"}"#,
            br#"{"id":"gid://shopify/Metafield/30","namespace":"wholesail","key":"moq","type":"number_integer","value":"12","__parentId":"gid://shopify/Product/7"}"#,
        ];
        for line in lines {
            let record = jsonl::parse(1, line).unwrap();
            let expected = match &record {
                Record::Product(p) => reference(&[
                    (&p.id, T::INT8),
                    (&p.gid, T::TEXT),
                    (&p.title.as_deref(), T::TEXT),
                    (&p.handle.as_deref(), T::TEXT),
                    (&p.status, T::TEXT),
                    (&p.vendor.as_deref(), T::TEXT),
                    (&p.product_type.as_deref(), T::TEXT),
                    (&p.tags, T::TEXT),
                    (&p.updated_at, T::TIMESTAMPTZ),
                ]),
                Record::Variant(v) => reference(&[
                    (&v.id, T::INT8),
                    (&v.product_id, T::INT8),
                    (&v.sku.as_deref(), T::TEXT),
                    (&v.barcode.as_deref(), T::TEXT),
                    (&v.title.as_deref(), T::TEXT),
                    (&v.price, T::TEXT),
                    (&v.compare_at_price, T::TEXT),
                    (&v.position, T::INT4),
                    (&v.inventory_item_id, T::INT8),
                    (&v.updated_at, T::TIMESTAMPTZ),
                ]),
                Record::InventoryLevel(l) => reference(&[
                    (&l.variant_id, T::INT8),
                    (&l.inventory_item_id, T::INT8),
                    (&l.location_id, T::INT8),
                    (&l.available, T::INT4),
                    (&l.updated_at, T::TIMESTAMPTZ),
                ]),
                Record::Metafield(m) => reference(&[
                    (&m.id, T::INT8),
                    (&m.owner_type, T::TEXT),
                    (&m.owner_id, T::INT8),
                    (&m.namespace.as_ref(), T::TEXT),
                    (&m.key.as_ref(), T::TEXT),
                    (&m.kind.as_ref(), T::TEXT),
                    (&m.value.as_ref(), T::TEXT),
                ]),
            };
            let mut buf = BytesMut::new();
            encode(&record, &mut buf);
            assert_eq!(buf, expected, "{}", String::from_utf8_lossy(line));
        }
    }
}
