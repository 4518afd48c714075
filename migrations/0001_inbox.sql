-- The webhook inbox: one row per Shopify delivery, deduplicated on Shopify's webhook id.
-- The row is both the dedup record and the job: intake and job state share one transaction,
-- so an event can never be acknowledged without being queued for processing.
CREATE TABLE inbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id    text        NOT NULL,
    event_id      text,
    shop          text        NOT NULL,
    topic         text        NOT NULL,
    api_version   text        NOT NULL,
    triggered_at  timestamptz,
    received_at   timestamptz NOT NULL,
    inserted_at   timestamptz NOT NULL DEFAULT now(),
    -- How the row arrived: 'edge' (POST /internal/webhooks), 'direct' (POST /webhooks/shopify)
    -- or 'edge_dlq' (POST /internal/dead-letters, stored dead for an operator to replay).
    source        text        NOT NULL DEFAULT 'edge'
                  CHECK (source IN ('edge', 'direct', 'edge_dlq')),
    stripping     text        NOT NULL,
    original_bytes bigint     NOT NULL,
    -- The stripped JSON document; NULL only for a quarantined body that is not JSON.
    payload       jsonb,
    -- The body as received, kept only when it is not JSON.
    raw_body      bytea,
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processing', 'done', 'dead', 'quarantined')),
    -- Claims so far; a claim counts as an attempt, so an event that crashes its worker
    -- still reaches the dead letters after max_attempts lease expiries.
    attempts      integer     NOT NULL DEFAULT 0,
    -- When the row is next due: now() on intake, now() + backoff after a failure.
    run_at        timestamptz NOT NULL DEFAULT now(),
    locked_by     text,
    locked_until  timestamptz,
    last_error    text,
    processed_at  timestamptz,
    -- Times the row was marked done, incremented in the transaction that applies its effect:
    -- exactly-once processing means this is never above 1 (replay resets nothing here).
    processed_count integer   NOT NULL DEFAULT 0,
    -- Times an operator replayed the row from the dead letters.
    replays       integer     NOT NULL DEFAULT 0,
    CONSTRAINT inbox_webhook_id_key UNIQUE (webhook_id),
    CONSTRAINT inbox_payload_or_raw CHECK (payload IS NOT NULL OR raw_body IS NOT NULL),
    CONSTRAINT inbox_lease CHECK ((status = 'processing') = (locked_until IS NOT NULL))
);

-- Workers enumerate shops with pending rows (a loose index scan) and claim each shop's due
-- rows in run_at order: round-robin by shop, so one shop's flood cannot starve the others.
CREATE INDEX inbox_pending_shop ON inbox (shop, run_at, id) WHERE status = 'pending';
-- Readiness and lag metrics look for the oldest due row.
CREATE INDEX inbox_due ON inbox (run_at) WHERE status = 'pending';
-- Expired leases of crashed workers are found here.
CREATE INDEX inbox_leased ON inbox (locked_until) WHERE status = 'processing';
-- Dead letters and quarantine are listed and replayed by topic, shop and time.
CREATE INDEX inbox_failed ON inbox (status, inserted_at) WHERE status IN ('dead', 'quarantined');
CREATE INDEX inbox_shop_topic ON inbox (shop, topic, inserted_at);
CREATE INDEX inbox_event_id ON inbox (event_id) WHERE event_id IS NOT NULL;
