//! The Function's input, read by hand from the provider's lazy MessagePack values.
//!
//! Why not the `#[query]` typegen: its accessors look every field up by a string the provider
//! has to copy in and allocate for, read `__typename` as a heap `String` on every line, and
//! keep a `OnceCell` per field. Here each key is interned once and every lookup is by id; a
//! line costs one array access, two property lookups and the id string. The shape read is
//! exactly `cart_validations_generate_run.graphql`, which no longer selects `__typename`: a
//! custom product's `merchandise` is an empty object, so an absent `id` means "not a variant".

use shopify_function::wasm_api::read::{Deserialize, Error};
use shopify_function::wasm_api::{CachedInternedStringId, Value};
use wholesail_rules::cart::variant_id_from_gid;
use wholesail_rules::payload::MAX_PAGES;
use wholesail_rules::{Cart, CartLine, CurrencyCode, Money};

macro_rules! keys {
    ($($name:ident = $key:literal),* $(,)?) => {
        $(static $name: CachedInternedStringId = CachedInternedStringId::new($key);)*
    };
}

keys! {
    CART = "cart",
    BUYER_IDENTITY = "buyerIdentity",
    PURCHASING_COMPANY = "purchasingCompany",
    LOCATION = "location",
    RULES_0 = "rules0",
    RULES_1 = "rules1",
    RULES_2 = "rules2",
    RULES_3 = "rules3",
    VALUE = "value",
    COST = "cost",
    SUBTOTAL_AMOUNT = "subtotalAmount",
    AMOUNT = "amount",
    CURRENCY_CODE = "currencyCode",
    LINES = "lines",
    QUANTITY = "quantity",
    MERCHANDISE = "merchandise",
    ID = "id",
    VALIDATION = "validation",
    POLICY = "policy",
}

/// The page keys of [`wholesail_rules::payload::PAGE_KEYS`], as interned ids.
static PAGE_KEYS: [&CachedInternedStringId; MAX_PAGES] = [&RULES_0, &RULES_1, &RULES_2, &RULES_3];

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
fn prop(value: &Value, key: &CachedInternedStringId) -> Value {
    value.get_interned_obj_prop(key.load())
}

/// The `value` string of a metafield, `None` when the metafield is absent.
fn metafield_value(owner: &Value, key: &CachedInternedStringId) -> Result<Option<String>, Error> {
    let metafield = prop(owner, key);
    if metafield.is_null() {
        return Ok(None);
    }
    prop(&metafield, &VALUE)
        .as_string()
        .map(Some)
        .ok_or(Error::InvalidType)
}

fn line(line: &Value) -> Result<CartLine, Error> {
    let quantity = prop(line, &QUANTITY)
        .as_number()
        .ok_or(Error::InvalidType)?;
    let id = prop(&prop(line, &MERCHANDISE), &ID);
    Ok(CartLine {
        variant_id: id.as_string().as_deref().and_then(variant_id_from_gid),
        // Shopify never sends a negative or fractional quantity; clamp rather than trust it
        // (`as` saturates: NaN and negatives give 0).
        quantity: quantity as u32,
    })
}

fn cart(cart: &Value) -> Result<Cart, Error> {
    let lines = prop(cart, &LINES);
    let len = lines.array_len().ok_or(Error::InvalidType)?;
    let lines = (0..len)
        .map(|i| line(&lines.get_at_index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let subtotal = prop(&prop(cart, &COST), &SUBTOTAL_AMOUNT);
    let amount = prop(&subtotal, &AMOUNT).as_string();
    let currency = prop(&subtotal, &CURRENCY_CODE).as_string();
    let subtotal = currency
        .as_deref()
        .and_then(CurrencyCode::parse)
        .zip(amount)
        .and_then(|(c, a)| Money::parse_decimal(&a, c));
    Ok(Cart { lines, subtotal })
}

impl Deserialize for Input {
    fn deserialize(root: &Value) -> Result<Self, Error> {
        let cart_value = prop(root, &CART);
        let location = prop(
            &prop(&prop(&cart_value, &BUYER_IDENTITY), &PURCHASING_COMPANY),
            &LOCATION,
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
        let policy = metafield_value(&prop(root, &VALIDATION), &POLICY)?;
        Ok(Self::B2b {
            pages,
            policy,
            cart,
        })
    }
}
