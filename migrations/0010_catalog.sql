-- Catalog sync (origin/src/catalog): the state of each resync run, the staging tables a run's
-- bulk export is COPYed into, and the catalog metafields the rules read.
--
-- A run moves starting → waiting (bulk operation running on Shopify) → importing (JSONL
-- streamed through binary COPY into the run's staging tables) → completed (set in the same
-- transaction as the merge into products / variants / inventory_levels), or failed / canceled.
-- At most one run per shop is active; a restarted process resumes it from its stored state.

CREATE TABLE catalog_runs (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop               text NOT NULL,
    status             text NOT NULL DEFAULT 'starting'
        CHECK (status IN ('starting', 'waiting', 'importing', 'completed', 'failed', 'canceled')),
    -- The Shopify bulk operation gid, once bulkOperationRunQuery answered.
    bulk_operation_id  text,
    -- The bulk operation's createdAt: rows a webhook changed after it are newer than the export.
    snapshot_at        timestamptz,
    -- Last status and object count Shopify reported, and the file's size.
    bulk_status        text,
    bulk_object_count  bigint,
    file_size          bigint,
    -- Set by cancel(); the runner stops at its next check.
    cancel_requested   boolean NOT NULL DEFAULT false,
    -- Progress of the import (updated about once a second while importing).
    lines_read         bigint NOT NULL DEFAULT 0,
    bytes_read         bigint NOT NULL DEFAULT 0,
    -- Rows staged by kind, and what the merge did: {"products": {"inserted": n, ...}, ...}.
    staged             jsonb,
    merged             jsonb,
    inserted           bigint,
    updated            bigint,
    deleted            bigint,
    error              text,
    -- The JSONL line a parse error was found on.
    error_line         bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    bulk_finished_at   timestamptz,
    finished_at        timestamptz
);
CREATE UNIQUE INDEX catalog_runs_one_active ON catalog_runs (shop)
    WHERE status IN ('starting', 'waiting', 'importing');
CREATE INDEX catalog_runs_shop ON catalog_runs (shop, id DESC);
CREATE INDEX catalog_runs_bulk ON catalog_runs (shop, bulk_operation_id)
    WHERE bulk_operation_id IS NOT NULL;

-- Staging templates. Each run creates UNLOGGED copies named catalog_stage_<run>_<kind>
-- (`CREATE UNLOGGED TABLE … (LIKE catalog_stage_<kind>)`), fills them by binary COPY and
-- drops them after the merge. No indexes: the merge reads each once (hash joins).
CREATE UNLOGGED TABLE catalog_stage_products (
    id           bigint NOT NULL,
    gid          text NOT NULL,
    title        text,
    handle       text,
    status       text,
    vendor       text,
    product_type text,
    tags         text,
    updated_at   timestamptz NOT NULL
);

CREATE UNLOGGED TABLE catalog_stage_variants (
    id                 bigint NOT NULL,
    product_id         bigint NOT NULL,
    sku                text,
    barcode            text,
    title              text,
    -- Decimal text checked by the importer; cast to numeric by the merge.
    price              text,
    compare_at_price   text,
    position           integer,
    inventory_item_id  bigint,
    updated_at         timestamptz NOT NULL
);

CREATE UNLOGGED TABLE catalog_stage_inventory_levels (
    variant_id         bigint NOT NULL,
    inventory_item_id  bigint NOT NULL,
    location_id        bigint NOT NULL,
    available          integer,
    updated_at         timestamptz NOT NULL
);

CREATE UNLOGGED TABLE catalog_stage_metafields (
    id          bigint NOT NULL,
    -- 'Product' or 'ProductVariant', and the owner's numeric id.
    owner_type  text NOT NULL,
    owner_id    bigint NOT NULL,
    namespace   text NOT NULL,
    key         text NOT NULL,
    type        text NOT NULL,
    value       text NOT NULL
);

-- The `wholesail` metafields of products and variants, as of the last completed resync
-- (no webhook writes them; a resync replaces the shop's set).
CREATE TABLE catalog_metafields (
    shop          text   NOT NULL,
    owner_type    text   NOT NULL,
    owner_id      bigint NOT NULL,
    namespace     text   NOT NULL,
    key           text   NOT NULL,
    metafield_id  bigint NOT NULL,
    type          text   NOT NULL,
    value         text   NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, owner_type, owner_id, namespace, key)
);
