-- Per-product digests, so a resync compares only what may differ (`origin/src/catalog/scope.rs`).
--
-- `catalog_digests`: for each product of the export last merged into the shop, a hash of its
-- subtree's lines in that export (the product, its variants, their inventory levels, the
-- metafields of both). A product whose digest in the next export is the same, and none of
-- whose rows was written since by anything but a resync, needs no comparison.
CREATE TABLE catalog_digests (
    shop        text   NOT NULL,
    product_id  bigint NOT NULL,
    digest      bigint NOT NULL,
    PRIMARY KEY (shop, product_id)
);

-- What was written since the last resync by anything but a resync (webhooks, operators'
-- SQL): one mark per written product, variant, inventory item or metafield owner. The next
-- merge compares the marked rows whatever the digests say, then deletes the marks it saw;
-- the rows it could not make equal to the export (a newer webhook kept) are marked again.
-- Repeated marks older than an hour are compacted to one (`catalog::marks`).
CREATE TABLE catalog_dirty (
    shop               text   NOT NULL,
    mark_id            bigint GENERATED ALWAYS AS IDENTITY,
    product_id         bigint,
    variant_id         bigint,
    inventory_item_id  bigint,
    marked_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, mark_id)
);

-- Inserts and updates are marked row by row, except a resync's own writes (its rows carry
-- `written_by` 'catalog_run:<id>', a label no row had before): the WHEN clause keeps a
-- catalog load's COPY free of any trigger call. An update that keeps the row's label (an
-- operator's SQL) is marked.
CREATE FUNCTION catalog_mark_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'products' THEN
        INSERT INTO catalog_dirty (shop, product_id) VALUES (NEW.shop, NEW.id);
    ELSIF TG_TABLE_NAME = 'variants' THEN
        INSERT INTO catalog_dirty (shop, variant_id, inventory_item_id)
        VALUES (NEW.shop, NEW.id, NEW.inventory_item_id);
        IF TG_OP = 'UPDATE' AND OLD.inventory_item_id IS DISTINCT FROM NEW.inventory_item_id
        THEN
            INSERT INTO catalog_dirty (shop, inventory_item_id)
            VALUES (OLD.shop, OLD.inventory_item_id);
        END IF;
    ELSIF TG_TABLE_NAME = 'inventory_levels' THEN
        INSERT INTO catalog_dirty (shop, inventory_item_id)
        VALUES (NEW.shop, NEW.inventory_item_id);
    ELSIF NEW.owner_type = 'Product' THEN
        INSERT INTO catalog_dirty (shop, product_id) VALUES (NEW.shop, NEW.owner_id);
    ELSE
        INSERT INTO catalog_dirty (shop, variant_id) VALUES (NEW.shop, NEW.owner_id);
    END IF;
    RETURN NULL;
END $$;

-- Deletes are marked once per statement (a redaction deletes a whole catalog), except in a
-- transaction that keeps the marks itself (`SET LOCAL wholesail.catalog_writer = 'on'`: the
-- merge, the direct load, `shop/redact`).
CREATE FUNCTION catalog_mark_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('wholesail.catalog_writer', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'products' THEN
        INSERT INTO catalog_dirty (shop, product_id) SELECT shop, id FROM gone;
    ELSIF TG_TABLE_NAME = 'variants' THEN
        INSERT INTO catalog_dirty (shop, variant_id, inventory_item_id)
        SELECT shop, id, inventory_item_id FROM gone;
    ELSIF TG_TABLE_NAME = 'inventory_levels' THEN
        INSERT INTO catalog_dirty (shop, inventory_item_id)
        SELECT shop, inventory_item_id FROM gone;
    ELSE
        INSERT INTO catalog_dirty (shop, product_id, variant_id)
        SELECT shop, CASE WHEN owner_type = 'Product' THEN owner_id END,
               CASE WHEN owner_type = 'ProductVariant' THEN owner_id END
        FROM gone;
    END IF;
    RETURN NULL;
END $$;

-- The same three triggers on each catalog table.
DO $$
DECLARE
    t text;
    resync_row text := $w$coalesce(NEW.written_by, '') NOT LIKE 'catalog\_run:%'$w$;
BEGIN
    FOREACH t IN ARRAY ARRAY['products', 'variants', 'inventory_levels', 'catalog_metafields']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I FOR EACH ROW WHEN (%s)
                        EXECUTE FUNCTION catalog_mark_row()',
                       t || '_catalog_dirty_insert', t, resync_row);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I FOR EACH ROW
                        WHEN (%s OR NEW.written_by IS NOT DISTINCT FROM OLD.written_by)
                        EXECUTE FUNCTION catalog_mark_row()',
                       t || '_catalog_dirty_update', t, resync_row);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS gone
                        FOR EACH STATEMENT EXECUTE FUNCTION catalog_mark_deleted()',
                       t || '_catalog_dirty_delete', t);
    END LOOP;
END $$;
