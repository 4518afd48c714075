-- B2B rules (origin/src/rules): what each buyer (company location) may order and at what
-- price, the record of what was pushed to Shopify, and the dirty marks that drive the push.
--
-- A rule's target is a variant or a product (`target_kind` 'variant' | 'product',
-- `target_id` the numeric Shopify id); a product-level rule applies to each of the product's
-- variants that has no variant-level rule of the same table (the most specific row wins, as a
-- whole). Buyers are company locations, named by their GID
-- (`gid://shopify/CompanyLocation/<id>`, as in company_locations.admin_graphql_api_id).
-- Money is numeric in the shop's currency.

-- Price matrix: the negotiated unit price from `min_quantity` units of the variant in the cart.
CREATE TABLE rule_price_breaks (
    shop              text    NOT NULL,
    company_location  text    NOT NULL,
    target_kind       text    NOT NULL CHECK (target_kind IN ('variant', 'product')),
    target_id         bigint  NOT NULL,
    min_quantity      integer NOT NULL CHECK (min_quantity >= 1),
    unit_price        numeric NOT NULL CHECK (unit_price >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, company_location, target_kind, target_id, min_quantity)
);

-- Case pack (increment), minimum and maximum quantity per cart line.
CREATE TABLE rule_line_limits (
    shop              text    NOT NULL,
    company_location  text    NOT NULL,
    target_kind       text    NOT NULL CHECK (target_kind IN ('variant', 'product')),
    target_id         bigint  NOT NULL,
    increment         integer NOT NULL DEFAULT 1 CHECK (increment >= 1),
    min_quantity      integer NOT NULL DEFAULT 0 CHECK (min_quantity >= 0),
    max_quantity      integer CHECK (max_quantity IS NULL OR max_quantity >= min_quantity),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, company_location, target_kind, target_id)
);

-- Quota: at most `quantity` units of each variant per calendar `period` (UTC; weeks start on
-- Monday), consumed by the location's orders in `orders` / `order_lines`.
CREATE TABLE rule_quotas (
    shop              text    NOT NULL,
    company_location  text    NOT NULL,
    target_kind       text    NOT NULL CHECK (target_kind IN ('variant', 'product')),
    target_id         bigint  NOT NULL,
    quantity          integer NOT NULL CHECK (quantity >= 0),
    period            text    NOT NULL CHECK (period IN ('week', 'month')),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, company_location, target_kind, target_id)
);

-- Minimum order value per location; its currency is the buyer's quote currency.
CREATE TABLE rule_order_minimums (
    shop              text    NOT NULL,
    company_location  text    NOT NULL,
    amount            numeric NOT NULL CHECK (amount >= 0),
    currency          text    NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, company_location)
);

-- Per SKU, for every buyer of the shop: the warehouses (Shopify location ids) allowed to ship
-- it (no row: any warehouse) and the buyer regions (ISO country codes) it may be sold to (no
-- row: any region).
CREATE TABLE rule_sku_warehouses (
    shop          text   NOT NULL,
    target_kind   text   NOT NULL CHECK (target_kind IN ('variant', 'product')),
    target_id     bigint NOT NULL,
    warehouse_id  bigint NOT NULL,
    PRIMARY KEY (shop, target_kind, target_id, warehouse_id)
);
CREATE TABLE rule_sku_regions (
    shop          text   NOT NULL,
    target_kind   text   NOT NULL CHECK (target_kind IN ('variant', 'product')),
    target_id     bigint NOT NULL,
    country_code  text   NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    PRIMARY KEY (shop, target_kind, target_id, country_code)
);

-- Routing: which warehouses serve buyers in which country (the company location's shipping
-- country). A shop without any row here has no routing: every warehouse serves every buyer.
CREATE TABLE rule_warehouse_regions (
    shop          text   NOT NULL,
    warehouse_id  bigint NOT NULL,
    country_code  text   NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    PRIMARY KEY (shop, warehouse_id, country_code)
);
CREATE INDEX rule_warehouse_regions_country ON rule_warehouse_regions (shop, country_code);

-- Quota consumption reads a location's orders of the current week or month.
CREATE INDEX orders_company_location ON orders (shop, company_location_id, created_at)
    WHERE company_location_id IS NOT NULL;
-- Inventory changes are mapped to the variants they concern.
CREATE INDEX variants_inventory_item ON variants (shop, inventory_item_id)
    WHERE inventory_item_id IS NOT NULL;

-- What was last pushed to each metafield: `digest` is the SHA-256 (hex) of the value origin
-- wrote, compared with the freshly computed value so that only changes are sent;
-- `compare_digest` is Shopify's digest of that value, sent as compareDigest on the next write.
CREATE TABLE rules_pushed (
    shop            text NOT NULL,
    owner_id        text NOT NULL,
    key             text NOT NULL,
    digest          text NOT NULL,
    compare_digest  text,
    pushed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, owner_id, key)
);

-- Buyers whose rules were found too large for the Function at the last computation (the
-- error names the buyer); cleared when the buyer fits again.
CREATE TABLE rules_push_errors (
    shop              text NOT NULL,
    company_location  text NOT NULL,
    error             text NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, company_location)
);

-- Buyers whose pushed rules may be stale, and variants whose stock changed. The background
-- push (rules::dirty) recomputes these after a quiet period, then deletes exactly the marks it
-- read (one made meanwhile survives). Append-only: a mark is a plain INSERT, never an upsert,
-- so the worker transactions that write orders and inventory levels never wait on each
-- other's marks (an upsert would lock the mark row until the whole batch commits).
CREATE TABLE rules_dirty (
    mark_id           bigserial PRIMARY KEY,
    shop              text NOT NULL,
    company_location  text NOT NULL,
    marked_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rules_dirty_shop ON rules_dirty (shop);
CREATE TABLE rules_dirty_variants (
    mark_id     bigserial PRIMARY KEY,
    shop        text   NOT NULL,
    variant_id  bigint NOT NULL,
    marked_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rules_dirty_variants_shop ON rules_dirty_variants (shop);

-- An order of a company location with quotas consumes them: mark the buyer dirty, whatever
-- wrote the order (webhook handler, replay, import). No NOTIFY here: a NOTIFY serialises the
-- commits of every order transaction on PostgreSQL's notify lock; the background push polls
-- for these marks instead (rules.poll_interval_ms).
CREATE FUNCTION rules_mark_order_location() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    location text := 'gid://shopify/CompanyLocation/' || NEW.company_location_id;
BEGIN
    IF EXISTS (SELECT 1 FROM rule_quotas q
               WHERE q.shop = NEW.shop AND q.company_location = location) THEN
        INSERT INTO rules_dirty (shop, company_location) VALUES (NEW.shop, location);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_rules_dirty
    AFTER INSERT OR UPDATE ON orders
    FOR EACH ROW WHEN (NEW.company_location_id IS NOT NULL)
    EXECUTE FUNCTION rules_mark_order_location();

-- Stock changed: mark the variants of the changed inventory items, once per statement (a
-- catalog merge changes a million rows at once), only for shops that have rules at all; when
-- no shop has any rule the trigger returns at once.
CREATE FUNCTION rules_mark_inventory() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    notified bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM rule_line_limits)
       AND NOT EXISTS (SELECT 1 FROM rule_quotas)
       AND NOT EXISTS (SELECT 1 FROM rule_sku_warehouses)
       AND NOT EXISTS (SELECT 1 FROM rule_sku_regions) THEN
        RETURN NULL;
    END IF;
    WITH ruled AS (
        SELECT s.shop FROM (SELECT DISTINCT shop FROM changed_levels) s
        WHERE EXISTS (SELECT 1 FROM rule_line_limits r WHERE r.shop = s.shop)
           OR EXISTS (SELECT 1 FROM rule_quotas r WHERE r.shop = s.shop)
           OR EXISTS (SELECT 1 FROM rule_sku_warehouses r WHERE r.shop = s.shop)
           OR EXISTS (SELECT 1 FROM rule_sku_regions r WHERE r.shop = s.shop)
    ), marked AS (
        INSERT INTO rules_dirty_variants (shop, variant_id)
        SELECT DISTINCT v.shop, v.id
        FROM changed_levels c
        JOIN ruled ON ruled.shop = c.shop
        JOIN variants v ON v.shop = c.shop AND v.inventory_item_id = c.inventory_item_id
        RETURNING shop
    )
    SELECT count(pg_notify('wholesail_rules_dirty', m.shop)) INTO notified
    FROM (SELECT DISTINCT shop FROM marked) m;
    RETURN NULL;
END $$;
CREATE TRIGGER inventory_levels_rules_dirty_insert
    AFTER INSERT ON inventory_levels
    REFERENCING NEW TABLE AS changed_levels
    FOR EACH STATEMENT EXECUTE FUNCTION rules_mark_inventory();
CREATE TRIGGER inventory_levels_rules_dirty_update
    AFTER UPDATE ON inventory_levels
    REFERENCING NEW TABLE AS changed_levels
    FOR EACH STATEMENT EXECUTE FUNCTION rules_mark_inventory();
