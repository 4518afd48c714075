-- How a completed catalog run loaded its rows: true when the export went straight into the
-- live tables (the first resync of a shop with no catalog rows, `catalog/direct.rs`), false
-- when it went through staging and the merge. NULL for runs that have not completed.
ALTER TABLE catalog_runs ADD COLUMN direct boolean;
