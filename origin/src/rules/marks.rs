//! The marks that make a buyer's pushed rules stale (migration `0020_rules.sql`):
//! - `rules_dirty(shop, company_location)`: written by a trigger on `orders` (an order of a
//!   location with quotas consumes them), and by rule edits ([`mark_locations`]; [`ALL_BUYERS`]
//!   marks every buyer of the shop, for SKU-level and routing rules);
//! - `rules_dirty_variants(shop, variant_id)`: written by a statement trigger on
//!   `inventory_levels` (stock changed); resolved to the buyers whose rules cover the variant.
//!
//! Rule edits and the inventory trigger `NOTIFY` [`CHANNEL`]; the orders trigger does not (a
//! NOTIFY serialises the commits of every order transaction on PostgreSQL's notify lock).
//! Marks are append-only rows (never upserts, so concurrent order and inventory writers never
//! wait on each other's marks); a push [`clear`]s exactly the marks it [`take`]s.

use sqlx::PgPool;
use time::OffsetDateTime;
use wholesail_webhook::ShopDomain;

use crate::slo::Stage;

/// The NOTIFY channel of the marks (payload: the shop).
pub const CHANNEL: &str = "wholesail_rules_dirty";

/// The mark meaning "every buyer of the shop".
pub const ALL_BUYERS: &str = "*";

/// Marks buyers of `shop` dirty (or all of them with [`ALL_BUYERS`]) and notifies, inside the
/// caller's transaction.
pub async fn mark_locations(
    conn: &mut sqlx::PgConnection,
    shop: &ShopDomain,
    locations: &[String],
) -> Result<(), sqlx::Error> {
    if locations.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO rules_dirty (shop, company_location)
         SELECT $1, l FROM unnest($2::text[]) l",
        shop.as_str(),
        locations
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "SELECT 1 AS notified FROM pg_notify($1, $2)",
        CHANNEL,
        shop.as_str()
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(())
}

/// The marks of one shop as read by [`take`], and the buyers they make stale.
#[derive(Debug)]
pub struct Marks {
    /// The stale buyers (company locations), sorted; [`ALL_BUYERS`] among them means all.
    pub buyers: Vec<String>,
    location_marks: Vec<i64>,
    variant_marks: Vec<i64>,
    /// Each buyer mark: the buyer, when it was marked, and whether an order made it.
    marked: Vec<(String, OffsetDateTime, bool)>,
}

impl Marks {
    /// Records, for each buyer mark whose buyer is not in `failed`, how long the mark waited
    /// for this push: `order_to_quota` for an order's mark, `rule_to_metafield` for a rule
    /// edit's (see [`crate::slo`]). Call once the push has made the metafields current.
    pub fn observe_pushed(&self, failed: &[(String, String)]) {
        let now = OffsetDateTime::now_utc();
        for (buyer, at, order) in &self.marked {
            if failed.iter().any(|(f, _)| f == buyer) {
                continue;
            }
            let stage = match order {
                true => Stage::OrderToQuota,
                false => Stage::RuleToMetafield,
            };
            crate::slo::observe(stage, (now - *at).as_seconds_f64());
        }
    }

    /// Whether every buyer of the shop is stale.
    pub fn all_buyers(&self) -> bool {
        self.buyers.iter().any(|l| l == ALL_BUYERS)
    }
}

/// The marks of `shop` as they are now, resolved to buyers; `None` when there are none. Only
/// these are deleted by [`clear`], so a mark committed meanwhile survives for the next round.
pub async fn take(pool: &PgPool, shop: &ShopDomain) -> Result<Option<Marks>, sqlx::Error> {
    let marks = sqlx::query!(
        r#"SELECT company_location, mark_id, marked_at, cause = 'order' AS "order!"
         FROM rules_dirty WHERE shop = $1"#,
        shop.as_str()
    )
    .fetch_all(pool)
    .await?;
    let variant_marks = sqlx::query!(
        "SELECT variant_id, mark_id FROM rules_dirty_variants WHERE shop = $1",
        shop.as_str()
    )
    .fetch_all(pool)
    .await?;
    if marks.is_empty() && variant_marks.is_empty() {
        return Ok(None);
    }
    let variants: Vec<i64> = variant_marks.iter().map(|m| m.variant_id).collect();
    let mut buyers: Vec<String> = sqlx::query_scalar!(
        r#"SELECT DISTINCT r.company_location AS "company_location!"
         FROM variants v
         JOIN (SELECT shop, company_location, target_kind, target_id FROM rule_line_limits
               UNION ALL
               SELECT shop, company_location, target_kind, target_id FROM rule_quotas) r
           ON r.shop = v.shop
          AND ((r.target_kind = 'variant' AND r.target_id = v.id)
               OR (r.target_kind = 'product' AND r.target_id = v.product_id))
         WHERE v.shop = $1 AND v.id = ANY($2)
         UNION
         -- A variant restricted or buffered per SKU is in every buyer's rules.
         SELECT $3 FROM variants v
         WHERE v.shop = $1 AND v.id = ANY($2) AND EXISTS (
           SELECT 1 FROM (SELECT shop, target_kind, target_id FROM rule_sku_warehouses
                          UNION ALL
                          SELECT shop, target_kind, target_id FROM rule_safety_buffers
                          UNION ALL
                          SELECT shop, target_kind, target_id FROM rule_sku_regions) s
           WHERE s.shop = v.shop
             AND ((s.target_kind = 'variant' AND s.target_id = v.id)
                  OR (s.target_kind = 'product' AND s.target_id = v.product_id)))"#,
        shop.as_str(),
        &variants,
        ALL_BUYERS
    )
    .fetch_all(pool)
    .await?;
    buyers.extend(marks.iter().map(|m| m.company_location.clone()));
    buyers.sort_unstable();
    buyers.dedup();
    Ok(Some(Marks {
        buyers,
        location_marks: marks.iter().map(|m| m.mark_id).collect(),
        variant_marks: variant_marks.iter().map(|m| m.mark_id).collect(),
        marked: marks
            .into_iter()
            .map(|m| (m.company_location, m.marked_at, m.order))
            .collect(),
    }))
}

/// Deletes the marks `taken` read.
pub async fn clear(pool: &PgPool, taken: &Marks) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM rules_dirty WHERE mark_id = ANY($1)",
        &taken.location_marks
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "DELETE FROM rules_dirty_variants WHERE mark_id = ANY($1)",
        &taken.variant_marks
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The shops that have marks.
pub async fn marked_shops(pool: &PgPool) -> Result<Vec<ShopDomain>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT shop AS "shop!: ShopDomain" FROM rules_dirty UNION SELECT shop FROM rules_dirty_variants"#
    )
    .fetch_all(pool)
    .await
}
