//! Writing and reading rules: all-or-nothing upserts (the import CLI and the admin API),
//! deletes and listings. Every write marks the buyers it concerns dirty in the same
//! transaction, so the background push picks the change up.

use sqlx::{PgConnection, PgPool};
use wholesail_webhook::ShopDomain;

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
    shop: &ShopDomain,
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
    let found = sqlx::query!(
        r#"SELECT sku AS "sku!", min(id) AS "id!", count(*) AS "variants!" FROM variants
           WHERE shop = $1 AND sku = ANY($2) GROUP BY sku"#,
        shop.as_str(),
        &skus
    )
    .fetch_all(&mut *conn)
    .await?;
    let found: std::collections::HashMap<String, (i64, i64)> = found
        .into_iter()
        .map(|r| (r.sku, (r.id, r.variants)))
        .collect();
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
pub async fn upsert(
    pool: &PgPool,
    shop: &ShopDomain,
    mut rules: Vec<Rule>,
) -> Result<usize, StoreError> {
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
/// a file of 100,000 rules is eight statements, not 100,000 round trips.
async fn upsert_all(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[Rule],
) -> Result<(), sqlx::Error> {
    let rules = last_of_each_key(rules);
    upsert_price_breaks(conn, shop, &rules).await?;
    upsert_line_limits(conn, shop, &rules).await?;
    upsert_quotas(conn, shop, &rules).await?;
    upsert_order_minimums(conn, shop, &rules).await?;
    upsert_sku_warehouses(conn, shop, &rules).await?;
    upsert_safety_buffers(conn, shop, &rules).await?;
    upsert_sku_regions(conn, shop, &rules).await?;
    upsert_routing(conn, shop, &rules).await
}

/// The key columns of a table's rows: buyer (absent for shop-level tables) and target.
#[derive(Default)]
struct Keys {
    locations: Vec<String>,
    kinds: Vec<String>,
    ids: Vec<i64>,
}

impl Keys {
    fn push(&mut self, location: Option<&str>, target: &Target) {
        self.locations.extend(location.map(str::to_owned));
        let (kind, id) = key(target);
        self.kinds.push(kind.to_owned());
        self.ids.push(id);
    }
}

async fn upsert_price_breaks(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[&Rule],
) -> Result<(), sqlx::Error> {
    let (mut keys, mut min_quantities, mut prices) = (Keys::default(), Vec::new(), Vec::new());
    for rule in rules {
        if let Rule::Price {
            location,
            target,
            min_quantity,
            unit_price,
        } = rule
        {
            keys.push(Some(location), target);
            min_quantities.push(*min_quantity);
            prices.push(unit_price.clone());
        }
    }
    if keys.ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rule_price_breaks
           (shop, company_location, target_kind, target_id, min_quantity, unit_price)
         SELECT $1, l, k, t, q, p::numeric
         FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[]) AS r(l, k, t, q, p)
         ON CONFLICT (shop, company_location, target_kind, target_id, min_quantity)
         DO UPDATE SET unit_price = EXCLUDED.unit_price, updated_at = now()",
        shop.as_str(),
        &keys.locations,
        &keys.kinds,
        &keys.ids,
        &min_quantities,
        &prices
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_line_limits(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[&Rule],
) -> Result<(), sqlx::Error> {
    let mut keys = Keys::default();
    let (mut increments, mut mins, mut maxes) = (Vec::new(), Vec::new(), Vec::<Option<i32>>::new());
    for rule in rules {
        if let Rule::Limits {
            location,
            target,
            increment,
            min_quantity,
            max_quantity,
        } = rule
        {
            keys.push(Some(location), target);
            increments.push(*increment);
            mins.push(*min_quantity);
            maxes.push(*max_quantity);
        }
    }
    if keys.ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rule_line_limits
           (shop, company_location, target_kind, target_id, increment, min_quantity, max_quantity)
         SELECT $1, l, k, t, i, mn, mx
         FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::int[], $7::int[])
              AS r(l, k, t, i, mn, mx)
         ON CONFLICT (shop, company_location, target_kind, target_id)
         DO UPDATE SET increment = EXCLUDED.increment, min_quantity = EXCLUDED.min_quantity,
                       max_quantity = EXCLUDED.max_quantity, updated_at = now()",
        shop.as_str(),
        &keys.locations,
        &keys.kinds,
        &keys.ids,
        &increments,
        &mins,
        // `as _`: the macros type arrays without NULL elements.
        &maxes as _
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_quotas(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[&Rule],
) -> Result<(), sqlx::Error> {
    let (mut keys, mut quantities, mut periods) = (Keys::default(), Vec::new(), Vec::new());
    for rule in rules {
        if let Rule::Quota {
            location,
            target,
            quantity,
            period,
        } = rule
        {
            keys.push(Some(location), target);
            quantities.push(*quantity);
            periods.push(period.as_str().to_owned());
        }
    }
    if keys.ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rule_quotas
           (shop, company_location, target_kind, target_id, quantity, period)
         SELECT $1, l, k, t, q, p
         FROM unnest($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[]) AS r(l, k, t, q, p)
         ON CONFLICT (shop, company_location, target_kind, target_id)
         DO UPDATE SET quantity = EXCLUDED.quantity, period = EXCLUDED.period,
                       updated_at = now()",
        shop.as_str(),
        &keys.locations,
        &keys.kinds,
        &keys.ids,
        &quantities,
        &periods
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_order_minimums(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[&Rule],
) -> Result<(), sqlx::Error> {
    let (mut locations, mut amounts, mut currencies) = (Vec::new(), Vec::new(), Vec::new());
    for rule in rules {
        if let Rule::OrderMinimum {
            location,
            amount,
            currency,
        } = rule
        {
            locations.push(location.clone());
            amounts.push(amount.clone());
            currencies.push(currency.clone());
        }
    }
    if locations.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rule_order_minimums (shop, company_location, amount, currency)
         SELECT $1, l, a::numeric, c FROM unnest($2::text[], $3::text[], $4::text[]) AS r(l, a, c)
         ON CONFLICT (shop, company_location)
         DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency,
                       updated_at = now()",
        shop.as_str(),
        &locations,
        &amounts,
        &currencies
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_safety_buffers(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[&Rule],
) -> Result<(), sqlx::Error> {
    let (mut keys, mut warehouses, mut quantities) = (Keys::default(), Vec::new(), Vec::new());
    for rule in rules {
        if let Rule::SafetyBuffer {
            target,
            warehouse,
            quantity,
        } = rule
        {
            keys.push(None, target);
            warehouses.push(*warehouse);
            quantities.push(*quantity);
        }
    }
    if keys.ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rule_safety_buffers (shop, target_kind, target_id, warehouse_id, quantity)
         SELECT $1, k, t, w, q
         FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::int[]) AS r(k, t, w, q)
         ON CONFLICT (shop, target_kind, target_id, warehouse_id)
         DO UPDATE SET quantity = EXCLUDED.quantity",
        shop.as_str(),
        &keys.kinds,
        &keys.ids,
        &warehouses,
        &quantities
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_sku_warehouses(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[&Rule],
) -> Result<(), sqlx::Error> {
    let (mut keys, mut warehouses) = (Keys::default(), Vec::new());
    for rule in rules {
        if let Rule::SkuWarehouse { target, warehouse } = rule {
            keys.push(None, target);
            warehouses.push(*warehouse);
        }
    }
    if keys.ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rule_sku_warehouses (shop, target_kind, target_id, warehouse_id)
         SELECT $1, k, t, w FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS r(k, t, w)
         ON CONFLICT DO NOTHING",
        shop.as_str(),
        &keys.kinds,
        &keys.ids,
        &warehouses
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_sku_regions(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[&Rule],
) -> Result<(), sqlx::Error> {
    let (mut keys, mut countries) = (Keys::default(), Vec::new());
    for rule in rules {
        if let Rule::SkuRegion { target, country } = rule {
            keys.push(None, target);
            countries.push(country.clone());
        }
    }
    if keys.ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rule_sku_regions (shop, target_kind, target_id, country_code)
         SELECT $1, k, t, c FROM unnest($2::text[], $3::bigint[], $4::text[]) AS r(k, t, c)
         ON CONFLICT DO NOTHING",
        shop.as_str(),
        &keys.kinds,
        &keys.ids,
        &countries
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_routing(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rules: &[&Rule],
) -> Result<(), sqlx::Error> {
    let (mut warehouses, mut countries) = (Vec::new(), Vec::new());
    for rule in rules {
        if let Rule::Routing { warehouse, country } = rule {
            warehouses.push(*warehouse);
            countries.push(country.clone());
        }
    }
    if warehouses.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rule_warehouse_regions (shop, warehouse_id, country_code)
         SELECT $1, w, c FROM unnest($2::bigint[], $3::text[]) AS r(w, c)
         ON CONFLICT DO NOTHING",
        shop.as_str(),
        &warehouses,
        &countries
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the rules with the keys of `rules` (other fields ignored) in one transaction,
/// marks the buyers concerned dirty. Returns how many rows were deleted.
pub async fn delete(
    pool: &PgPool,
    shop: &ShopDomain,
    mut rules: Vec<Rule>,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    resolve_skus(&mut tx, shop, &mut rules).await?;
    let mut deleted = 0;
    for rule in &rules {
        deleted += delete_one(&mut tx, shop, rule).await?;
    }
    mark_locations(&mut tx, shop, &concerned(&rules)).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Deletes the row with the key of `rule`; returns how many rows were deleted (0 or 1).
async fn delete_one(
    conn: &mut PgConnection,
    shop: &ShopDomain,
    rule: &Rule,
) -> Result<u64, sqlx::Error> {
    let done = match rule {
        Rule::Price {
            location,
            target,
            min_quantity,
            ..
        } => {
            let (kind, id) = key(target);
            sqlx::query!(
                "DELETE FROM rule_price_breaks WHERE shop = $1 AND company_location = $2
                   AND target_kind = $3 AND target_id = $4 AND min_quantity = $5",
                shop.as_str(),
                location,
                kind,
                id,
                min_quantity
            )
            .execute(conn)
            .await?
        }
        Rule::Limits {
            location, target, ..
        } => {
            let (kind, id) = key(target);
            sqlx::query!(
                "DELETE FROM rule_line_limits WHERE shop = $1 AND company_location = $2
                   AND target_kind = $3 AND target_id = $4",
                shop.as_str(),
                location,
                kind,
                id
            )
            .execute(conn)
            .await?
        }
        Rule::Quota {
            location, target, ..
        } => {
            let (kind, id) = key(target);
            sqlx::query!(
                "DELETE FROM rule_quotas WHERE shop = $1 AND company_location = $2
                   AND target_kind = $3 AND target_id = $4",
                shop.as_str(),
                location,
                kind,
                id
            )
            .execute(conn)
            .await?
        }
        Rule::OrderMinimum { location, .. } => {
            sqlx::query!(
                "DELETE FROM rule_order_minimums WHERE shop = $1 AND company_location = $2",
                shop.as_str(),
                location
            )
            .execute(conn)
            .await?
        }
        Rule::SkuWarehouse { target, warehouse } => {
            let (kind, id) = key(target);
            sqlx::query!(
                "DELETE FROM rule_sku_warehouses WHERE shop = $1 AND target_kind = $2
                   AND target_id = $3 AND warehouse_id = $4",
                shop.as_str(),
                kind,
                id,
                warehouse
            )
            .execute(conn)
            .await?
        }
        Rule::SafetyBuffer {
            target, warehouse, ..
        } => {
            let (kind, id) = key(target);
            sqlx::query!(
                "DELETE FROM rule_safety_buffers WHERE shop = $1 AND target_kind = $2
                   AND target_id = $3 AND warehouse_id = $4",
                shop.as_str(),
                kind,
                id,
                warehouse
            )
            .execute(conn)
            .await?
        }
        Rule::SkuRegion { target, country } => {
            let (kind, id) = key(target);
            sqlx::query!(
                "DELETE FROM rule_sku_regions WHERE shop = $1 AND target_kind = $2
                   AND target_id = $3 AND country_code = $4",
                shop.as_str(),
                kind,
                id,
                country
            )
            .execute(conn)
            .await?
        }
        Rule::Routing { warehouse, country } => {
            sqlx::query!(
                "DELETE FROM rule_warehouse_regions WHERE shop = $1 AND warehouse_id = $2
                   AND country_code = $3",
                shop.as_str(),
                warehouse,
                country
            )
            .execute(conn)
            .await?
        }
    };
    Ok(done.rows_affected())
}

/// The rules of `shop`: those of `location` (every buyer's when `None`) and the shop-level
/// ones, in a stable order.
pub async fn list(
    pool: &PgPool,
    shop: &ShopDomain,
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
    let prices = sqlx::query!(
        r#"SELECT company_location, target_kind, target_id, min_quantity,
                  unit_price::text AS "unit_price!"
           FROM rule_price_breaks WHERE shop = $1 AND ($2::text IS NULL OR company_location = $2)
           ORDER BY 1, 2, 3, 4"#,
        shop.as_str(),
        location
    )
    .fetch_all(pool)
    .await?;
    out.extend(prices.into_iter().map(|r| Rule::Price {
        target: target(&r.target_kind, r.target_id),
        location: r.company_location,
        min_quantity: r.min_quantity,
        unit_price: r.unit_price,
    }));
    let limits = sqlx::query!(
        "SELECT company_location, target_kind, target_id, increment, min_quantity, max_quantity
         FROM rule_line_limits WHERE shop = $1 AND ($2::text IS NULL OR company_location = $2)
         ORDER BY 1, 2, 3",
        shop.as_str(),
        location
    )
    .fetch_all(pool)
    .await?;
    out.extend(limits.into_iter().map(|r| Rule::Limits {
        target: target(&r.target_kind, r.target_id),
        location: r.company_location,
        increment: r.increment,
        min_quantity: r.min_quantity,
        max_quantity: r.max_quantity,
    }));
    let quotas = sqlx::query!(
        "SELECT company_location, target_kind, target_id, quantity, period
         FROM rule_quotas WHERE shop = $1 AND ($2::text IS NULL OR company_location = $2)
         ORDER BY 1, 2, 3",
        shop.as_str(),
        location
    )
    .fetch_all(pool)
    .await?;
    out.extend(quotas.into_iter().map(|r| Rule::Quota {
        target: target(&r.target_kind, r.target_id),
        location: r.company_location,
        quantity: r.quantity,
        period: if r.period == "week" {
            Period::Week
        } else {
            Period::Month
        },
    }));
    let minimums = sqlx::query!(
        r#"SELECT company_location, amount::text AS "amount!", currency
           FROM rule_order_minimums
           WHERE shop = $1 AND ($2::text IS NULL OR company_location = $2)
           ORDER BY 1"#,
        shop.as_str(),
        location
    )
    .fetch_all(pool)
    .await?;
    out.extend(minimums.into_iter().map(|r| Rule::OrderMinimum {
        location: r.company_location,
        amount: r.amount,
        currency: r.currency,
    }));
    let warehouses = sqlx::query!(
        "SELECT target_kind, target_id, warehouse_id FROM rule_sku_warehouses
         WHERE shop = $1 ORDER BY 1, 2, 3",
        shop.as_str()
    )
    .fetch_all(pool)
    .await?;
    out.extend(warehouses.into_iter().map(|r| Rule::SkuWarehouse {
        target: target(&r.target_kind, r.target_id),
        warehouse: r.warehouse_id,
    }));
    let buffers = sqlx::query!(
        "SELECT target_kind, target_id, warehouse_id, quantity FROM rule_safety_buffers
         WHERE shop = $1 ORDER BY 1, 2, 3",
        shop.as_str()
    )
    .fetch_all(pool)
    .await?;
    out.extend(buffers.into_iter().map(|r| Rule::SafetyBuffer {
        target: target(&r.target_kind, r.target_id),
        warehouse: r.warehouse_id,
        quantity: r.quantity,
    }));
    let regions = sqlx::query!(
        "SELECT target_kind, target_id, country_code FROM rule_sku_regions
         WHERE shop = $1 ORDER BY 1, 2, 3",
        shop.as_str()
    )
    .fetch_all(pool)
    .await?;
    out.extend(regions.into_iter().map(|r| Rule::SkuRegion {
        target: target(&r.target_kind, r.target_id),
        country: r.country_code,
    }));
    let routing = sqlx::query!(
        "SELECT warehouse_id, country_code FROM rule_warehouse_regions
         WHERE shop = $1 ORDER BY 1, 2",
        shop.as_str()
    )
    .fetch_all(pool)
    .await?;
    out.extend(routing.into_iter().map(|r| Rule::Routing {
        warehouse: r.warehouse_id,
        country: r.country_code,
    }));
    Ok(out)
}
