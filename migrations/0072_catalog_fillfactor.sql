-- Catalog tables keep 10% of each heap page free, so that updating a row's unindexed columns
-- (a resync's or a webhook's new title, price, stock or metafield value) can stay on its page
-- as a HOT update: no new entry in every index of the table (variants have four) and far
-- less WAL (#17, measured with `cargo xtask bench catalog`). PostgreSQL applies a fillfactor
-- to pages it fills from now on; existing pages keep their rows until they are rewritten.
ALTER TABLE products SET (fillfactor = 90);
ALTER TABLE variants SET (fillfactor = 90);
ALTER TABLE inventory_levels SET (fillfactor = 90);
ALTER TABLE catalog_metafields SET (fillfactor = 90);
