//! Negotiated prices at checkout: Shopify's B2B catalogs, price lists and quantity rules kept
//! equal to origin's price matrix, so that a self-serve checkout charges what origin quotes.
//!
//! Each buyer (company location) with `price` or `limits` rules gets a company location
//! catalog with one price list (ids in `price_lists`, migration `0067_price_lists.sql`). Per
//! variant the price list holds what the rules say ([`Entry`]):
//! - **fixed price**: the buyer's break at `min_quantity` 1. A variant with only larger breaks
//!   gets its list price (`variants.price`) as fixed price, because Shopify keeps quantity
//!   breaks on a fixed price; a variant without price rules gets none (checkout charges the
//!   list price through the parent adjustment of 0 %).
//! - **quantity price breaks**: the breaks above 1, with Shopify's constraints applied without
//!   changing what any allowed quantity costs: a break minimum is rounded up to the rule's
//!   increment and raised to its minimum (the first allowed quantity it applies to); breaks
//!   above the maximum never apply and are left out; of breaks that meet, the larger wins.
//! - **quantity rule** from `limits`: Shopify wants `1 ≤ increment ≤ minimum` and minimum and
//!   maximum multiples of the increment, so the minimum becomes the first multiple of the
//!   increment at or above `max(min_quantity, 1)` and the maximum the last multiple at or
//!   below `max_quantity` (the same allowed quantities); increment 1, minimum 1 and no
//!   maximum is Shopify's default and is not written. Limits no quantity satisfies cannot be
//!   written: the buyer's variant is reported as failed.
//!
//! Two ways in:
//! - [`sync`] (after the rules push of dirty buyers, `rules::scheduler::push_dirty`): compares
//!   the computed state with what origin last wrote (`price_list_entries`) and writes only the
//!   differences; reads nothing from Shopify.
//! - [`reconcile`] (a recorded run, scope `price_lists`): reads each buyer's price list from
//!   Shopify (`priceList`, paged) and compares it with the computed state; each difference is
//!   a finding (`price_list_missing`, `price_missing`, `price_extra`, `price_stale`,
//!   `quantity_rule_missing`, `quantity_rule_extra`, `quantity_rule_stale`), healed in
//!   [`Mode::Heal`]; [`Mode::Report`] writes nothing.
//!
//! Writes are `quantityPricingByVariantUpdate` calls of at most 250 inputs per list, paced by
//! the shop's [`AdminClient`]; a variant whose change Shopify refuses (its `userErrors` name
//! the input) is taken out of the call, which is sent once more without it. Both ways take a
//! per-shop advisory lock, so a sync and a run never write one price list at once.
//!
//! Not handled yet: a buyer's currency changing after its price list was created (the list
//! keeps its currency); buyers whose rules are all deleted keep their (emptied) catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use wholesail_shopify_admin::price_lists::{
    PriceBreak, PriceListState, QuantityPricingUpdate, QuantityRule, MAX_BREAKS_READ, MAX_INPUTS,
};
use wholesail_shopify_admin::{AdminClient, AdminError, Money};
use wholesail_webhook::ShopDomain;

use super::runs::{self, Counts, Mode, Scope, Trigger, Window};
use crate::rules::compute::{self, line_limits, location_number, LOCATION_GID_PREFIX};
use crate::rules::push::PushError;

/// Most quantity price breaks per variant origin writes (all of them must be readable back).
pub const MAX_BREAKS: usize = MAX_BREAKS_READ as usize;

/// A buyer's price currency when neither an order minimum nor an order names one.
const FALLBACK_CURRENCY: &str = "USD";

/// A variant's quantity rule as Shopify holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Fewest units per line (≥ 1, a multiple of `increment`).
    pub minimum: u32,
    /// Most units per line (a multiple of `increment`).
    pub maximum: Option<u32>,
    /// Units come in multiples of this.
    pub increment: u32,
}

/// What a buyer's price list holds for one variant (all fields empty: nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Fixed unit price in hundredths.
    pub fixed: Option<u64>,
    /// Quantity price breaks: (minimum quantity, unit price in hundredths), ascending.
    pub breaks: Vec<(u32, u64)>,
    /// Quantity rule.
    pub rule: Option<Rule>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.fixed.is_none() && self.breaks.is_empty() && self.rule.is_none()
    }

    fn same_price(&self, other: &Entry) -> bool {
        self.fixed == other.fixed && self.breaks == other.breaks
    }
}

/// Why a sync or a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum PriceListsError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Shopify could not be reached or refused a call that is not about one variant.
    #[error("shopify: {0}")]
    Shopify(#[from] AdminError),
}

impl From<PriceListsError> for PushError {
    fn from(e: PriceListsError) -> Self {
        match e {
            PriceListsError::Database(e) => PushError::Database(e),
            PriceListsError::Shopify(e) => PushError::Admin(e),
        }
    }
}

/// What a [`sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Buyers compared.
    pub buyers: usize,
    /// Buyers with at least one variant written.
    pub changed_buyers: usize,
    /// Catalogs (with their price lists) created.
    pub created: usize,
    /// Variants written.
    pub variants: usize,
    /// `quantityPricingByVariantUpdate` calls made.
    pub calls: usize,
    /// Shopify cost points used.
    pub cost_used: i64,
    /// (buyer, variant or `-`, why) of what could not be written.
    pub failed: Vec<(String, String, String)>,
}

/// A buyer's computed state.
#[derive(Debug, Default)]
struct Desired {
    currency: String,
    entries: BTreeMap<i64, Entry>,
    /// Variants whose rules cannot be written, with why.
    problems: BTreeMap<i64, String>,
}

/// A buyer's price list as origin recorded it.
#[derive(Debug)]
struct Recorded {
    catalog_id: String,
    price_list_id: Option<String>,
    currency: String,
    entries: BTreeMap<i64, Entry>,
}

fn round_up(n: u32, to: u32) -> u32 {
    n.div_ceil(to).saturating_mul(to)
}

/// The entry of a variant from its price breaks (minimum quantity, hundredths), its list price
/// and its limits (increment, minimum, maximum); see the module docs.
pub fn entry(
    breaks: &[(u32, u64)],
    list_price: Option<u64>,
    limits: Option<(u32, u32, Option<u32>)>,
) -> Result<Entry, String> {
    let rule = match limits {
        None => None,
        Some((increment, min, max)) => {
            let increment = increment.max(1);
            let minimum = round_up(min.max(1), increment);
            let maximum = max.map(|m| m / increment * increment);
            if maximum.is_some_and(|m| m < minimum) {
                return Err(format!(
                    "no quantity satisfies the limits (increment {increment}, minimum {min}, maximum {})",
                    max.unwrap_or_default()
                ));
            }
            let rule = Rule {
                minimum,
                maximum,
                increment,
            };
            (rule
                != Rule {
                    minimum: 1,
                    maximum: None,
                    increment: 1,
                })
            .then_some(rule)
        }
    };
    let mut sorted = breaks.to_vec();
    sorted.sort_unstable();
    let mut fixed = sorted.iter().find(|(m, _)| *m <= 1).map(|(_, c)| *c);
    let mut above: BTreeMap<u32, u64> = BTreeMap::new();
    for &(min, cents) in sorted.iter().filter(|(m, _)| *m >= 2) {
        let at = match rule {
            Some(r) => round_up(min, r.increment).max(r.minimum),
            None => min,
        };
        if rule.and_then(|r| r.maximum).is_some_and(|m| at > m) {
            continue;
        }
        // Ascending: a larger original minimum meeting at the same place wins.
        above.insert(at, cents);
    }
    if above.len() > MAX_BREAKS {
        return Err(format!(
            "{} quantity price breaks, more than the {MAX_BREAKS} written per variant",
            above.len()
        ));
    }
    if fixed.is_none() && !above.is_empty() {
        fixed = Some(list_price.ok_or("no list price to hold the quantity price breaks")?);
    }
    Ok(Entry {
        fixed,
        breaks: above.into_iter().collect(),
        rule,
    })
}

/// The computed state of the buyers of `shop` in `locations` (`None`: every buyer with price
/// or limit rules or a price list).
async fn desired(
    pool: &PgPool,
    shop: &ShopDomain,
    locations: Option<&[String]>,
) -> Result<BTreeMap<String, Desired>, sqlx::Error> {
    let prices = sqlx::query!(
        r#"SELECT r.company_location AS "loc!", r.target_id AS "variant_id!", 0 AS "rank!",
                  r.min_quantity AS "min_quantity!",
                  least(round(r.unit_price * 100), 9223372036854775807)::bigint AS "cents!",
                  (SELECT least(round(v.price * 100), 9223372036854775807)::bigint FROM variants v
                   WHERE v.shop = r.shop AND v.id = r.target_id) AS "list_cents?"
           FROM rule_price_breaks r
           WHERE r.shop = $1 AND r.target_kind = 'variant'
             AND ($2::text[] IS NULL OR r.company_location = ANY($2))
           UNION ALL
           SELECT r.company_location, v.id, 1, r.min_quantity,
                  least(round(r.unit_price * 100), 9223372036854775807)::bigint,
                  least(round(v.price * 100), 9223372036854775807)::bigint
           FROM rule_price_breaks r JOIN variants v ON v.shop = r.shop AND v.product_id = r.target_id
           WHERE r.shop = $1 AND r.target_kind = 'product'
             AND ($2::text[] IS NULL OR r.company_location = ANY($2))"#,
        shop.as_str(),
        locations
    )
    .fetch_all(pool)
    .await?;
    let limits = line_limits(
        pool,
        shop,
        compute::Scope {
            locations,
            variants: None,
        },
    )
    .await?;
    let with_price_list = sqlx::query_scalar!(
        "SELECT company_location FROM price_lists
         WHERE shop = $1 AND ($2::text[] IS NULL OR company_location = ANY($2))",
        shop.as_str(),
        locations
    )
    .fetch_all(pool)
    .await?;

    // Variant-level breaks replace the product's, as a whole (as `rules::quote` prices).
    let variant_level: BTreeSet<(&str, i64)> = prices
        .iter()
        .filter(|p| p.rank == 0)
        .map(|p| (p.loc.as_str(), p.variant_id))
        .collect();
    type Breaks = (Vec<(u32, u64)>, Option<u64>);
    let mut breaks: BTreeMap<(String, i64), Breaks> = BTreeMap::new();
    for p in &prices {
        if p.rank == 1 && variant_level.contains(&(p.loc.as_str(), p.variant_id)) {
            continue;
        }
        let e = breaks.entry((p.loc.clone(), p.variant_id)).or_default();
        e.0.push((
            u32::try_from(p.min_quantity).unwrap_or(1),
            u64::try_from(p.cents).unwrap_or(0),
        ));
        e.1 = p.list_cents.and_then(|c| u64::try_from(c).ok());
    }
    let to_u32 = |n: i32| u32::try_from(n).unwrap_or(0);
    let limits: BTreeMap<(String, i64), (u32, u32, Option<u32>)> = limits
        .into_iter()
        .map(|l| {
            (
                (l.location, l.variant_id),
                (
                    to_u32(l.increment),
                    to_u32(l.min_quantity),
                    l.max_quantity.map(to_u32),
                ),
            )
        })
        .collect();

    let mut out: BTreeMap<String, Desired> = BTreeMap::new();
    for loc in with_price_list {
        out.entry(loc).or_default();
    }
    let keys: BTreeSet<&(String, i64)> = breaks.keys().chain(limits.keys()).collect();
    for key in keys {
        let (loc, variant) = key;
        let (b, list) = breaks.get(key).cloned().unwrap_or_default();
        let d = out.entry(loc.clone()).or_default();
        match entry(&b, list, limits.get(key).copied()) {
            Ok(e) if e.is_empty() => {}
            Ok(e) => {
                d.entries.insert(*variant, e);
            }
            Err(why) => {
                d.problems.insert(*variant, why);
            }
        }
    }
    let locs: Vec<String> = out.keys().cloned().collect();
    let numbers: Vec<i64> = locs
        .iter()
        .map(|l| location_number(l).unwrap_or(0))
        .collect();
    let currencies = sqlx::query!(
        r#"SELECT b.loc AS "loc!", coalesce(
             (SELECT currency FROM rule_order_minimums m
              WHERE m.shop = $1 AND m.company_location = b.loc),
             (SELECT currency FROM orders o
              WHERE o.shop = $1 AND o.company_location_id = b.num AND o.currency IS NOT NULL
              ORDER BY o.created_at DESC LIMIT 1),
             (SELECT currency FROM orders o WHERE o.shop = $1 AND o.currency IS NOT NULL LIMIT 1),
             $4) AS "currency!"
           FROM unnest($2::text[], $3::bigint[]) AS b(loc, num)"#,
        shop.as_str(),
        &locs,
        &numbers,
        FALLBACK_CURRENCY
    )
    .fetch_all(pool)
    .await?;
    for c in currencies {
        if let Some(d) = out.get_mut(&c.loc) {
            d.currency = c.currency.to_ascii_uppercase();
        }
    }
    Ok(out)
}

/// The price lists origin recorded for the buyers of `shop` in `locations`.
async fn recorded(
    pool: &PgPool,
    shop: &ShopDomain,
    locations: Option<&[String]>,
) -> Result<BTreeMap<String, Recorded>, sqlx::Error> {
    let lists = sqlx::query!(
        "SELECT company_location, catalog_id, price_list_id, currency FROM price_lists
         WHERE shop = $1 AND ($2::text[] IS NULL OR company_location = ANY($2))",
        shop.as_str(),
        locations
    )
    .fetch_all(pool)
    .await?;
    let entries = sqlx::query!(
        "SELECT company_location, variant_id, entry FROM price_list_entries
         WHERE shop = $1 AND ($2::text[] IS NULL OR company_location = ANY($2))",
        shop.as_str(),
        locations
    )
    .fetch_all(pool)
    .await?;
    let mut out: BTreeMap<String, Recorded> = lists
        .into_iter()
        .map(|l| {
            (
                l.company_location,
                Recorded {
                    catalog_id: l.catalog_id,
                    price_list_id: l.price_list_id,
                    currency: l.currency,
                    entries: BTreeMap::new(),
                },
            )
        })
        .collect();
    for e in entries {
        if let (Some(r), Ok(entry)) = (
            out.get_mut(&e.company_location),
            serde_json::from_value::<Entry>(e.entry),
        ) {
            r.entries.insert(e.variant_id, entry);
        }
    }
    Ok(out)
}

/// Records what was written for `variants` of `location`: their entries in `desired` (a
/// variant absent there has nothing).
async fn record_entries(
    pool: &PgPool,
    shop: &ShopDomain,
    location: &str,
    desired: &BTreeMap<i64, Entry>,
    variants: &[i64],
) -> Result<(), sqlx::Error> {
    let (mut set, mut values, mut gone) = (Vec::new(), Vec::new(), Vec::new());
    for v in variants {
        match desired.get(v) {
            Some(e) => {
                set.push(*v);
                values.push(serde_json::to_value(e).expect("an entry serialises"));
            }
            None => gone.push(*v),
        }
    }
    sqlx::query!(
        "INSERT INTO price_list_entries (shop, company_location, variant_id, entry)
         SELECT $1, $2, v, e FROM unnest($3::bigint[], $4::jsonb[]) AS x(v, e)
         ON CONFLICT (shop, company_location, variant_id)
         DO UPDATE SET entry = EXCLUDED.entry, written_at = now()",
        shop.as_str(),
        location,
        &set,
        &values
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "DELETE FROM price_list_entries
         WHERE shop = $1 AND company_location = $2 AND variant_id = ANY($3)",
        shop.as_str(),
        location,
        &gone
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// One difference between the computed and the present state of a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Difference {
    variant: i64,
    kind: &'static str,
}

impl Difference {
    fn is_missing(&self) -> bool {
        self.kind.ends_with("_missing")
    }
}

/// The differences between `want` and `have`, by variant.
fn differences(want: &BTreeMap<i64, Entry>, have: &BTreeMap<i64, Entry>) -> Vec<Difference> {
    let none = Entry::default();
    let variants: BTreeSet<i64> = want.keys().chain(have.keys()).copied().collect();
    let mut out = Vec::new();
    for variant in variants {
        let w = want.get(&variant).unwrap_or(&none);
        let h = have.get(&variant).unwrap_or(&none);
        let price = match (w.fixed, h.fixed) {
            (Some(_), None) => Some("price_missing"),
            (None, Some(_)) => Some("price_extra"),
            _ if !w.same_price(h) => Some("price_stale"),
            _ => None,
        };
        let rule = match (w.rule, h.rule) {
            (Some(_), None) => Some("quantity_rule_missing"),
            (None, Some(_)) => Some("quantity_rule_extra"),
            (a, b) if a != b => Some("quantity_rule_stale"),
            _ => None,
        };
        out.extend(
            [price, rule]
                .into_iter()
                .flatten()
                .map(|kind| Difference { variant, kind }),
        );
    }
    out
}

/// The update that turns `have` into `want` for one variant.
fn variant_update(
    variant: i64,
    want: &Entry,
    have: &Entry,
    currency: &str,
) -> QuantityPricingUpdate {
    let id = u64::try_from(variant).unwrap_or_default();
    let money = |c: u64| Money::from_cents(c, currency);
    let mut u = QuantityPricingUpdate::default();
    if !want.same_price(have) {
        match want.fixed {
            Some(cents) => {
                u.prices_to_add.push((id, money(cents)));
                if want.breaks != have.breaks {
                    if !have.breaks.is_empty() {
                        u.breaks_to_delete_by_variant.push(id);
                    }
                    u.breaks_to_add
                        .extend(want.breaks.iter().map(|(min, cents)| {
                            (
                                id,
                                PriceBreak {
                                    minimum_quantity: *min,
                                    price: money(*cents),
                                },
                            )
                        }));
                }
            }
            None => u.prices_to_delete.push(id),
        }
    }
    if want.rule != have.rule {
        match want.rule {
            Some(r) => u.rules_to_add.push(QuantityRule {
                variant_id: id,
                minimum: r.minimum,
                maximum: r.maximum,
                increment: r.increment,
            }),
            None => u.rules_to_delete.push(id),
        }
    }
    u
}

fn merge(into: &mut QuantityPricingUpdate, u: QuantityPricingUpdate) {
    into.prices_to_add.extend(u.prices_to_add);
    into.prices_to_delete.extend(u.prices_to_delete);
    into.breaks_to_add.extend(u.breaks_to_add);
    into.breaks_to_delete_by_variant
        .extend(u.breaks_to_delete_by_variant);
    into.rules_to_add.extend(u.rules_to_add);
    into.rules_to_delete.extend(u.rules_to_delete);
}

fn fits(a: &QuantityPricingUpdate, b: &QuantityPricingUpdate) -> bool {
    a.prices_to_add.len() + b.prices_to_add.len() <= MAX_INPUTS
        && a.prices_to_delete.len() + b.prices_to_delete.len() <= MAX_INPUTS
        && a.breaks_to_add.len() + b.breaks_to_add.len() <= MAX_INPUTS
        && a.breaks_to_delete_by_variant.len() + b.breaks_to_delete_by_variant.len() <= MAX_INPUTS
        && a.rules_to_add.len() + b.rules_to_add.len() <= MAX_INPUTS
        && a.rules_to_delete.len() + b.rules_to_delete.len() <= MAX_INPUTS
}

/// The variant a `userErrors` field path (`["input", "pricesToAdd", "3"]`) names in `u`.
fn variant_at(u: &QuantityPricingUpdate, field: &[String]) -> Option<u64> {
    let [_, list, index, ..] = field else {
        return None;
    };
    let i: usize = index.parse().ok()?;
    match list.as_str() {
        "pricesToAdd" => u.prices_to_add.get(i).map(|p| p.0),
        "pricesToDeleteByVariantId" => u.prices_to_delete.get(i).copied(),
        "quantityPriceBreaksToAdd" => u.breaks_to_add.get(i).map(|b| b.0),
        "quantityPriceBreaksToDeleteByVariantId" => u.breaks_to_delete_by_variant.get(i).copied(),
        "quantityRulesToAdd" => u.rules_to_add.get(i).map(|r| r.variant_id),
        "quantityRulesToDeleteByVariantId" => u.rules_to_delete.get(i).copied(),
        _ => None,
    }
}

/// What writing one buyer's changes came to.
#[derive(Debug, Default)]
struct Written {
    ok: Vec<i64>,
    failed: BTreeMap<i64, String>,
    calls: usize,
    cost: i64,
}

/// Writes the changes from `have` to `want` for `variants` to price list `list`, in calls of
/// at most [`MAX_INPUTS`] per input list; variants Shopify refuses are taken out and the call
/// sent once more without them.
async fn write(
    client: &AdminClient,
    list: &str,
    currency: &str,
    want: &BTreeMap<i64, Entry>,
    have: &BTreeMap<i64, Entry>,
    variants: &BTreeSet<i64>,
) -> Result<Written, AdminError> {
    let none = Entry::default();
    let mut batches: Vec<(QuantityPricingUpdate, Vec<i64>)> = Vec::new();
    for &v in variants {
        let u = variant_update(
            v,
            want.get(&v).unwrap_or(&none),
            have.get(&v).unwrap_or(&none),
            currency,
        );
        if u.is_empty() {
            continue;
        }
        match batches.last_mut() {
            Some((b, vs)) if fits(b, &u) => {
                merge(b, u);
                vs.push(v);
            }
            _ => batches.push((u, vec![v])),
        }
    }
    let mut out = Written::default();
    for (update, vs) in batches {
        let mut attempt = Some((update, vs));
        let mut retried = false;
        while let Some((update, vs)) = attempt.take() {
            out.calls += 1;
            match client.update_quantity_pricing(list, &update).await {
                Ok(cost) => {
                    out.cost += i64::from(cost);
                    out.ok.extend(vs);
                }
                Err(AdminError::UserErrors(errors)) => {
                    let mut refused: BTreeMap<i64, String> = BTreeMap::new();
                    for e in &errors {
                        let at = e.field.as_deref().and_then(|f| variant_at(&update, f));
                        if let Some(v) = at.and_then(|v| i64::try_from(v).ok()) {
                            let why = format!(
                                "{}: {}",
                                e.code.as_deref().unwrap_or("refused"),
                                e.message
                            );
                            refused.entry(v).or_insert(why);
                        }
                    }
                    let whole = format!("refused: {errors:?}");
                    if refused.is_empty() || retried {
                        // Not attributable to one input (or refused again): the whole call.
                        for v in vs {
                            let why = refused.get(&v).cloned().unwrap_or_else(|| whole.clone());
                            out.failed.insert(v, why);
                        }
                        continue;
                    }
                    retried = true;
                    let rest: Vec<i64> = vs
                        .iter()
                        .copied()
                        .filter(|v| !refused.contains_key(v))
                        .collect();
                    out.failed.extend(refused);
                    let mut again = QuantityPricingUpdate::default();
                    for &v in &rest {
                        merge(
                            &mut again,
                            variant_update(
                                v,
                                want.get(&v).unwrap_or(&none),
                                have.get(&v).unwrap_or(&none),
                                currency,
                            ),
                        );
                    }
                    if !again.is_empty() {
                        attempt = Some((again, rest));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// Creates `location`'s catalog and price list in `currency` (or only the price list, when the
/// catalog was created before), recording each id as soon as Shopify returned it; the price
/// list id and the cost points.
async fn create_price_list(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
    location: &str,
    currency: &str,
    existing_catalog: Option<&str>,
) -> Result<(String, i64), PriceListsError> {
    let number = location
        .strip_prefix(LOCATION_GID_PREFIX)
        .unwrap_or(location);
    let mut cost = 0i64;
    let catalog = match existing_catalog {
        Some(c) => c.to_owned(),
        None => {
            let (catalog, c) = client
                .create_company_location_catalog(&format!("Wholesail {number}"), location)
                .await?;
            cost += i64::from(c);
            sqlx::query!(
                "INSERT INTO price_lists (shop, company_location, catalog_id, currency)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (shop, company_location)
                 DO UPDATE SET catalog_id = EXCLUDED.catalog_id, price_list_id = NULL,
                               currency = EXCLUDED.currency, created_at = now()",
                shop.as_str(),
                location,
                catalog,
                currency
            )
            .execute(pool)
            .await?;
            catalog
        }
    };
    // The name is unique per shop: the catalog's id makes it so.
    let catalog_number = catalog.rsplit('/').next().unwrap_or(&catalog);
    let (list, c) = client
        .create_price_list(
            &format!("Wholesail {number} ({catalog_number})"),
            currency,
            &catalog,
        )
        .await?;
    cost += i64::from(c);
    sqlx::query!(
        "UPDATE price_lists SET price_list_id = $3 WHERE shop = $1 AND company_location = $2",
        shop.as_str(),
        location,
        list
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "DELETE FROM price_list_entries WHERE shop = $1 AND company_location = $2",
        shop.as_str(),
        location
    )
    .execute(pool)
    .await?;
    Ok((list, cost))
}

/// Holds the per-shop price list lock until dropped (a transaction-scoped advisory lock).
async fn lock(
    pool: &PgPool,
    shop: &ShopDomain,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "SELECT 1 AS locked
         FROM pg_advisory_xact_lock(hashtext('wholesail_price_lists'), hashtext($1))",
        shop.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(tx)
}

/// A Shopify price list's state as [`Entry`]s by variant.
fn entries_of(state: &PriceListState) -> BTreeMap<i64, Entry> {
    let mut out: BTreeMap<i64, Entry> = BTreeMap::new();
    let id = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for p in &state.prices {
        let e = out.entry(id(p.variant_id)).or_default();
        // An amount that is not whole hundredths is read as no price: it differs, and is
        // rewritten.
        e.fixed = p.price.cents().ok();
        e.breaks = p
            .breaks
            .iter()
            .map(|b| (b.minimum_quantity, b.price.cents().unwrap_or(u64::MAX)))
            .collect();
        if p.more_breaks {
            // Not all read: never equal to a computed entry (those have at most MAX_BREAKS).
            e.breaks.push((u32::MAX, u64::MAX));
        }
        e.breaks.sort_unstable();
    }
    for r in &state.rules {
        out.entry(id(r.variant_id)).or_default().rule = Some(Rule {
            minimum: r.minimum,
            maximum: r.maximum,
            increment: r.increment,
        });
    }
    out
}

/// Brings the price lists of the buyers of `shop` in `locations` (`None`: every buyer with
/// price or limit rules, or a price list) to the computed state, comparing with what origin
/// last wrote; creates missing catalogs and price lists. Records no run (see [`reconcile`]).
pub async fn sync(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
    locations: Option<&[String]>,
) -> Result<SyncReport, PriceListsError> {
    let lock = lock(pool, shop).await?;
    let desired = desired(pool, shop, locations).await?;
    let mut recorded = recorded(pool, shop, locations).await?;
    let mut report = SyncReport::default();
    for (location, want) in &desired {
        report.buyers += 1;
        for (v, why) in &want.problems {
            report
                .failed
                .push((location.clone(), v.to_string(), why.clone()));
        }
        let record = recorded.remove(location);
        if record.is_none() && want.entries.is_empty() {
            continue;
        }
        let (list, have, currency) = match record {
            Some(Recorded {
                price_list_id: Some(list),
                entries,
                currency,
                ..
            }) => (list, entries, currency),
            other => {
                let catalog = other.as_ref().map(|r| r.catalog_id.as_str());
                let (list, cost) =
                    create_price_list(pool, client, shop, location, &want.currency, catalog)
                        .await?;
                report.created += 1;
                report.cost_used += cost;
                (list, BTreeMap::new(), want.currency.clone())
            }
        };
        let changed: BTreeSet<i64> = differences(&want.entries, &have)
            .into_iter()
            .map(|d| d.variant)
            .collect();
        if changed.is_empty() {
            continue;
        }
        let written = write(client, &list, &currency, &want.entries, &have, &changed).await?;
        record_entries(pool, shop, location, &want.entries, &written.ok).await?;
        report.changed_buyers += usize::from(!written.ok.is_empty());
        report.variants += written.ok.len();
        report.calls += written.calls;
        report.cost_used += written.cost;
        for (v, why) in written.failed {
            tracing::warn!(%shop, buyer = %location, variant = v, %why, "price list change refused");
            report.failed.push((location.clone(), v.to_string(), why));
        }
    }
    lock.rollback().await?;
    metrics::counter!("wholesail_price_list_variants_written_total")
        .increment(report.variants as u64);
    Ok(report)
}

/// Compares the price lists of the buyers of `shop` in `locations` (`None`: all, as [`sync`])
/// in Shopify with the computed state, heals the differences in [`Mode::Heal`], and records
/// the run (scope `price_lists`) with a finding per difference; its id and counts.
pub async fn reconcile(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
    locations: Option<&[String]>,
    mode: Mode,
    trigger: Trigger,
) -> Result<(i64, Counts), PriceListsError> {
    let started = Instant::now();
    let run = runs::start(
        pool,
        shop,
        Scope::PriceLists,
        trigger,
        mode,
        Window::default(),
    )
    .await?;
    let mut counts = Counts::default();
    match compare(pool, client, shop, locations, mode, run, &mut counts).await {
        Ok(()) => {
            runs::finish(pool, shop, run, &counts, None).await?;
            metrics::counter!("wholesail_reconcile_runs_total",
                "scope" => "price_lists", "outcome" => "finished")
            .increment(1);
            metrics::histogram!("wholesail_reconcile_run_seconds", "scope" => "price_lists")
                .record(started.elapsed().as_secs_f64());
            Ok((run, counts))
        }
        Err(e) => {
            runs::finish(pool, shop, run, &counts, Some(&e.to_string())).await?;
            metrics::counter!("wholesail_reconcile_runs_total",
                "scope" => "price_lists", "outcome" => "error")
            .increment(1);
            Err(e)
        }
    }
}

fn finding_metric(kind: &'static str) {
    metrics::counter!("wholesail_reconcile_findings_total", "scope" => "price_lists", "kind" => kind)
        .increment(1);
}

/// The body of [`reconcile`]: compares, heals, records findings, adds to `counts`.
async fn compare(
    pool: &PgPool,
    client: &AdminClient,
    shop: &ShopDomain,
    locations: Option<&[String]>,
    mode: Mode,
    run: i64,
    counts: &mut Counts,
) -> Result<(), PriceListsError> {
    let lock = lock(pool, shop).await?;
    let desired = desired(pool, shop, locations).await?;
    let mut recorded = recorded(pool, shop, locations).await?;
    for (location, want) in &desired {
        for (v, why) in &want.problems {
            counts.failed += 1;
            let detail = json!({"variant": v, "problem": why});
            let record = format!("{location} variant:{v}");
            runs::finding(
                pool,
                shop,
                run,
                "rules_unrepresentable",
                &record,
                &detail,
                Err(why.clone()),
            )
            .await?;
        }
        let record = recorded.remove(location);
        if record.is_none() && want.entries.is_empty() {
            continue;
        }
        // What Shopify holds: nothing when origin never made the price list, or it is gone.
        let mut state = None;
        if let Some(list) = record.as_ref().and_then(|r| r.price_list_id.as_deref()) {
            let (s, cost) = client.price_list_state(list).await?;
            counts.cost_used += i64::from(cost);
            state = s.map(|s| (list.to_owned(), entries_of(&s)));
        }
        let (list, have) = match state {
            Some((list, have)) => (Some(list), have),
            None => {
                counts.compared += 1;
                counts.missing += 1;
                finding_metric("price_list_missing");
                let healed = match mode {
                    Mode::Report => Ok(None),
                    Mode::Heal => {
                        // A catalog recorded without its price list is completed; a price
                        // list gone from Shopify is made again with a new catalog.
                        let catalog = record
                            .as_ref()
                            .filter(|r| r.price_list_id.is_none())
                            .map(|r| r.catalog_id.as_str());
                        match create_price_list(
                            pool,
                            client,
                            shop,
                            location,
                            &want.currency,
                            catalog,
                        )
                        .await
                        {
                            Ok((list, cost)) => {
                                counts.cost_used += cost;
                                counts.healed += 1;
                                Ok(Some(list))
                            }
                            Err(PriceListsError::Shopify(AdminError::UserErrors(e))) => {
                                counts.failed += 1;
                                Err(format!("refused: {e:?}"))
                            }
                            Err(e) => return Err(e),
                        }
                    }
                };
                let detail = json!({"variants": want.entries.len(),
                    "price_list_id": record.as_ref().and_then(|r| r.price_list_id.clone())});
                let (list, outcome) = match healed {
                    Ok(list) => (list.clone(), Ok(list.is_some())),
                    Err(e) => (None, Err(e)),
                };
                tracing::warn!(%shop, buyer = %location, ?outcome, "price list missing");
                runs::finding(
                    pool,
                    shop,
                    run,
                    "price_list_missing",
                    location,
                    &detail,
                    outcome,
                )
                .await?;
                let Some(list) = list else { continue };
                // Everything is written below; those variants are part of the missing list,
                // not findings of their own.
                let currency = want.currency.clone();
                let all: BTreeSet<i64> = want.entries.keys().copied().collect();
                let written = write(
                    client,
                    &list,
                    &currency,
                    &want.entries,
                    &BTreeMap::new(),
                    &all,
                )
                .await?;
                counts.cost_used += written.cost;
                record_entries(pool, shop, location, &want.entries, &written.ok).await?;
                for (v, why) in written.failed {
                    counts.failed += 1;
                    let detail = json!({"variant": v, "desired": want.entries.get(&v)});
                    runs::finding(
                        pool,
                        shop,
                        run,
                        "price_missing",
                        &format!("{location} variant:{v}"),
                        &detail,
                        Err(why),
                    )
                    .await?;
                }
                continue;
            }
        };
        let list = list.expect("a price list read from Shopify");
        let currency = record
            .as_ref()
            .map_or(want.currency.clone(), |r| r.currency.clone());
        let diffs = differences(&want.entries, &have);
        let compared: BTreeSet<i64> = want.entries.keys().chain(have.keys()).copied().collect();
        counts.compared += compared.len() as i64;
        let changed: BTreeSet<i64> = diffs.iter().map(|d| d.variant).collect();
        for d in &diffs {
            if d.is_missing() {
                counts.missing += 1;
            } else {
                counts.stale += 1;
            }
            finding_metric(d.kind);
        }
        let written = match mode {
            Mode::Report => None,
            Mode::Heal if changed.is_empty() => Some(Written::default()),
            Mode::Heal => {
                Some(write(client, &list, &currency, &want.entries, &have, &changed).await?)
            }
        };
        if let Some(w) = &written {
            counts.cost_used += w.cost;
            // What Shopify now holds for every compared variant but the refused ones.
            let now_equal: Vec<i64> = compared
                .iter()
                .copied()
                .filter(|v| !w.failed.contains_key(v))
                .collect();
            record_entries(pool, shop, location, &want.entries, &now_equal).await?;
        }
        for d in diffs {
            let outcome = match &written {
                None => Ok(false),
                Some(w) => match w.failed.get(&d.variant) {
                    Some(why) => {
                        counts.failed += 1;
                        Err(why.clone())
                    }
                    None => {
                        counts.healed += 1;
                        Ok(true)
                    }
                },
            };
            let detail = json!({"variant": d.variant, "desired": want.entries.get(&d.variant),
                                "shopify": have.get(&d.variant)});
            tracing::warn!(%shop, buyer = %location, variant = d.variant, kind = d.kind, ?outcome, "price list finding");
            let record = format!("{location} variant:{}", d.variant);
            runs::finding(pool, shop, run, d.kind, &record, &detail, outcome).await?;
        }
    }
    lock.rollback().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_break_at_one_is_the_fixed_price_and_breaks_follow_the_rule() {
        let e = entry(
            &[(1, 900), (10, 800), (24, 750)],
            Some(1000),
            Some((6, 6, Some(120))),
        )
        .unwrap();
        assert_eq!(e.fixed, Some(900));
        // 10 is first reached at 12 in packs of 6.
        assert_eq!(e.breaks, [(12, 800), (24, 750)]);
        assert_eq!(
            e.rule,
            Some(Rule {
                minimum: 6,
                maximum: Some(120),
                increment: 6
            })
        );
    }

    #[test]
    fn breaks_without_a_break_at_one_sit_on_the_list_price() {
        let e = entry(&[(24, 750)], Some(1000), None).unwrap();
        assert_eq!(
            (e.fixed, e.breaks.clone(), e.rule),
            (Some(1000), vec![(24, 750)], None)
        );
        assert!(entry(&[(24, 750)], None, None).is_err());
    }

    #[test]
    fn limits_become_shopify_rules_with_the_same_allowed_quantities() {
        // Minimum 0 or 7 in packs of 6: the first allowed quantity is 6 or 12; maximum 125: 120.
        let r = |inc, min, max| entry(&[], None, Some((inc, min, max))).unwrap().rule;
        assert_eq!(
            r(6, 0, Some(125)),
            Some(Rule {
                minimum: 6,
                maximum: Some(120),
                increment: 6
            })
        );
        assert_eq!(
            r(6, 7, None),
            Some(Rule {
                minimum: 12,
                maximum: None,
                increment: 6
            })
        );
        assert_eq!(r(1, 0, None), None, "Shopify's default rule is not written");
        assert_eq!(
            r(1, 0, Some(10)),
            Some(Rule {
                minimum: 1,
                maximum: Some(10),
                increment: 1
            })
        );
        assert!(
            entry(&[], None, Some((6, 7, Some(11)))).is_err(),
            "no allowed quantity"
        );
        // Breaks below the minimum move to it; above the maximum they are dropped.
        let e = entry(
            &[(1, 900), (3, 850), (200, 500)],
            None,
            Some((6, 6, Some(120))),
        )
        .unwrap();
        assert_eq!(e.breaks, [(6, 850)]);
    }

    #[test]
    fn differences_name_what_is_missing_extra_or_stale() {
        let e = |fixed: Option<u64>, rule: Option<u32>| Entry {
            fixed,
            breaks: vec![],
            rule: rule.map(|i| Rule {
                minimum: i,
                maximum: None,
                increment: i,
            }),
        };
        let want = BTreeMap::from([
            (1, e(Some(900), Some(6))),
            (2, e(Some(500), None)),
            (3, e(None, Some(2))),
        ]);
        let have = BTreeMap::from([
            (1, e(Some(850), Some(6))),
            (3, e(None, Some(4))),
            (4, e(Some(1), None)),
        ]);
        let kinds: Vec<(i64, &str)> = differences(&want, &have)
            .iter()
            .map(|d| (d.variant, d.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, "price_stale"),
                (2, "price_missing"),
                (3, "quantity_rule_stale"),
                (4, "price_extra")
            ]
        );
        assert!(differences(&want, &want).is_empty());
    }
}
