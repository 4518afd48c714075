//! Salesforce record ids: 15 case-sensitive characters (3-character key prefix, then a
//! sequence) plus the 3-character case-insensitive checksum that makes the 18-character form.

use std::sync::atomic::{AtomicU64, Ordering};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Hands out unique 18-character ids.
#[derive(Debug)]
pub struct IdGenerator {
    next: AtomicU64,
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator {
            next: AtomicU64::new(1),
        }
    }
}

impl IdGenerator {
    /// A new id with the object's key prefix (`001` for Account, …).
    pub fn next(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        with_checksum(&format!("{prefix}Wh0000{}", base62(n, 6)))
    }
}

fn base62(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).expect("base62 digits are ASCII")
}

/// The 18-character form of a 15-character id.
pub fn with_checksum(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = id15.to_owned();
    for chunk in bytes.chunks(5) {
        let flags = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        out.push(SUFFIX[flags] as char);
    }
    out
}

/// Normalises a 15- or 18-character id to 18 characters; `None` if it is not shaped like an id.
pub fn normalize(id: &str) -> Option<String> {
    if !id.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    match id.len() {
        15 => Some(with_checksum(id)),
        18 if with_checksum(&id[..15]).eq_ignore_ascii_case(id) => Some(with_checksum(&id[..15])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_a_known_salesforce_id() {
        // A documented example: 001A0000006Vm9r → 001A0000006Vm9rIAC.
        assert_eq!(with_checksum("001A0000006Vm9r"), "001A0000006Vm9rIAC");
    }

    #[test]
    fn generated_ids_are_18_characters_and_normalise_to_themselves() {
        let ids = IdGenerator::default();
        let id = ids.next("001");
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("001"));
        assert_eq!(normalize(&id).as_deref(), Some(id.as_str()));
        assert_eq!(normalize(&id[..15]).as_deref(), Some(id.as_str()));
        assert_eq!(normalize("not an id"), None);
    }
}
