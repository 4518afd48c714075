//! The cart as the validators see it: what the Function reads from its input, and what origin
//! builds from a portal or draft-order request.

use crate::money::Money;

/// One cart line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartLine {
    /// The numeric product variant id (`gid://shopify/ProductVariant/<id>`); `None` for
    /// merchandise that is not a product variant (custom products), which no rule covers.
    pub variant_id: Option<u64>,
    /// The quantity on this line.
    pub quantity: u32,
}

/// A cart: its lines in cart order (a violation targets a line by its index here) and its
/// subtotal, used by the order minimum.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cart {
    /// The lines, in the order Shopify lists them.
    pub lines: Vec<CartLine>,
    /// The cart subtotal, when known.
    pub subtotal: Option<Money>,
}

/// Extracts the numeric id from a variant GID (`gid://shopify/ProductVariant/123`), scanning
/// only the trailing digits; anything else gives `None`.
pub fn variant_id_from_gid(gid: &str) -> Option<u64> {
    let digits = gid.strip_prefix("gid://shopify/ProductVariant/")?;
    // Up to 19 digits always fit a u64 (10^19 - 1 < 2^64), so no overflow check is needed:
    // a u64 checked_mul is a 128-bit library call in wasm, and this runs once per cart line.
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.bytes().try_fold(0u64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_ids_are_read_from_variant_gids_only() {
        assert_eq!(
            variant_id_from_gid("gid://shopify/ProductVariant/44712345678901"),
            Some(44712345678901)
        );
        for bad in [
            "gid://shopify/Product/1",
            "gid://shopify/ProductVariant/",
            "gid://shopify/ProductVariant/12a",
            "gid://shopify/ProductVariant/99999999999999999999",
            "gid://shopify/ProductVariant/ 1",
            "",
        ] {
            assert_eq!(variant_id_from_gid(bad), None, "{bad}");
        }
    }
}
