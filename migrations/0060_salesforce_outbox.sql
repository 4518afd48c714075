-- The transactional outbox toward Salesforce (#14). A handler that applied a change enqueues
-- the changed record in the same transaction, so nothing is lost between PostgreSQL and
-- Salesforce. The sync reads the record's current rows when it sends, so one pending row per
-- record is enough: a newer change of a pending record only moves `changed_at` (coalescing).
-- A record in flight gets a new pending row, sent after it.

-- The shops whose changes go to a Salesforce org (origin writes them from its configuration at
-- start-up). Changes of other shops are not enqueued.
CREATE TABLE salesforce_orgs (
    shop text PRIMARY KEY,
    enabled_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE salesforce_outbox (
    shop text NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    object text NOT NULL CHECK (object IN ('account', 'contact', 'product', 'order')),
    -- Shopify's id of the record (a number, or a company's GID).
    record_key text NOT NULL,
    -- `live` rows come from webhooks; `backfill` rows from `origin salesforce backfill`, which
    -- pauses when the API budget reaches its reserve.
    lane text NOT NULL DEFAULT 'live' CHECK (lane IN ('live', 'backfill')),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'done', 'dead')),
    -- When Shopify triggered the first change this row carries (lag is measured from here).
    first_changed_at timestamptz NOT NULL DEFAULT now(),
    changed_at timestamptz NOT NULL DEFAULT now(),
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    locked_by text,
    locked_until timestamptz,
    last_error text,
    salesforce_id text,
    done_at timestamptz,
    PRIMARY KEY (shop, id)
);
CREATE UNIQUE INDEX salesforce_outbox_pending ON salesforce_outbox (shop, object, record_key)
    WHERE status = 'pending';
CREATE INDEX salesforce_outbox_due ON salesforce_outbox (run_at) WHERE status = 'pending';
CREATE INDEX salesforce_outbox_leased ON salesforce_outbox (locked_until)
    WHERE status = 'processing';
CREATE INDEX salesforce_outbox_dead ON salesforce_outbox (shop, changed_at) WHERE status = 'dead';
