-- Reconciliation (#15): the scopes after subscriptions. `orders` (a window of orders by
-- `updated_at`, also the install backfill), `catalog` (products, variants and inventory levels
-- through the resync machinery), `salesforce` (Salesforce records against what the outbox last
-- sent) and `price_lists` (Shopify's B2B catalogs, price lists and quantity rules against the
-- price matrix). A run of the catalog scope links the catalog run that staged its export.
ALTER TABLE reconcile_runs DROP CONSTRAINT reconcile_runs_scope_check;
ALTER TABLE reconcile_runs ADD CONSTRAINT reconcile_runs_scope_check
    CHECK (scope IN ('subscriptions', 'orders', 'catalog', 'salesforce', 'price_lists'));
ALTER TABLE reconcile_runs ADD COLUMN catalog_run bigint;
-- Catalog runs: the units of inventory drift found (the sum of |Shopify − ours|).
ALTER TABLE reconcile_runs ADD COLUMN inventory_drift_units bigint;
CREATE INDEX reconcile_runs_catalog ON reconcile_runs (shop, catalog_run)
    WHERE catalog_run IS NOT NULL;
ALTER TABLE inbox DROP CONSTRAINT inbox_source_check;
ALTER TABLE inbox ADD CONSTRAINT inbox_source_check
    CHECK (source IN ('edge', 'direct', 'edge_dlq', 'reconcile'));
