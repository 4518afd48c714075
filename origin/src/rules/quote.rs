//! Pricing and validating a buyer's cart in origin: the draft-order flow and
//! `POST /v1/carts/validate` use this.
//!
//! The lines are priced from the buyer's price matrix: for each variant, the price break with
//! the largest minimum quantity not above the variant's total quantity in the cart (variant-level
//! breaks, else the product's; no break: the list price). The cart is then checked with
//! [`wholesail_rules::validate`] on the [`BuyerRules`](wholesail_rules::BuyerRules) computed by
//! the same code as the pushed metafields ([`super::compute`]), so origin and the Function
//! cannot disagree — except that origin counts the quota consumed up to now, where the
//! Function sees it as of the last push.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::PgPool;
use wholesail_rules::{Cart, CartLine, CurrencyCode, Money, Violation};
use wholesail_webhook::ShopDomain;

use super::compute::{ComputeError, Scope, ShopRules};

/// The currency used when neither an order minimum nor any order of the shop names one.
pub const FALLBACK_CURRENCY: &str = "USD";

/// The most units one line may ask for: far above any wholesale order line and far below
/// Shopify's 32-bit `Int` quantity, so that no price can make a line total overflow unnoticed.
pub const MAX_LINE_QUANTITY: u32 = 1_000_000;

/// The largest amount in hundredths a quote may total: amounts are stored as `bigint`.
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// `unit × quantity`, or `None` past [`MAX_AMOUNT`].
pub fn line_total(unit: u64, quantity: u32) -> Option<u64> {
    unit.checked_mul(u64::from(quantity))
        .filter(|t| *t <= MAX_AMOUNT)
}

/// One requested line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct QuoteLine {
    /// The numeric product variant id.
    pub variant_id: u64,
    /// The quantity.
    pub quantity: u32,
}

/// One priced line: what a cart validation answers and what a draft-order plan splits and
/// stores with its part (one type for both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PricedLine {
    /// The line's position in the request (0-based).
    pub position: usize,
    /// The numeric product variant id.
    pub variant_id: u64,
    /// The quantity.
    pub quantity: u32,
    /// The variant's SKU.
    pub sku: Option<String>,
    /// The variant's title.
    pub title: Option<String>,
    /// The list price (`variants.price`), in hundredths.
    pub list_price: u64,
    /// The negotiated unit price, in hundredths (= `list_price` without a price break).
    pub unit_price: u64,
    /// The Shopify location id of the warehouse serving this line for this buyer.
    pub warehouse: Option<i64>,
}

impl PricedLine {
    /// Negotiated price × quantity (saturating at [`MAX_AMOUNT`]; quotes and plans refuse
    /// lines whose totals do not fit).
    pub fn total_cents(&self) -> u64 {
        line_total(self.unit_price, self.quantity).unwrap_or(MAX_AMOUNT)
    }
}

/// A priced cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricedQuote {
    /// The currency of every amount.
    pub currency: String,
    /// The lines, in request order.
    pub lines: Vec<PricedLine>,
}

impl PricedQuote {
    /// The sum of unit price × quantity, in hundredths; exact for a quote [`quote`] returned
    /// (it refuses one whose amounts pass [`MAX_AMOUNT`]), saturating otherwise.
    pub fn subtotal(&self) -> u64 {
        self.checked_subtotal().unwrap_or(MAX_AMOUNT)
    }

    /// The subtotal, or the index of the first line at which it passes [`MAX_AMOUNT`].
    pub fn checked_subtotal(&self) -> Result<u64, usize> {
        self.lines.iter().enumerate().try_fold(0u64, |sum, (i, l)| {
            line_total(l.unit_price, l.quantity)
                .and_then(|t| sum.checked_add(t))
                .filter(|t| *t <= MAX_AMOUNT)
                .ok_or(i)
        })
    }
}

/// A priced cart and every rule it breaks (empty when valid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The priced lines.
    pub priced: PricedQuote,
    /// The violations, as [`wholesail_rules::validate`] reports them.
    pub violations: Vec<Violation>,
}

/// Why a cart could not be priced at all.
#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No live company location (and no rules) with this GID in this shop.
    #[error("unknown company location {0}")]
    UnknownLocation(String),
    /// A variant is not in the catalog (or has no price).
    #[error("unknown product variant {0}")]
    UnknownVariant(u64),
    /// A line has quantity 0.
    #[error("line {0}: quantity must be at least 1")]
    ZeroQuantity(usize),
    /// A line asks for more than [`MAX_LINE_QUANTITY`] units.
    #[error("line {0}: quantity must be at most {MAX_LINE_QUANTITY}")]
    QuantityTooLarge(usize),
    /// The line's total, or the cart's up to it, is too large to compute.
    #[error("line {0}: the amount is too large (price × quantity, or the total up to this line, overflows)")]
    AmountTooLarge(usize),
    /// The stored rules could not be turned into a buyer's rules.
    #[error(transparent)]
    Rules(ComputeError),
}

impl From<ComputeError> for QuoteError {
    fn from(e: ComputeError) -> Self {
        match e {
            ComputeError::Database(e) => QuoteError::Database(e),
            other => QuoteError::Rules(other),
        }
    }
}

/// A variant as the quote reads it.
struct CatalogRow {
    id: i64,
    sku: Option<String>,
    title: Option<String>,
    /// The list price in hundredths.
    price: Option<i64>,
}

/// Prices the lines for the buyer and runs every validator; `Ok(Err(violations))` when invalid.
pub async fn price_and_validate(
    pool: &PgPool,
    shop: &ShopDomain,
    company_location_gid: &str,
    lines: &[QuoteLine],
) -> Result<Result<PricedQuote, Vec<Violation>>, QuoteError> {
    let q = quote(pool, shop, company_location_gid, lines).await?;
    Ok(if q.violations.is_empty() {
        Ok(q.priced)
    } else {
        Err(q.violations)
    })
}

/// Prices the lines and validates them, returning both (the validate endpoint shows the priced
/// lines of an invalid cart too).
pub async fn quote(
    pool: &PgPool,
    shop: &ShopDomain,
    company_location_gid: &str,
    lines: &[QuoteLine],
) -> Result<Quote, QuoteError> {
    if let Some(i) = lines.iter().position(|l| l.quantity == 0) {
        return Err(QuoteError::ZeroQuantity(i));
    }
    if let Some(i) = lines.iter().position(|l| l.quantity > MAX_LINE_QUANTITY) {
        return Err(QuoteError::QuantityTooLarge(i));
    }
    let mut ids: Vec<i64> = lines
        .iter()
        .map(|l| i64::try_from(l.variant_id).map_err(|_| QuoteError::UnknownVariant(l.variant_id)))
        .collect::<Result<_, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    let location = [company_location_gid.to_owned()];
    let rules = ShopRules::load(
        pool,
        shop,
        Scope {
            locations: Some(&location),
            variants: Some(&ids),
        },
    )
    .await?;
    if !rules.has_buyer(company_location_gid) {
        return Err(QuoteError::UnknownLocation(company_location_gid.to_owned()));
    }

    let catalog = sqlx::query_as!(
        CatalogRow,
        r#"SELECT v.id, v.sku,
                  CASE WHEN v.title IS NULL OR v.title = 'Default Title' THEN p.title
                       WHEN p.title IS NULL THEN v.title
                       ELSE p.title || ' - ' || v.title END AS "title?",
                  least(round(v.price * 100), 9223372036854775807)::bigint AS "price?"
           FROM variants v LEFT JOIN products p ON p.shop = v.shop AND p.id = v.product_id
           WHERE v.shop = $1 AND v.id = ANY($2)"#,
        shop.as_str(),
        &ids
    )
    .fetch_all(pool)
    .await?;
    let catalog: HashMap<i64, (Option<String>, Option<String>, u64)> = catalog
        .into_iter()
        .filter_map(|r| {
            let price = u64::try_from(r.price?).ok()?;
            Some((r.id, (r.sku, r.title, price)))
        })
        .collect();

    let breaks = price_breaks(pool, shop, company_location_gid, &ids).await?;
    let mut totals: HashMap<u64, u64> = HashMap::new();
    for l in lines {
        let total = totals.entry(l.variant_id).or_default();
        *total = total.saturating_add(u64::from(l.quantity));
    }

    let mut priced = Vec::with_capacity(lines.len());
    for (position, l) in lines.iter().enumerate() {
        let id = l.variant_id as i64;
        let (sku, title, list_price) = catalog
            .get(&id)
            .cloned()
            .ok_or(QuoteError::UnknownVariant(l.variant_id))?;
        let total = totals[&l.variant_id];
        let unit_price = breaks
            .get(&id)
            .and_then(|b| {
                b.iter()
                    .filter(|(min, _)| *min <= total)
                    .max_by_key(|(min, _)| *min)
            })
            .map_or(list_price, |(_, price)| *price);
        priced.push(PricedLine {
            position,
            variant_id: l.variant_id,
            quantity: l.quantity,
            sku,
            title,
            list_price,
            unit_price,
            warehouse: rules.warehouse(company_location_gid, id),
        });
    }

    let currency = currency(pool, shop, &rules, company_location_gid).await?;
    let priced = PricedQuote {
        currency: currency.as_str().to_owned(),
        lines: priced,
    };
    let subtotal = priced
        .checked_subtotal()
        .map_err(QuoteError::AmountTooLarge)?;
    let buyer_rules = rules.buyer_rules(company_location_gid)?;
    let cart = Cart {
        lines: lines
            .iter()
            .map(|l| CartLine {
                variant_id: Some(l.variant_id),
                quantity: l.quantity,
            })
            .collect(),
        subtotal: Some(Money {
            hundredths: subtotal,
            currency,
        }),
    };
    let violations = wholesail_rules::validate(&buyer_rules, &cart);
    Ok(Quote { priced, violations })
}

/// The buyer's price breaks per variant as (minimum quantity, unit price in hundredths):
/// variant-level breaks, else the product's.
async fn price_breaks(
    pool: &PgPool,
    shop: &ShopDomain,
    location: &str,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<(u64, u64)>>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT r.target_id AS "variant_id!", 0 AS "rank!", r.min_quantity AS "min_quantity!",
                  least(round(r.unit_price * 100), 9223372036854775807)::bigint AS "price!"
           FROM rule_price_breaks r
           WHERE r.shop = $1 AND r.company_location = $2 AND r.target_kind = 'variant'
             AND r.target_id = ANY($3)
           UNION ALL
           SELECT v.id, 1, r.min_quantity, least(round(r.unit_price * 100), 9223372036854775807)::bigint
           FROM rule_price_breaks r JOIN variants v ON v.shop = r.shop AND v.product_id = r.target_id
           WHERE r.shop = $1 AND r.company_location = $2 AND r.target_kind = 'product'
             AND v.id = ANY($3)"#,
        shop.as_str(),
        location,
        ids
    )
    .fetch_all(pool)
    .await?;
    let with_variant_level: HashSet<i64> = rows
        .iter()
        .filter(|r| r.rank == 0)
        .map(|r| r.variant_id)
        .collect();
    let mut out: HashMap<i64, Vec<(u64, u64)>> = HashMap::new();
    for r in rows {
        if r.rank == 1 && with_variant_level.contains(&r.variant_id) {
            continue;
        }
        out.entry(r.variant_id).or_default().push((
            u64::try_from(r.min_quantity).unwrap_or(1),
            u64::try_from(r.price).unwrap_or(0),
        ));
    }
    Ok(out)
}

/// The buyer's currency: its order minimum's, else the currency of its latest order, else of
/// any order of the shop (B2B locations of a shop buy in the shop's currency), else
/// [`FALLBACK_CURRENCY`].
async fn currency(
    pool: &PgPool,
    shop: &ShopDomain,
    rules: &ShopRules,
    location: &str,
) -> Result<CurrencyCode, sqlx::Error> {
    if let Some(m) = rules.order_minimum(location) {
        return Ok(m.currency);
    }
    let number = super::compute::location_number(location);
    let seen = sqlx::query_scalar!(
        r#"SELECT coalesce(
             (SELECT currency FROM orders
              WHERE shop = $1 AND company_location_id = $2 AND currency IS NOT NULL
              ORDER BY created_at DESC LIMIT 1),
             (SELECT currency FROM orders WHERE shop = $1 AND currency IS NOT NULL LIMIT 1))
           AS "currency?""#,
        shop.as_str(),
        number
    )
    .fetch_one(pool)
    .await?;
    Ok(seen
        .as_deref()
        .and_then(CurrencyCode::parse)
        .or_else(|| CurrencyCode::parse(FALLBACK_CURRENCY))
        .expect("the fallback currency is a valid code"))
}
