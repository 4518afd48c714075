//! One kind's binary COPY rows for the live tables, handed out in the order of the table's
//! primary key.
//!
//! An ungrouped export scatters each product's children, so a table's rows arrive a little out
//! of key order. PostgreSQL inserts a key above every other one on the rightmost leaf without
//! descending the B-tree, and splits that leaf leaving it fillfactor-full; any other insert
//! descends from the root and splits pages in half. Loading the benchmark's 1M-variant rows in
//! export order took 1.31–1.39× as long as in key order and left the indexes 1.34× as large;
//! sorted chunk by chunk (one COPY's rows each) 1.03–1.05× (`BENCHMARKS.md`, #17 session 19).
//! So each chunk's rows are sorted by key before they are sent; a chunk already in order is
//! sent as it was written.

use bytes::{BufMut, Bytes, BytesMut};

use super::copy::HEADER;
use super::jsonl::Record;

/// Where a row sorts: the leading columns of its table's primary key after `shop`.
pub type Key = (i64, i64);

/// The key of `record`'s row in its live table: products and variants by id, levels by
/// (inventory item, location), metafields by (owner type, owner): `Product` sorts before
/// `ProductVariant`, as the index's collation puts them.
pub fn key(record: &Record<'_>) -> Key {
    match record {
        Record::Product(p) => (p.id, 0),
        Record::Variant(v) => (v.id, 0),
        Record::InventoryLevel(l) => (l.inventory_item_id, l.location_id),
        Record::Metafield(m) => (i64::from(m.owner_type != "Product"), m.owner_id),
    }
}

/// Rows as they are encoded, then taken in key order as one COPY's data.
pub struct KeyOrdered {
    /// The header, then the rows as written.
    buf: BytesMut,
    /// Each row's key and byte range in `buf`.
    rows: Vec<(Key, u32, u32)>,
    /// Whether the rows were written in key order.
    in_order: bool,
    capacity: usize,
}

impl KeyOrdered {
    /// An empty chunk expecting about `capacity` bytes of rows.
    pub fn new(capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity);
        buf.put_slice(HEADER);
        KeyOrdered {
            buf,
            rows: Vec::new(),
            in_order: true,
            capacity,
        }
    }

    /// Appends one row with key `key`, written by `encode`.
    pub fn push(&mut self, key: Key, encode: impl FnOnce(&mut BytesMut)) {
        let start = self.buf.len();
        encode(&mut self.buf);
        if let Some((last, _, _)) = self.rows.last() {
            self.in_order &= *last <= key;
        }
        self.rows.push((key, start as u32, self.buf.len() as u32));
    }

    /// Bytes held, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no row was pushed since the last [`KeyOrdered::take`].
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows pushed so far, in key order (rows with equal keys as they were pushed), with
    /// the binary COPY header and trailer; the chunk is empty again.
    pub fn take(&mut self) -> Bytes {
        let out = if self.in_order {
            self.buf.put_i16(-1);
            let out = self.buf.split();
            self.buf.reserve(self.capacity);
            out
        } else {
            self.rows.sort_by_key(|r| r.0);
            let mut out = BytesMut::with_capacity(self.buf.len() + 2);
            out.put_slice(HEADER);
            for &(_, start, end) in &self.rows {
                out.put_slice(&self.buf[start as usize..end as usize]);
            }
            out.put_i16(-1);
            self.buf.clear();
            out
        };
        self.buf.put_slice(HEADER);
        self.rows.clear();
        self.in_order = true;
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk holding one row per key, each row the key's first number as 8 bytes.
    fn chunk(keys: &[Key]) -> KeyOrdered {
        let mut c = KeyOrdered::new(64);
        for &k in keys {
            c.push(k, |b| b.put_i64(k.0 * 100 + k.1));
        }
        c
    }

    /// The rows of a taken chunk (between the header and the trailer).
    fn rows(taken: &[u8]) -> Vec<i64> {
        assert_eq!(&taken[..HEADER.len()], HEADER);
        assert_eq!(&taken[taken.len() - 2..], &[0xff, 0xff]);
        taken[HEADER.len()..taken.len() - 2]
            .chunks(8)
            .map(|r| i64::from_be_bytes(r.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn rows_written_out_of_order_are_taken_in_key_order() {
        let mut c = chunk(&[(3, 1), (1, 2), (3, 0), (2, 9), (1, 1)]);
        assert_eq!(rows(&c.take()), [101, 102, 209, 300, 301]);
        assert!(c.is_empty());
        assert_eq!(c.len(), HEADER.len());
    }

    #[test]
    fn rows_with_equal_keys_keep_the_order_they_were_written_in() {
        let mut c = KeyOrdered::new(64);
        for (k, row) in [((2, 0), 1), ((1, 0), 2), ((2, 0), 3), ((1, 0), 4)] {
            c.push(k, |b| b.put_i64(row));
        }
        assert_eq!(rows(&c.take()), [2, 4, 1, 3]);
    }

    #[test]
    fn a_chunk_is_reused_after_it_is_taken() {
        let mut c = chunk(&[(5, 0), (4, 0)]);
        assert_eq!(rows(&c.take()), [400, 500]);
        c.push((1, 0), |b| b.put_i64(7));
        c.push((2, 0), |b| b.put_i64(8));
        assert_eq!(rows(&c.take()), [7, 8]);
        c.push((9, 0), |b| b.put_i64(9));
        c.push((3, 0), |b| b.put_i64(3));
        assert_eq!(rows(&c.take()), [3, 9]);
    }

    #[test]
    fn metafields_sort_by_owner_type_then_owner() {
        let line = |owner: &str, id: i64| {
            format!(
                r#"{{"id":"gid://shopify/Metafield/1","namespace":"wholesail","key":"moq","type":"number_integer","value":"1","__parentId":"gid://shopify/{owner}/{id}"}}"#
            )
        };
        let key_of = |owner: &str, id: i64| {
            let l = line(owner, id);
            key(&super::super::jsonl::parse(1, l.as_bytes()).unwrap())
        };
        assert!(key_of("Product", 9) < key_of("ProductVariant", 1));
        assert!(key_of("ProductVariant", 1) < key_of("ProductVariant", 2));
    }
}
