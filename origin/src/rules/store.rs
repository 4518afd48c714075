//! Writing and reading rules: all-or-nothing upserts (the import CLI and the admin API),
//! deletes and listings. Every write marks the buyers it concerns dirty in the same
//! transaction, so the background push picks the change up.

use sqlx::{PgConnection, PgPool};

use super::file::{Period, RowError, Rule, Target};
use super::marks::{mark_locations, ALL_BUYERS};

/// Why rules were not written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Some rows are wrong; nothing was written.
    #[error("{} invalid rows, nothing written", .0.len())]
    Invalid(Vec<RowError>),
    /// The database failed; nothing was written.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Resolves `sku:` targets to variant ids; unknown or ambiguous SKUs are row errors.
async fn resolve_skus(
    conn: &mut PgConnection,
    shop: &str,
    rules: &mut [Rule],
) -> Result<(), StoreError> {
    let skus: Vec<String> = rules
        .iter_mut()
        .filter_map(|r| match r.target_mut() {
            Some(Target::Sku(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    if skus.is_empty() {
        return Ok(());
    }
    let found: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT sku, min(id), count(*) FROM variants
         WHERE shop = $1 AND sku = ANY($2) GROUP BY sku",
    )
    .bind(shop)
    .bind(&skus)
    .fetch_all(&mut *conn)
    .await?;
    let found: std::collections::HashMap<String, (i64, i64)> =
        found.into_iter().map(|(s, id, n)| (s, (id, n))).collect();
    let mut errors = Vec::new();
    for (i, r) in rules.iter_mut().enumerate() {
        let Some(t) = r.target_mut() else { continue };
        let Target::Sku(sku) = &*t else { continue };
        let sku = sku.clone();
        match found.get(&sku) {
            Some((id, 1)) => *t = Target::Variant(*id),
            Some((_, n)) => errors.push(RowError {
                row: i + 1,
                message: format!("sku {sku:?} names {n} variants; use variant:<id>"),
            }),
            None => errors.push(RowError {
                row: i + 1,
                message: format!("sku {sku:?}: no variant of the shop has this SKU"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

fn key(target: &Target) -> (&'static str, i64) {
    // SKUs are resolved before any write.
    target.key().unwrap_or(("variant", 0))
}

/// The buyers to mark dirty after writing `rules`.
fn concerned(rules: &[Rule]) -> Vec<String> {
    let mut locs: Vec<String> = rules
        .iter()
        .map(|r| r.location().unwrap_or(ALL_BUYERS).to_owned())
        .collect();
    locs.sort_unstable();
    locs.dedup();
    if locs.iter().any(|l| l == ALL_BUYERS) {
        return vec![ALL_BUYERS.to_owned()];
    }
    locs
}

/// Upserts `rules` for `shop` in one transaction (same key: replaced; running it twice
/// changes nothing), marks the buyers concerned dirty. Returns how many rules were written.
pub async fn upsert(pool: &PgPool, shop: &str, mut rules: Vec<Rule>) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    resolve_skus(&mut tx, shop, &mut rules).await?;
    upsert_all(&mut tx, shop, &rules).await?;
    mark_locations(&mut tx, shop, &concerned(&rules)).await?;
    tx.commit().await?;
    Ok(rules.len())
}

/// The rules with distinct keys, the last row of a key winning (a `sku:` target and the
/// `variant:` target it resolves to are one key), as row-by-row upserts would leave them.
fn last_of_each_key(rules: &[Rule]) -> Vec<&Rule> {
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<&Rule> = rules
        .iter()
        .rev()
        .filter(|r| seen.insert(r.identity()))
        .collect();
    kept.reverse();
    kept
}

/// Upserts every rule with one set-based statement per table (`UNNEST` of column arrays):
/// a file of 100,000 rules is seven statements, not 100,000 round trips.
async fn upsert_all(
    conn: &mut PgConnection,
    shop: &str,
    rules: &[Rule],
) -> Result<(), sqlx::Error> {
    let (mut price, mut limits, mut quota) =
        (Columns::default(), Columns::default(), Columns::default());
    let (mut minimum, mut sku_wh, mut sku_region, mut routing) = (
        Columns::default(),
        Columns::default(),
        Columns::default(),
        Columns::default(),
    );
    for rule in last_of_each_key(rules) {
        match rule {
            Rule::Price {
                location,
                target,
                min_quantity,
                unit_price,
            } => {
                price.target(location, target);
                price.ints.push(Some(*min_quantity));
                price.texts.push(unit_price.clone());
            }
            Rule::Limits {
                location,
                target,
                increment,
                min_quantity,
                max_quantity,
            } => {
                limits.target(location, target);
                limits.ints.push(Some(*increment));
                limits.ints2.push(Some(*min_quantity));
                limits.ints3.push(*max_quantity);
            }
            Rule::Quota {
                location,
                target,
                quantity,
                period,
            } => {
                quota.target(location, target);
                quota.ints.push(Some(*quantity));
                quota.texts.push(period.as_str().to_owned());
            }
            Rule::OrderMinimum {
                location,
                amount,
                currency,
            } => {
                minimum.locations.push(location.clone());
                minimum.texts.push(amount.clone());
                minimum.texts2.push(currency.clone());
            }
            Rule::SkuWarehouse { target, warehouse } => {
                sku_wh.target("", target);
                sku_wh.bigints.push(*warehouse);
            }
            Rule::SkuRegion { target, country } => {
                sku_region.target("", target);
                sku_region.texts.push(country.clone());
            }
            Rule::Routing { warehouse, country } => {
                routing.bigints.push(*warehouse);
                routing.texts.push(country.clone());
            }
        }
    }
    if !price.kinds.is_empty() {
        sqlx::query(
            "INSERT INTO rule_price_breaks
               (shop, company_location, target_kind, target_id, min_quantity, unit_price)
             SELECT $1, l, k, t, q, p::numeric
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[]) AS r(l, k, t, q, p)
             ON CONFLICT (shop, company_location, target_kind, target_id, min_quantity)
             DO UPDATE SET unit_price = EXCLUDED.unit_price, updated_at = now()",
        )
        .bind(shop)
        .bind(&price.locations)
        .bind(&price.kinds)
        .bind(&price.ids)
        .bind(&price.ints)
        .bind(&price.texts)
        .execute(&mut *conn)
        .await?;
    }
    if !limits.kinds.is_empty() {
        sqlx::query(
            "INSERT INTO rule_line_limits
               (shop, company_location, target_kind, target_id, increment, min_quantity, max_quantity)
             SELECT $1, l, k, t, i, mn, mx
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::int[], $7::int[])
                  AS r(l, k, t, i, mn, mx)
             ON CONFLICT (shop, company_location, target_kind, target_id)
             DO UPDATE SET increment = EXCLUDED.increment, min_quantity = EXCLUDED.min_quantity,
                           max_quantity = EXCLUDED.max_quantity, updated_at = now()",
        )
        .bind(shop)
        .bind(&limits.locations)
        .bind(&limits.kinds)
        .bind(&limits.ids)
        .bind(&limits.ints)
        .bind(&limits.ints2)
        .bind(&limits.ints3)
        .execute(&mut *conn)
        .await?;
    }
    if !quota.kinds.is_empty() {
        sqlx::query(
            "INSERT INTO rule_quotas
               (shop, company_location, target_kind, target_id, quantity, period)
             SELECT $1, l, k, t, q, p
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[]) AS r(l, k, t, q, p)
             ON CONFLICT (shop, company_location, target_kind, target_id)
             DO UPDATE SET quantity = EXCLUDED.quantity, period = EXCLUDED.period,
                           updated_at = now()",
        )
        .bind(shop)
        .bind(&quota.locations)
        .bind(&quota.kinds)
        .bind(&quota.ids)
        .bind(&quota.ints)
        .bind(&quota.texts)
        .execute(&mut *conn)
        .await?;
    }
    if !minimum.locations.is_empty() {
        sqlx::query(
            "INSERT INTO rule_order_minimums (shop, company_location, amount, currency)
             SELECT $1, l, a::numeric, c FROM unnest($2::text[], $3::text[], $4::text[]) AS r(l, a, c)
             ON CONFLICT (shop, company_location)
             DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                           updated_at = now()",
        )
        .bind(shop)
        .bind(&minimum.locations)
        .bind(&minimum.texts)
        .bind(&minimum.texts2)
        .execute(&mut *conn)
        .await?;
    }
    if !sku_wh.kinds.is_empty() {
        sqlx::query(
            "INSERT INTO rule_sku_warehouses (shop, target_kind, target_id, warehouse_id)
             SELECT $1, k, t, w FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS r(k, t, w)
             ON CONFLICT DO NOTHING",
        )
        .bind(shop)
        .bind(&sku_wh.kinds)
        .bind(&sku_wh.ids)
        .bind(&sku_wh.bigints)
        .execute(&mut *conn)
        .await?;
    }
    if !sku_region.kinds.is_empty() {
        sqlx::query(
            "INSERT INTO rule_sku_regions (shop, target_kind, target_id, country_code)
             SELECT $1, k, t, c FROM unnest($2::text[], $3::bigint[], $4::text[]) AS r(k, t, c)
             ON CONFLICT DO NOTHING",
        )
        .bind(shop)
        .bind(&sku_region.kinds)
        .bind(&sku_region.ids)
        .bind(&sku_region.texts)
        .execute(&mut *conn)
        .await?;
    }
    if !routing.bigints.is_empty() {
        sqlx::query(
            "INSERT INTO rule_warehouse_regions (shop, warehouse_id, country_code)
             SELECT $1, w, c FROM unnest($2::bigint[], $3::text[]) AS r(w, c)
             ON CONFLICT DO NOTHING",
        )
        .bind(shop)
        .bind(&routing.bigints)
        .bind(&routing.texts)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Column arrays of one table's upsert (each table uses the columns it has).
#[derive(Default)]
struct Columns {
    locations: Vec<String>,
    kinds: Vec<&'static str>,
    ids: Vec<i64>,
    ints: Vec<Option<i32>>,
    ints2: Vec<Option<i32>>,
    ints3: Vec<Option<i32>>,
    bigints: Vec<i64>,
    texts: Vec<String>,
    texts2: Vec<String>,
}

impl Columns {
    /// Pushes a buyer (`""` for shop-wide rules, whose tables have no buyer column) and target.
    fn target(&mut self, location: &str, target: &Target) {
        if !location.is_empty() {
            self.locations.push(location.to_owned());
        }
        let (kind, id) = key(target);
        self.kinds.push(kind);
        self.ids.push(id);
    }
}

/// Deletes the rules with the keys of `rules` (other fields ignored) in one transaction,
/// marks the buyers concerned dirty. Returns how many rows were deleted.
pub async fn delete(pool: &PgPool, shop: &str, mut rules: Vec<Rule>) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    resolve_skus(&mut tx, shop, &mut rules).await?;
    let mut deleted = 0;
    for r in &rules {
        let q = match r {
            Rule::Price {
                location,
                target,
                min_quantity,
                ..
            } => sqlx::query(
                "DELETE FROM rule_price_breaks WHERE shop = $1 AND company_location = $2
                   AND target_kind = $3 AND target_id = $4 AND min_quantity = $5",
            )
            .bind(shop)
            .bind(location)
            .bind(key(target).0)
            .bind(key(target).1)
            .bind(min_quantity),
            Rule::Limits {
                location, target, ..
            } => sqlx::query(
                "DELETE FROM rule_line_limits WHERE shop = $1 AND company_location = $2
                   AND target_kind = $3 AND target_id = $4",
            )
            .bind(shop)
            .bind(location)
            .bind(key(target).0)
            .bind(key(target).1),
            Rule::Quota {
                location, target, ..
            } => sqlx::query(
                "DELETE FROM rule_quotas WHERE shop = $1 AND company_location = $2
                   AND target_kind = $3 AND target_id = $4",
            )
            .bind(shop)
            .bind(location)
            .bind(key(target).0)
            .bind(key(target).1),
            Rule::OrderMinimum { location, .. } => sqlx::query(
                "DELETE FROM rule_order_minimums WHERE shop = $1 AND company_location = $2",
            )
            .bind(shop)
            .bind(location),
            Rule::SkuWarehouse { target, warehouse } => sqlx::query(
                "DELETE FROM rule_sku_warehouses WHERE shop = $1 AND target_kind = $2
                   AND target_id = $3 AND warehouse_id = $4",
            )
            .bind(shop)
            .bind(key(target).0)
            .bind(key(target).1)
            .bind(warehouse),
            Rule::SkuRegion { target, country } => sqlx::query(
                "DELETE FROM rule_sku_regions WHERE shop = $1 AND target_kind = $2
                   AND target_id = $3 AND country_code = $4",
            )
            .bind(shop)
            .bind(key(target).0)
            .bind(key(target).1)
            .bind(country),
            Rule::Routing { warehouse, country } => sqlx::query(
                "DELETE FROM rule_warehouse_regions WHERE shop = $1 AND warehouse_id = $2
                   AND country_code = $3",
            )
            .bind(shop)
            .bind(warehouse)
            .bind(country),
        };
        deleted += q.execute(&mut *tx).await?.rows_affected();
    }
    mark_locations(&mut tx, shop, &concerned(&rules)).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// The rules of `shop`: those of `location` (every buyer's when `None`) and the shop-level
/// ones, in a stable order.
pub async fn list(
    pool: &PgPool,
    shop: &str,
    location: Option<&str>,
) -> Result<Vec<Rule>, sqlx::Error> {
    let target = |kind: &str, id: i64| {
        if kind == "product" {
            Target::Product(id)
        } else {
            Target::Variant(id)
        }
    };
    let mut out = Vec::new();
    let prices: Vec<(String, String, i64, i32, String)> = sqlx::query_as(
        "SELECT company_location, target_kind, target_id, min_quantity, unit_price::text
         FROM rule_price_breaks WHERE shop = $1 AND ($2::text IS NULL OR company_location = $2)
         ORDER BY 1, 2, 3, 4",
    )
    .bind(shop)
    .bind(location)
    .fetch_all(pool)
    .await?;
    out.extend(
        prices
            .into_iter()
            .map(|(l, k, id, min, price)| Rule::Price {
                location: l,
                target: target(&k, id),
                min_quantity: min,
                unit_price: price,
            }),
    );
    let limits: Vec<(String, String, i64, i32, i32, Option<i32>)> = sqlx::query_as(
        "SELECT company_location, target_kind, target_id, increment, min_quantity, max_quantity
         FROM rule_line_limits WHERE shop = $1 AND ($2::text IS NULL OR company_location = $2)
         ORDER BY 1, 2, 3",
    )
    .bind(shop)
    .bind(location)
    .fetch_all(pool)
    .await?;
    out.extend(
        limits
            .into_iter()
            .map(|(l, k, id, increment, min, max)| Rule::Limits {
                location: l,
                target: target(&k, id),
                increment,
                min_quantity: min,
                max_quantity: max,
            }),
    );
    let quotas: Vec<(String, String, i64, i32, String)> = sqlx::query_as(
        "SELECT company_location, target_kind, target_id, quantity, period
         FROM rule_quotas WHERE shop = $1 AND ($2::text IS NULL OR company_location = $2)
         ORDER BY 1, 2, 3",
    )
    .bind(shop)
    .bind(location)
    .fetch_all(pool)
    .await?;
    out.extend(
        quotas
            .into_iter()
            .map(|(l, k, id, quantity, period)| Rule::Quota {
                location: l,
                target: target(&k, id),
                quantity,
                period: if period == "week" {
                    Period::Week
                } else {
                    Period::Month
                },
            }),
    );
    let minimums: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT company_location, amount::text, currency
         FROM rule_order_minimums WHERE shop = $1 AND ($2::text IS NULL OR company_location = $2)
         ORDER BY 1",
    )
    .bind(shop)
    .bind(location)
    .fetch_all(pool)
    .await?;
    out.extend(
        minimums
            .into_iter()
            .map(|(l, amount, currency)| Rule::OrderMinimum {
                location: l,
                amount,
                currency,
            }),
    );
    let warehouses: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT target_kind, target_id, warehouse_id FROM rule_sku_warehouses
         WHERE shop = $1 ORDER BY 1, 2, 3",
    )
    .bind(shop)
    .fetch_all(pool)
    .await?;
    out.extend(
        warehouses
            .into_iter()
            .map(|(k, id, warehouse)| Rule::SkuWarehouse {
                target: target(&k, id),
                warehouse,
            }),
    );
    let regions: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT target_kind, target_id, country_code FROM rule_sku_regions
         WHERE shop = $1 ORDER BY 1, 2, 3",
    )
    .bind(shop)
    .fetch_all(pool)
    .await?;
    out.extend(regions.into_iter().map(|(k, id, country)| Rule::SkuRegion {
        target: target(&k, id),
        country,
    }));
    let routing: Vec<(i64, String)> = sqlx::query_as(
        "SELECT warehouse_id, country_code FROM rule_warehouse_regions
         WHERE shop = $1 ORDER BY 1, 2",
    )
    .bind(shop)
    .fetch_all(pool)
    .await?;
    out.extend(
        routing
            .into_iter()
            .map(|(warehouse, country)| Rule::Routing { warehouse, country }),
    );
    Ok(out)
}
