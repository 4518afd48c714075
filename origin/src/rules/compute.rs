//! From the rule tables to each buyer's [`BuyerRules`]: a handful of set-based queries per shop
//! (never one per buyer), combined in memory.
//!
//! For a buyer (company location) and a variant:
//! - line limits and quota come from the buyer's variant-level row, else its product-level row;
//! - the quota left is the quota minus the units of the variant on the location's orders of the
//!   current UTC week or month (not cancelled, not deleted; `current_quantity` when known);
//! - eligibility: the SKU may be sold to the buyer's country (no region row: anywhere), and a
//!   warehouse allowed for the SKU (no warehouse row: any) serves that country (no routing rows
//!   for the shop: every warehouse serves everyone);
//! - stock: the sum of `inventory_levels.available` at those warehouses (no level at all:
//!   untracked, no stock limit), less the SKU's safety buffers (per warehouse, and from the
//!   total).
//!
//! A buyer's rules cover the variants it has limits or a quota for, and every variant with a
//! SKU-level warehouse or region restriction. Prices are not part of [`BuyerRules`] (the
//! Function does not price); [`crate::rules::quote`] reads them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::PgPool;
use wholesail_rules::{BuyerRules, CurrencyCode, Money, RulesError, VariantRule};
use wholesail_webhook::ShopDomain;

/// The GID prefix of company locations.
pub const LOCATION_GID_PREFIX: &str = "gid://shopify/CompanyLocation/";

/// The numeric id of a company location GID, if it is one.
pub fn location_number(gid: &str) -> Option<i64> {
    gid.strip_prefix(LOCATION_GID_PREFIX)?.parse().ok()
}

/// Which part of a shop to load.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Only these company locations (GIDs); `None`: every buyer of the shop.
    pub locations: Option<&'a [String]>,
    /// Only these variants; `None`: every ruled variant.
    pub variants: Option<&'a [i64]>,
}

/// Why rules could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The stored rules contradict each other for a buyer.
    #[error("buyer {buyer}: {source}")]
    Rules {
        /// The company location.
        buyer: String,
        /// What is wrong.
        source: RulesError,
    },
    /// A stored order minimum has an unusable currency or amount.
    #[error("buyer {0}: invalid order minimum")]
    OrderMinimum(String),
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    increment: u32,
    min: u32,
    max: Option<u32>,
}

#[derive(Debug, Default)]
struct Buyer {
    country: Option<String>,
    limits: HashMap<i64, Limits>,
    /// Quota left per variant.
    quota_left: HashMap<i64, u32>,
    order_minimum: Option<Money>,
}

/// A shop's rule inputs, loaded for a [`Scope`].
#[derive(Debug, Default)]
pub struct ShopRules {
    buyers: BTreeMap<String, Buyer>,
    sku_warehouses: HashMap<i64, BTreeSet<i64>>,
    sku_regions: HashMap<i64, BTreeSet<String>>,
    /// Safety buffers per variant: by warehouse (0: from the variant's total).
    buffers: HashMap<i64, HashMap<i64, i64>>,
    /// Country → warehouses serving it; `None` when the shop has no routing.
    routing: Option<HashMap<String, BTreeSet<i64>>>,
    /// Variant → (warehouse, available).
    levels: HashMap<i64, Vec<(i64, i64)>>,
}

fn to_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// A buyer's `limits` rule resolved onto one variant.
#[derive(Debug, Clone)]
pub struct LineLimit {
    /// The buyer (company location GID).
    pub location: String,
    /// The variant.
    pub variant_id: i64,
    /// Case pack.
    pub increment: i32,
    /// Minimum per line.
    pub min_quantity: i32,
    /// Maximum per line.
    pub max_quantity: Option<i32>,
}

/// The line limits of `shop` in `scope`, one per (buyer, variant): the variant-level row wins
/// over its product's.
pub async fn line_limits(
    pool: &PgPool,
    shop: &ShopDomain,
    scope: Scope<'_>,
) -> Result<Vec<LineLimit>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT ON (loc, variant_id) loc AS "loc!", variant_id AS "variant_id!",
                  increment AS "increment!", min_quantity AS "min_quantity!",
                  max_quantity AS "max_quantity?"
           FROM (
             SELECT r.company_location AS loc, r.target_id AS variant_id, 0 AS rank,
                    r.increment, r.min_quantity, r.max_quantity
             FROM rule_line_limits r
             WHERE r.shop = $1 AND r.target_kind = 'variant'
               AND ($2::text[] IS NULL OR r.company_location = ANY($2))
               AND ($3::bigint[] IS NULL OR r.target_id = ANY($3))
             UNION ALL
             SELECT r.company_location, v.id, 1, r.increment, r.min_quantity, r.max_quantity
             FROM rule_line_limits r
             JOIN variants v ON v.shop = r.shop AND v.product_id = r.target_id
             WHERE r.shop = $1 AND r.target_kind = 'product'
               AND ($2::text[] IS NULL OR r.company_location = ANY($2))
               AND ($3::bigint[] IS NULL OR v.id = ANY($3))
           ) x ORDER BY loc, variant_id, rank"#,
        shop.as_str(),
        scope.locations,
        scope.variants
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| LineLimit {
            location: r.loc,
            variant_id: r.variant_id,
            increment: r.increment,
            min_quantity: r.min_quantity,
            max_quantity: r.max_quantity,
        })
        .collect())
}

impl ShopRules {
    /// Loads the rule inputs of `shop` for `scope`.
    ///
    /// Buyer rules (limits, quotas) come from the variant-level row, else the product-level row
    /// spread over the product's variants; per-SKU rows likewise.
    pub async fn load(
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<Self, ComputeError> {
        let mut out = ShopRules::default();
        out.load_buyers(pool, shop, scope).await?;
        out.load_limits(pool, shop, scope).await?;
        out.load_quotas(pool, shop, scope).await?;
        out.load_order_minimums(pool, shop, scope).await?;
        out.load_sku_warehouses(pool, shop, scope).await?;
        out.load_buffers(pool, shop, scope).await?;
        out.load_sku_regions(pool, shop, scope).await?;
        out.load_routing(pool, shop).await?;
        out.load_levels(pool, shop, scope).await?;
        Ok(out)
    }

    /// The live company locations, and the locations that have buyer rules, with their country.
    async fn load_buyers(
        &mut self,
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<(), sqlx::Error> {
        let buyers = sqlx::query!(
            r#"SELECT b.loc AS "loc!", max(b.country) AS country FROM (
                 SELECT admin_graphql_api_id AS loc, shipping_country_code AS country
                 FROM company_locations WHERE shop = $1 AND deleted_at IS NULL
                 UNION ALL
                 SELECT DISTINCT company_location, NULL FROM rule_line_limits WHERE shop = $1
                 UNION ALL
                 SELECT DISTINCT company_location, NULL FROM rule_quotas WHERE shop = $1
                 UNION ALL
                 SELECT company_location, NULL FROM rule_order_minimums WHERE shop = $1
               ) b
               WHERE ($2::text[] IS NULL OR b.loc = ANY($2))
                 AND NOT EXISTS (SELECT 1 FROM company_locations d
                                 WHERE d.shop = $1 AND d.admin_graphql_api_id = b.loc
                                   AND d.deleted_at IS NOT NULL)
               GROUP BY b.loc"#,
            shop.as_str(),
            scope.locations
        )
        .fetch_all(pool)
        .await?;
        for b in buyers {
            self.buyers.insert(
                b.loc,
                Buyer {
                    country: b.country.map(|c| c.to_ascii_uppercase()),
                    ..Buyer::default()
                },
            );
        }
        Ok(())
    }

    /// Line limits per (buyer, variant) ([`line_limits`]).
    async fn load_limits(
        &mut self,
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<(), sqlx::Error> {
        for l in line_limits(pool, shop, scope).await? {
            if let Some(b) = self.buyers.get_mut(&l.location) {
                b.limits.insert(
                    l.variant_id,
                    Limits {
                        increment: to_u32(l.increment.into()).max(1),
                        min: to_u32(l.min_quantity.into()),
                        max: l.max_quantity.map(|m| to_u32(m.into())),
                    },
                );
            }
        }
        Ok(())
    }

    /// Quota left per (buyer, variant), resolved like [`Self::load_limits`], minus the units
    /// ordered in the current UTC week or month.
    async fn load_quotas(
        &mut self,
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<(), sqlx::Error> {
        let location_numbers: Option<Vec<i64>> = scope
            .locations
            .map(|l| l.iter().filter_map(|g| location_number(g)).collect());
        let quotas = sqlx::query!(
            r#"WITH q AS (
                 SELECT DISTINCT ON (loc, variant_id) * FROM (
                   SELECT r.company_location AS loc, r.target_id AS variant_id, 0 AS rank,
                          r.quantity, r.period
                   FROM rule_quotas r
                   WHERE r.shop = $1 AND r.target_kind = 'variant'
                     AND ($2::text[] IS NULL OR r.company_location = ANY($2))
                     AND ($3::bigint[] IS NULL OR r.target_id = ANY($3))
                   UNION ALL
                   SELECT r.company_location, v.id, 1, r.quantity, r.period
                   FROM rule_quotas r
                   JOIN variants v ON v.shop = r.shop AND v.product_id = r.target_id
                   WHERE r.shop = $1 AND r.target_kind = 'product'
                     AND ($2::text[] IS NULL OR r.company_location = ANY($2))
                     AND ($3::bigint[] IS NULL OR v.id = ANY($3))
                 ) x ORDER BY loc, variant_id, rank
               ),
               bounds AS (
                 SELECT date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS week_start,
                        date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month_start
               ),
               used AS (
                 SELECT $5 || o.company_location_id AS loc, ol.variant_id,
                        sum(greatest(coalesce(ol.current_quantity, ol.quantity), 0))
                          FILTER (WHERE o.created_at >= b.week_start) AS week,
                        sum(greatest(coalesce(ol.current_quantity, ol.quantity), 0))
                          FILTER (WHERE o.created_at >= b.month_start) AS month
                 FROM bounds b, orders o
                 JOIN order_lines ol ON ol.shop = o.shop AND ol.order_id = o.id
                 WHERE o.shop = $1 AND o.company_location_id IS NOT NULL
                   AND ($4::bigint[] IS NULL OR o.company_location_id = ANY($4))
                   AND o.deleted_at IS NULL AND o.cancelled_at IS NULL
                   AND o.created_at >= least(b.week_start, b.month_start)
                   AND ol.variant_id IS NOT NULL
                   AND ($3::bigint[] IS NULL OR ol.variant_id = ANY($3))
                 GROUP BY 1, 2
               )
               SELECT q.loc AS "loc!", q.variant_id AS "variant_id!", q.quantity AS "quantity!",
                      coalesce(CASE q.period WHEN 'week' THEN u.week ELSE u.month END, 0)::bigint
                        AS "used!"
               FROM q LEFT JOIN used u ON u.loc = q.loc AND u.variant_id = q.variant_id"#,
            shop.as_str(),
            scope.locations,
            scope.variants,
            location_numbers.as_deref(),
            LOCATION_GID_PREFIX
        )
        .fetch_all(pool)
        .await?;
        for q in quotas {
            if let Some(b) = self.buyers.get_mut(&q.loc) {
                b.quota_left
                    .insert(q.variant_id, to_u32(i64::from(q.quantity) - q.used));
            }
        }
        Ok(())
    }

    async fn load_order_minimums(
        &mut self,
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<(), ComputeError> {
        let minimums = sqlx::query!(
            r#"SELECT company_location, round(amount * 100)::bigint AS "hundredths!", currency
               FROM rule_order_minimums
               WHERE shop = $1 AND ($2::text[] IS NULL OR company_location = ANY($2))"#,
            shop.as_str(),
            scope.locations
        )
        .fetch_all(pool)
        .await?;
        for m in minimums {
            let loc = m.company_location;
            if let Some(b) = self.buyers.get_mut(&loc) {
                let currency = CurrencyCode::parse(&m.currency)
                    .ok_or(ComputeError::OrderMinimum(loc.clone()))?;
                b.order_minimum = Some(Money {
                    hundredths: u64::try_from(m.hundredths)
                        .map_err(|_| ComputeError::OrderMinimum(loc.clone()))?,
                    currency,
                });
            }
        }
        Ok(())
    }

    /// Safety buffers per variant and warehouse: its variant-level row, else its product's.
    async fn load_buffers(
        &mut self,
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<(), sqlx::Error> {
        let buffers = sqlx::query!(
            r#"SELECT r.target_id AS "variant_id!", r.warehouse_id AS "warehouse_id!",
                      r.quantity AS "quantity!"
               FROM rule_safety_buffers r
               WHERE r.shop = $1 AND r.target_kind = 'variant'
                 AND ($2::bigint[] IS NULL OR r.target_id = ANY($2))
               UNION ALL
               SELECT v.id, r.warehouse_id, r.quantity FROM rule_safety_buffers r
               JOIN variants v ON v.shop = r.shop AND v.product_id = r.target_id
               WHERE r.shop = $1 AND r.target_kind = 'product'
                 AND ($2::bigint[] IS NULL OR v.id = ANY($2))
                 AND NOT EXISTS (SELECT 1 FROM rule_safety_buffers x
                                 WHERE x.shop = $1 AND x.target_kind = 'variant'
                                   AND x.target_id = v.id AND x.warehouse_id = r.warehouse_id)"#,
            shop.as_str(),
            scope.variants
        )
        .fetch_all(pool)
        .await?;
        for b in buffers {
            self.buffers
                .entry(b.variant_id)
                .or_default()
                .insert(b.warehouse_id, i64::from(b.quantity));
        }
        Ok(())
    }

    /// Warehouses allowed per variant: its variant-level rows, else its product's rows.
    async fn load_sku_warehouses(
        &mut self,
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<(), sqlx::Error> {
        let warehouses = sqlx::query!(
            r#"SELECT r.target_id AS "variant_id!", r.warehouse_id AS "warehouse_id!"
               FROM rule_sku_warehouses r
               WHERE r.shop = $1 AND r.target_kind = 'variant'
                 AND ($2::bigint[] IS NULL OR r.target_id = ANY($2))
               UNION ALL
               SELECT v.id, r.warehouse_id FROM rule_sku_warehouses r
               JOIN variants v ON v.shop = r.shop AND v.product_id = r.target_id
               WHERE r.shop = $1 AND r.target_kind = 'product'
                 AND ($2::bigint[] IS NULL OR v.id = ANY($2))
                 AND NOT EXISTS (SELECT 1 FROM rule_sku_warehouses x
                                 WHERE x.shop = $1 AND x.target_kind = 'variant'
                                   AND x.target_id = v.id)"#,
            shop.as_str(),
            scope.variants
        )
        .fetch_all(pool)
        .await?;
        for w in warehouses {
            self.sku_warehouses
                .entry(w.variant_id)
                .or_default()
                .insert(w.warehouse_id);
        }
        Ok(())
    }

    /// Countries allowed per variant: its variant-level rows, else its product's rows.
    async fn load_sku_regions(
        &mut self,
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<(), sqlx::Error> {
        let regions = sqlx::query!(
            r#"SELECT r.target_id AS "variant_id!", r.country_code AS "country_code!"
               FROM rule_sku_regions r
               WHERE r.shop = $1 AND r.target_kind = 'variant'
                 AND ($2::bigint[] IS NULL OR r.target_id = ANY($2))
               UNION ALL
               SELECT v.id, r.country_code FROM rule_sku_regions r
               JOIN variants v ON v.shop = r.shop AND v.product_id = r.target_id
               WHERE r.shop = $1 AND r.target_kind = 'product'
                 AND ($2::bigint[] IS NULL OR v.id = ANY($2))
                 AND NOT EXISTS (SELECT 1 FROM rule_sku_regions x
                                 WHERE x.shop = $1 AND x.target_kind = 'variant'
                                   AND x.target_id = v.id)"#,
            shop.as_str(),
            scope.variants
        )
        .fetch_all(pool)
        .await?;
        for r in regions {
            self.sku_regions
                .entry(r.variant_id)
                .or_default()
                .insert(r.country_code);
        }
        Ok(())
    }

    async fn load_routing(&mut self, pool: &PgPool, shop: &ShopDomain) -> Result<(), sqlx::Error> {
        let routing = sqlx::query!(
            "SELECT warehouse_id, country_code FROM rule_warehouse_regions WHERE shop = $1",
            shop.as_str()
        )
        .fetch_all(pool)
        .await?;
        if !routing.is_empty() {
            let mut map: HashMap<String, BTreeSet<i64>> = HashMap::new();
            for r in routing {
                map.entry(r.country_code)
                    .or_default()
                    .insert(r.warehouse_id);
            }
            self.routing = Some(map);
        }
        Ok(())
    }

    /// Stock only for the variants some buyer's rules cover (or the requested ones); call last.
    async fn load_levels(
        &mut self,
        pool: &PgPool,
        shop: &ShopDomain,
        scope: Scope<'_>,
    ) -> Result<(), sqlx::Error> {
        let wanted: Vec<i64> = match scope.variants {
            Some(v) => v.to_vec(),
            None => {
                let mut all: BTreeSet<i64> = self.sku_warehouses.keys().copied().collect();
                all.extend(self.sku_regions.keys().copied());
                all.extend(self.buffers.keys().copied());
                for b in self.buyers.values() {
                    all.extend(b.limits.keys().copied());
                    all.extend(b.quota_left.keys().copied());
                }
                all.into_iter().collect()
            }
        };
        let levels = sqlx::query!(
            "SELECT v.id, il.location_id, il.available
             FROM variants v
             JOIN inventory_levels il
               ON il.shop = v.shop AND il.inventory_item_id = v.inventory_item_id
             WHERE v.shop = $1 AND v.id = ANY($2)",
            shop.as_str(),
            &wanted
        )
        .fetch_all(pool)
        .await?;
        for l in levels {
            self.levels
                .entry(l.id)
                .or_default()
                .push((l.location_id, i64::from(l.available.unwrap_or(0))));
        }
        Ok(())
    }

    /// The buyers loaded, by company location GID.
    pub fn buyers(&self) -> impl Iterator<Item = &str> {
        self.buyers.keys().map(String::as_str)
    }

    /// Whether `location` is a known buyer (a live company location, or one with rules).
    pub fn has_buyer(&self, location: &str) -> bool {
        self.buyers.contains_key(location)
    }

    /// The order minimum of `location`.
    pub fn order_minimum(&self, location: &str) -> Option<Money> {
        self.buyers.get(location).and_then(|b| b.order_minimum)
    }

    /// Whether warehouse `w` may ship `variant` to a buyer in `country`.
    fn ships(&self, country: Option<&str>, variant: i64, w: i64) -> bool {
        let allowed = self
            .sku_warehouses
            .get(&variant)
            .is_none_or(|a| a.contains(&w));
        let serves = match &self.routing {
            None => true,
            Some(r) => country
                .and_then(|c| r.get(c))
                .is_some_and(|s| s.contains(&w)),
        };
        allowed && serves
    }

    fn eligible(&self, country: Option<&str>, variant: i64) -> bool {
        let region_ok = self
            .sku_regions
            .get(&variant)
            .is_none_or(|r| country.is_some_and(|c| r.contains(c)));
        if !region_ok {
            return false;
        }
        let serving = self
            .routing
            .as_ref()
            .map(|r| country.and_then(|c| r.get(c)));
        match (self.sku_warehouses.get(&variant), serving) {
            (_, None) => true,
            (None, Some(s)) => s.is_some_and(|s| !s.is_empty()),
            (Some(a), Some(s)) => s.is_some_and(|s| a.iter().any(|w| s.contains(w))),
        }
    }

    /// Units checkout may sell: at each warehouse that ships to `country`, available minus
    /// its safety buffer; the total minus the variant's total buffer.
    fn stock(&self, country: Option<&str>, variant: i64) -> Option<u32> {
        let levels = self.levels.get(&variant)?;
        let buffers = self.buffers.get(&variant);
        let held = |w: i64| buffers.and_then(|b| b.get(&w)).copied().unwrap_or(0);
        let sum: i64 = levels
            .iter()
            .filter(|(w, _)| self.ships(country, variant, *w))
            .map(|(w, a)| (*a - held(*w)).max(0))
            .sum();
        Some(to_u32(sum - held(0)))
    }

    /// The warehouse that serves `variant` to `location`: of the warehouses allowed to ship it
    /// there, the one holding the most units (ties: lowest id); without inventory levels, the
    /// lowest allowed and serving warehouse when both are explicit.
    pub fn warehouse(&self, location: &str, variant: i64) -> Option<i64> {
        let country = self.buyers.get(location)?.country.as_deref();
        if let Some(levels) = self.levels.get(&variant) {
            return levels
                .iter()
                .filter(|(w, _)| self.ships(country, variant, *w))
                .max_by_key(|(w, a)| (*a, -*w))
                .map(|(w, _)| *w);
        }
        let allowed = self.sku_warehouses.get(&variant)?;
        allowed
            .iter()
            .copied()
            .find(|w| self.ships(country, variant, *w))
    }

    /// The rule of `variant` for `location` as the Function sees it (unconstrained when no
    /// rule covers it).
    pub fn variant_rule(&self, location: &str, variant: i64) -> VariantRule {
        let id = u64::try_from(variant).unwrap_or_default();
        let mut rule = VariantRule::unconstrained(id);
        let Some(b) = self.buyers.get(location) else {
            return rule;
        };
        let covered = b.limits.contains_key(&variant)
            || b.quota_left.contains_key(&variant)
            || self.sku_warehouses.contains_key(&variant)
            || self.buffers.contains_key(&variant)
            || self.sku_regions.contains_key(&variant);
        if !covered {
            return rule;
        }
        let country = b.country.as_deref();
        if let Some(l) = b.limits.get(&variant) {
            rule.increment = l.increment;
            rule.min = l.min;
            rule.max = l.max;
        }
        rule.quota_remaining = b.quota_left.get(&variant).copied();
        rule.eligible = self.eligible(country, variant);
        rule.stock = self.stock(country, variant);
        rule
    }

    /// The [`BuyerRules`] of `location`: every variant its rules cover.
    pub fn buyer_rules(&self, location: &str) -> Result<BuyerRules, ComputeError> {
        let Some(b) = self.buyers.get(location) else {
            return Ok(BuyerRules::default());
        };
        let mut ids: BTreeSet<i64> = b.limits.keys().copied().collect();
        ids.extend(b.quota_left.keys().copied());
        ids.extend(self.sku_warehouses.keys().copied());
        ids.extend(self.buffers.keys().copied());
        ids.extend(self.sku_regions.keys().copied());
        let variants = ids
            .into_iter()
            .filter(|&v| v > 0)
            .map(|v| self.variant_rule(location, v))
            .collect();
        BuyerRules::new(variants, b.order_minimum).map_err(|source| ComputeError::Rules {
            buyer: location.to_owned(),
            source,
        })
    }
}
