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
    stripping     text        NOT NULL,
    original_bytes bigint     NOT NULL,
    -- The stripped JSON document; NULL only for a quarantined body that is not JSON.
    payload       jsonb,
    -- The body as received, kept only when it is not JSON.
    raw_body      bytea,
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processing', 'done', 'dead', 'quarantined')),
    attempts      integer     NOT NULL DEFAULT 0,
    run_at        timestamptz NOT NULL DEFAULT now(),
    locked_by     text,
    locked_until  timestamptz,
    last_error    text,
    processed_at  timestamptz,
    CONSTRAINT inbox_webhook_id_key UNIQUE (webhook_id),
    CONSTRAINT inbox_payload_or_raw CHECK (payload IS NOT NULL OR raw_body IS NOT NULL)
);

-- Workers claim due pending rows in run_at order.
CREATE INDEX inbox_due ON inbox (run_at) WHERE status = 'pending';
-- Expired leases of crashed workers are found here.
CREATE INDEX inbox_leased ON inbox (locked_until) WHERE status = 'processing';
CREATE INDEX inbox_shop_topic ON inbox (shop, topic, inserted_at);
