-- One driver per catalog run (origin/src/catalog/README.md, "One driver per run").
--
-- A process drives a run only while it holds the run's session advisory lock, on a
-- connection of its own (released by PostgreSQL when that process dies). Each time a process
-- takes a run it increments `attempt`: its staging tables are catalog_stage_<run>_<attempt>_<kind>,
-- and every state change it writes (progress, failure, the merge's `completed`) is guarded by
-- `attempt = <its attempt>`, so a driver that lost its lock can no longer change the run.
ALTER TABLE catalog_runs
    ADD COLUMN attempt  integer NOT NULL DEFAULT 0,
    -- The process of the latest attempt (host-pid-random), for operators.
    ADD COLUMN driver   text,
    -- How long the completed attempt took to stage (download, parse, COPY) and to merge, so a
    -- watcher prints the same summary as the driver.
    ADD COLUMN stage_ms bigint,
    ADD COLUMN merge_ms bigint;
