-- The digests are a cache of the last export, not a record: a product without a digest row
-- is compared in full by the next resync (`origin/src/catalog/scope.rs`). Unlogged, their
-- writes leave no WAL (1M variants' digests at the first load; the rewritten rows' pages
-- on each resync, full-page images after a checkpoint). A crash empties the table (never
-- leaving digests of rows the recovery lost), and so does a standby's promotion or a
-- restore from a base backup: the next resync then compares everything and writes the
-- digests again. The marks (`catalog_dirty`) stay logged: a lost mark would hide a change.
ALTER TABLE catalog_digests SET UNLOGGED;
