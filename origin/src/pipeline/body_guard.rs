//! Bodies replayed under another shop or as a delete: quarantined at intake, never applied.
//!
//! Shopify's HMAC covers only the body; the topic, shop and webhook id are unsigned headers,
//! and one app secret signs every shop's deliveries. A captured signed body can therefore be
//! re-sent with another shop's domain, or under a delete topic, with a fresh webhook id. Each
//! inbox row keeps the SHA-256 of the body Shopify sent (`inbox.body_sha256`, indexed, purged
//! with the row by the inbox retention), and a new row is quarantined with the reason when:
//!
//! - the same body was already accepted for **another shop**: Shopify's ids are global, so no
//!   genuine body belongs to two shops;
//! - it arrives under a **delete topic** and the same body was already accepted for the shop
//!   under another topic: a genuine delete body is never another topic's body.
//!
//! The same body under several non-delete topics of one shop stays accepted (`orders/paid` and
//! `orders/updated` carry one payload), and so does a redelivery under the same topic.
//! Quarantined rows do not count as accepted.
//!
//! Which bytes are hashed: the raw body, by the edge (`Envelope::body_sha256`) or by origin in
//! direct mode. An envelope from an edge that predates the field is hashed on its stripped
//! payload instead: stripping is deterministic per topic, so the same body under the same
//! allowlist still matches, but a body sent once through an old edge and once through a new
//! one is not recognised (a rollout-only gap). Two deliveries of one body for two shops whose
//! intake transactions overlap can both be accepted: the check reads committed rows only.
//!
//! The check is part of the intake statement (`inbox::insert`): a lookup per row on the digest
//! index, so an envelope costs one round trip. A statement does not see its own rows, so the
//! envelopes of one request that share a digest go in [`rounds`], one statement each in one
//! transaction, and each is judged against the earlier ones as if they had come first.

use std::collections::HashMap;

/// Splits a request's rows (by their body digests, in order) into rounds of indices: the k-th
/// row with a given digest goes into round k, so no round holds two rows with one digest and
/// every row comes after the earlier rows with its digest. One round when all differ.
pub fn rounds<'a>(digests: impl IntoIterator<Item = &'a [u8; 32]>) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&[u8; 32], usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, digest) in digests.into_iter().enumerate() {
        let k = seen.entry(digest).or_default();
        if rounds.len() == *k {
            rounds.push(Vec::new());
        }
        rounds[*k].push(i);
        *k += 1;
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::rounds;

    #[test]
    fn rows_sharing_a_digest_go_in_later_rounds_in_order() {
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(rounds([&a, &b, &c]), vec![vec![0, 1, 2]]);
        assert_eq!(
            rounds([&a, &b, &a, &c, &a, &b]),
            vec![vec![0, 1, 3], vec![2, 5], vec![4]]
        );
        assert!(rounds(std::iter::empty()).is_empty());
    }
}
