-- Per-variant digests beside each product's (`origin/src/catalog/scope.rs`): a product whose
-- digest changed has its variants compared one by one, so a changed inventory level sends
-- one variant to the merge's comparison instead of the whole product.
--
-- `own`: the hash of the product's line and its metafields' in the export last merged;
-- `variant_ids` / `variant_digests`: its variants in that export (by id) and each one's hash
-- of its line, its inventory levels and its metafields. NULL (rows stored before this
-- migration): unknown, every variant of the product is compared when its digest differs.
ALTER TABLE catalog_digests
    ADD COLUMN own             bigint,
    ADD COLUMN variant_ids     bigint[],
    ADD COLUMN variant_digests bigint[];
