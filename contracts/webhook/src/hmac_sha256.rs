//! HMAC-SHA256 helpers shared by the Shopify check and the internal envelope signature.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC-SHA256 of the concatenation of `parts` under `key`.
pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Whether `expected` is the HMAC-SHA256 of `parts` under `key`, compared in constant time.
pub(crate) fn verify(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        m.update(p);
    }
    m.verify_slice(expected).is_ok()
}

/// Whether two digests are equal, compared in constant time.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}
