//! The Function's input, read by hand from the provider's lazy MessagePack values.
//!
//! Why not the `#[query]` typegen: its accessors look every field up by a string the provider
//! has to copy in and allocate for, read `__typename` as a heap `String` on every line, and
//! keep a `OnceCell` per field. Here the keys read on every line are interned once and looked
//! up by id; a line costs one array access, three property lookups and the id string. The shape read is
//! exactly `cart_validations_generate_run.graphql`, which no longer selects `__typename`: a
//! custom product's `merchandise` is an empty object, so an absent `id` means "not a variant".

use shopify_function::wasm_api::read::{Deserialize, Error};
use shopify_function::wasm_api::{InternedStringId, Value};
use wholesail_rules::cart::variant_id_from_gid;
use wholesail_rules::payload::{MAX_PAGES, PAGE_KEYS};
use wholesail_rules::policy::POLICY_KEY;
use wholesail_rules::{Cart, CartLine, CurrencyCode, Money};

/// The keys read on every line, interned once per run. (The keys read once are looked up by
/// string: interning them would cost a call each, and `CachedInternedStringId` hashes the key
/// with SipHash on every use.)
#[derive(Clone, Copy)]
struct LineKeys {
    quantity: InternedStringId,
    merchandise: InternedStringId,
    id: InternedStringId,
}

/// What the Function reads: the buyer's rule pages, the policy and the cart, or nothing for a
/// cart without a purchasing company.
pub(crate) enum Input {
    /// Not a B2B cart: not Wholesail's to check (its lines are never read).
    NotB2b,
    /// A B2B cart.
    B2b {
        /// The company location's `rules0..3` values (`None` where the metafield is absent).
        pages: [Option<String>; MAX_PAGES],
        /// The validation's `policy` value.
        policy: Option<String>,
        /// The lines and the subtotal.
        cart: Cart,
    },
}

/// `value.<key>`.
fn prop(value: &Value, key: &str) -> Value {
    value.get_obj_prop(key)
}

/// The `value` string of a metafield, `None` when the metafield is absent.
fn metafield_value(owner: &Value, key: &str) -> Result<Option<String>, Error> {
    let metafield = prop(owner, key);
    if metafield.is_null() {
        return Ok(None);
    }
    prop(&metafield, "value")
        .as_string()
        .map(Some)
        .ok_or(Error::InvalidType)
}

fn line(line: &Value, keys: LineKeys) -> Result<CartLine, Error> {
    let quantity = line
        .get_interned_obj_prop(keys.quantity)
        .as_number()
        .ok_or(Error::InvalidType)?;
    let id = line
        .get_interned_obj_prop(keys.merchandise)
        .get_interned_obj_prop(keys.id);
    Ok(CartLine {
        variant_id: id.as_string().as_deref().and_then(variant_id_from_gid),
        // Shopify never sends a negative or fractional quantity; clamp rather than trust it
        // (`as` saturates: NaN and negatives give 0).
        quantity: quantity as u32,
    })
}

fn cart(cart: &Value) -> Result<Cart, Error> {
    let lines = prop(cart, "lines");
    let len = lines.array_len().ok_or(Error::InvalidType)?;
    let keys = LineKeys {
        quantity: cart.intern_utf8_str("quantity"),
        merchandise: cart.intern_utf8_str("merchandise"),
        id: cart.intern_utf8_str("id"),
    };
    let lines = (0..len)
        .map(|i| line(&lines.get_at_index(i), keys))
        .collect::<Result<Vec<_>, _>>()?;
    let subtotal = prop(&prop(cart, "cost"), "subtotalAmount");
    let amount = prop(&subtotal, "amount").as_string();
    let currency = prop(&subtotal, "currencyCode").as_string();
    let subtotal = currency
        .as_deref()
        .and_then(CurrencyCode::parse)
        .zip(amount)
        .and_then(|(c, a)| Money::parse_decimal(&a, c));
    Ok(Cart { lines, subtotal })
}

impl Deserialize for Input {
    fn deserialize(root: &Value) -> Result<Self, Error> {
        let cart_value = prop(root, "cart");
        let location = prop(
            &prop(&prop(&cart_value, "buyerIdentity"), "purchasingCompany"),
            "location",
        );
        // `buyerIdentity` or `purchasingCompany` null: reading through them gives no object.
        if !location.is_obj() {
            return Ok(Self::NotB2b);
        }
        let mut pages: [Option<String>; MAX_PAGES] = Default::default();
        for (page, key) in pages.iter_mut().zip(PAGE_KEYS) {
            *page = metafield_value(&location, key)?;
        }
        let cart = cart(&cart_value)?;
        let policy = metafield_value(&prop(root, "validation"), POLICY_KEY)?;
        Ok(Self::B2b {
            pages,
            policy,
            cart,
        })
    }
}
