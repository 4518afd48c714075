//! The envelope signature header parser on any header and body: it never panics; a header
//! signed with a configured key verifies within the window, and no longer verifies once the
//! body changes.
//!
//! Input: the header on the first line, the body after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wholesail_webhook::envelope::{Keyring, SignatureError, SigningKey};

const NOW: i64 = 1_795_000_000;
const TOLERANCE: i64 = 300;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let key = SigningKey::new("k1", "fuzz-secret").expect("valid key id");
    let ring = Keyring::new(
        vec![
            SigningKey::new("k2", "other-secret").expect("valid key id"),
            key.clone(),
        ],
        TOLERANCE,
    );
    if let Ok(header) = std::str::from_utf8(head) {
        let _ = ring.verify(header, body, NOW);
    }

    // The first bytes pick a signing time inside or outside the window.
    let skew = i64::from(i16::from_le_bytes([
        *data.first().unwrap_or(&0),
        *data.get(1).unwrap_or(&0),
    ]));
    let signed = key.sign(body, NOW + skew);
    let verdict = ring.verify(&signed, body, NOW);
    if skew.abs() <= TOLERANCE {
        assert_eq!(verdict, Ok("k1"), "a fresh signature did not verify");
        let mut altered = body.to_vec();
        altered.push(b' ');
        assert_eq!(
            ring.verify(&signed, &altered, NOW),
            Err(SignatureError::Mismatch),
            "a signature verified another body"
        );
    } else {
        assert_eq!(verdict, Err(SignatureError::OutsideWindow(skew)));
    }
});
