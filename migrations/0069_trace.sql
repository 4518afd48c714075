-- Traceability and known timing (#16).
--
-- `written_by`: what last wrote an operational row, compactly: `inbox:<id>` (a webhook, a
-- replay or a reconciliation heal: the inbox row tells which), `catalog_run:<id>` (a resync,
-- possibly linked to a reconciliation run) or `salesforce:<transaction key>` (a change made in
-- Salesforce). NULL on rows written before this column.
ALTER TABLE orders ADD COLUMN written_by text;
ALTER TABLE order_lines ADD COLUMN written_by text;
ALTER TABLE customers ADD COLUMN written_by text;
ALTER TABLE companies ADD COLUMN written_by text;
ALTER TABLE company_locations ADD COLUMN written_by text;
ALTER TABLE products ADD COLUMN written_by text;
ALTER TABLE variants ADD COLUMN written_by text;
ALTER TABLE inventory_levels ADD COLUMN written_by text;
ALTER TABLE shops ADD COLUMN written_by text;
ALTER TABLE catalog_metafields ADD COLUMN written_by text;
ALTER TABLE salesforce_owned_fields ADD COLUMN written_by text;

-- Each inbox event's outcome, set in the transaction that marks it done: `applied`, `stale`
-- (the version guard skipped it; `outcome_reason` says why) or `ignored` (no handler).
-- `subject`: the record the event is about (its GID, e.g. gid://shopify/Order/1042), set when
-- a worker claims the row; a record's events are found by this index.
ALTER TABLE inbox
    ADD COLUMN outcome text CHECK (outcome IN ('applied', 'stale', 'ignored')),
    ADD COLUMN outcome_reason text,
    ADD COLUMN subject text;
CREATE INDEX inbox_subject ON inbox (shop, subject, inserted_at) WHERE subject IS NOT NULL;
-- The subject of an event from its topic and stripped payload: the payload's GID, else one
-- built from its id (deletes carry only `{"id": …}`); the inventory item for stock levels; the
-- customer of a compliance request. NULL when the payload names no record. Rows claimed
-- before this migration keep a NULL subject.
CREATE FUNCTION wholesail_inbox_subject(topic text, payload jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE split_part(topic, '/', 1)
        WHEN 'inventory_levels' THEN
            'gid://shopify/InventoryItem/' || (payload->>'inventory_item_id')
        WHEN 'orders' THEN coalesce(payload->>'admin_graphql_api_id',
                                    'gid://shopify/Order/' || (payload->>'id'))
        WHEN 'products' THEN coalesce(payload->>'admin_graphql_api_id',
                                      'gid://shopify/Product/' || (payload->>'id'))
        WHEN 'customers' THEN coalesce(payload->>'admin_graphql_api_id',
                                       'gid://shopify/Customer/' || coalesce(
                                           payload->>'id', payload->'customer'->>'id'))
        ELSE payload->>'admin_graphql_api_id'
    END
$$;

-- The trace's lookups, by shop like every key (a lookup without a shop enumerates the shops
-- with a loose index scan): orders by name, customers by email, findings by record
-- (text_pattern_ops also serves `record LIKE 'SKU@%'`: stock findings are SKU@location).
-- Variants by SKU use `variants_sku`, everything else its primary key.
CREATE INDEX orders_name ON orders (shop, name) WHERE name IS NOT NULL;
CREATE INDEX customers_email ON customers (shop, lower(email)) WHERE email IS NOT NULL;
CREATE INDEX reconcile_findings_record ON reconcile_findings (shop, record text_pattern_ops);

-- When the change was applied (the handler's transaction): applied → Salesforce committed.
ALTER TABLE salesforce_outbox ADD COLUMN enqueued_at timestamptz NOT NULL DEFAULT now();

-- What made a buyer stale: `rules` (a rule edit) or `order` (an order of a location with
-- quotas): rule change → metafield live, order → quota visible at checkout.
ALTER TABLE rules_dirty ADD COLUMN cause text NOT NULL DEFAULT 'rules'
    CHECK (cause IN ('rules', 'order'));
CREATE OR REPLACE FUNCTION rules_mark_order_location() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    location text := 'gid://shopify/CompanyLocation/' || NEW.company_location_id;
BEGIN
    IF EXISTS (SELECT 1 FROM rule_quotas q
               WHERE q.shop = NEW.shop AND q.company_location = location) THEN
        INSERT INTO rules_dirty (shop, company_location, cause)
        VALUES (NEW.shop, location, 'order');
    END IF;
    RETURN NULL;
END $$;
