//! The schema stays ready to be distributed by shop: every per-shop table has a `shop`
//! column, and its primary key, unique constraints, unique indexes and foreign keys all lead
//! with it (ARCHITECTURE.md, "Growing past one database"). Read from the catalog of a freshly
//! migrated database, so a new migration that forgets it fails here.

use sqlx::PgPool;

/// Tables that hold no shop's data: operator identity and its audit trail (reference tables
/// on a distributed database), and the templates of the per-attempt catalog staging tables,
/// whose rows belong to one run of one shop.
const NOT_PER_SHOP: &[&str] = &[
    "_sqlx_migrations",
    "api_tokens",
    "audit_log",
    "catalog_stage_inventory_levels",
    "catalog_stage_metafields",
    "catalog_stage_products",
    "catalog_stage_variants",
    "console_sessions",
];

#[sqlx::test(migrator = "wholesail_origin::app::MIGRATOR")]
async fn every_key_of_a_per_shop_table_leads_with_shop(pool: PgPool) {
    let tables: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text,
                EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attname = 'shop' AND NOT a.attisdropped)
         FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        tables.len() > 20,
        "the migrations created {} tables",
        tables.len()
    );
    let without_shop: Vec<&str> = tables
        .iter()
        .filter(|(t, has_shop)| !has_shop && !NOT_PER_SHOP.contains(&t.as_str()))
        .map(|(t, _)| t.as_str())
        .collect();
    assert!(
        without_shop.is_empty(),
        "per-shop tables without a shop column: {without_shop:?}"
    );

    // Primary keys, unique constraints and foreign keys (both ends), and unique indexes that
    // back no constraint (partial ones included).
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid)
         FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'f')
         UNION ALL
         SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text,
                pg_get_indexdef(i.indexrelid)
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         WHERE c.relnamespace = 'public'::regnamespace AND i.indisunique
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let offending: Vec<String> = keys
        .iter()
        .filter(|(table, _, _)| !NOT_PER_SHOP.contains(&table.as_str()))
        .filter(|(_, _, def)| !leads_with_shop(def))
        .map(|(table, name, def)| format!("{table}.{name}: {def}"))
        .collect();
    assert!(
        offending.is_empty(),
        "keys that do not lead with shop: {offending:#?}"
    );
}

/// Whether every column list in a constraint or index definition starts with `shop`:
/// `PRIMARY KEY (shop, id)`, `FOREIGN KEY (shop, job_id) REFERENCES t(shop, id)`,
/// `CREATE UNIQUE INDEX … USING btree (shop) WHERE …`. Foreign keys to a table that holds no
/// shop's data (a token) are allowed.
fn leads_with_shop(def: &str) -> bool {
    if let Some(target) = def.split("REFERENCES ").nth(1) {
        let table = target.split('(').next().unwrap_or_default().trim();
        if NOT_PER_SHOP.contains(&table) {
            return true;
        }
    }
    let lists: Vec<&str> = def
        .split('(')
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect();
    !lists.is_empty()
        && lists
            .iter()
            .take(if def.contains("REFERENCES") { 2 } else { 1 })
            .all(|cols| cols.split(',').next().map(str::trim) == Some("shop"))
}

#[test]
fn the_key_check_tells_leading_shop_from_the_rest() {
    assert!(leads_with_shop("PRIMARY KEY (shop, id)"));
    assert!(leads_with_shop(
        "FOREIGN KEY (shop, job_id) REFERENCES draft_order_jobs(shop, id)"
    ));
    assert!(leads_with_shop(
        "FOREIGN KEY (token_id) REFERENCES api_tokens(id)"
    ));
    assert!(leads_with_shop(
        "CREATE UNIQUE INDEX x ON public.catalog_runs USING btree (shop) WHERE (status = 'a')"
    ));
    assert!(!leads_with_shop("PRIMARY KEY (id)"));
    assert!(!leads_with_shop("UNIQUE (webhook_id, shop)"));
    assert!(!leads_with_shop(
        "FOREIGN KEY (job_id) REFERENCES draft_order_jobs(id)"
    ));
    assert!(!leads_with_shop(
        "FOREIGN KEY (shop, job_id) REFERENCES draft_order_jobs(id, shop)"
    ));
}
