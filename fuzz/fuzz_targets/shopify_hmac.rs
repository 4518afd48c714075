//! Shopify webhook verification on any headers and body: it never panics, accepts only a
//! correct HMAC (with the secret that made it), and what it accepts parses again the same.
//!
//! Input: HTTP-like text, `Name: value` lines, an empty line, then the body. An HMAC header
//! whose value is `sign` or `sign-previous` is replaced by the body's true HMAC under the
//! current or the previous secret, so the checks after the HMAC are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wholesail_webhook::shopify::{
    SecretSlot, ShopDomain, ShopifySecrets, Topic, VerifiedWebhook, WebhookId,
};

const CURRENT: &str = "fuzz-current-secret";
const PREVIOUS: &str = "fuzz-previous-secret";

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let secrets = ShopifySecrets::new(CURRENT, Some(PREVIOUS));
    let signed = [
        ShopifySecrets::new(CURRENT, None::<&str>).sign(body),
        ShopifySecrets::new(PREVIOUS, None::<&str>).sign(body),
    ];
    let mut first_hmac = None;
    let headers: Vec<(&str, &str)> = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| {
            let value = value.strip_prefix(' ').unwrap_or(value);
            let bare = name.get(..2).filter(|p| p.eq_ignore_ascii_case("x-"));
            let bare = bare.map_or(name, |_| &name[2..]);
            if !bare.eq_ignore_ascii_case("shopify-hmac-sha256") {
                return (name, value);
            }
            let value = match value.trim() {
                "sign" => signed[0].as_str(),
                "sign-previous" => signed[1].as_str(),
                _ => value,
            };
            first_hmac.get_or_insert(value);
            (name, value)
        })
        .collect();

    let slot = first_hmac.and_then(|h| {
        let h = h.trim();
        if h == signed[0] {
            Some(SecretSlot::Current)
        } else if h == signed[1] {
            Some(SecretSlot::Previous)
        } else {
            None
        }
    });
    match (
        VerifiedWebhook::verify(body, headers.iter().copied(), &secrets),
        slot,
    ) {
        (Ok(v), Some(slot)) => {
            assert_eq!(v.secret(), slot, "verified with the wrong secret");
            let m = v.meta();
            assert_eq!(
                WebhookId::parse(m.webhook_id.as_str()).as_ref(),
                Ok(&m.webhook_id)
            );
            assert_eq!(Topic::parse(m.topic.as_str()).as_ref(), Ok(&m.topic));
            assert_eq!(ShopDomain::parse(m.shop.as_str()).as_ref(), Ok(&m.shop));
        }
        (Ok(_), None) => panic!("accepted a delivery without a true HMAC"),
        (Err(e), Some(_)) => assert!(
            !e.is_unauthorized(),
            "refused a true HMAC as unauthorized: {e}"
        ),
        (Err(e), None) => assert!(
            e.is_unauthorized(),
            "a delivery without a true HMAC was refused as malformed, not unauthorized: {e}"
        ),
    }
});
