-- Changes made in Salesforce, read from Change Data Capture over the Pub/Sub API (#14).

-- Where each shop's subscription resumes: the replay id of the last event handled, stored in
-- the transaction that applied it. `committed_at` (that event's commitTimestamp) is where a
-- query-based catch-up starts when Salesforce no longer holds the replay id (72 h).
CREATE TABLE salesforce_replay (
    shop text PRIMARY KEY,
    replay_id bytea NOT NULL,
    committed_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Each time the subscription could not resume from its replay id and read what changed
-- since `since` with SOQL instead: the operator sees that events were not replayed.
CREATE TABLE salesforce_catchups (
    shop text NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    reason text NOT NULL,
    since timestamptz,
    records integer NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (shop, id)
);

-- Salesforce-owned fields (the ownership map in `salesforce::mapping`) of the records the
-- sync writes, as Salesforce last changed them: {field: value}.
CREATE TABLE salesforce_owned_fields (
    shop text NOT NULL,
    object text NOT NULL,
    salesforce_id text NOT NULL,
    fields jsonb NOT NULL DEFAULT '{}',
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (shop, object, salesforce_id)
);

-- A Shopify-owned field edited in Salesforce: reported here and restored by sending the
-- record again (`restore_enqueued`).
CREATE TABLE salesforce_drift (
    shop text NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    object text NOT NULL,
    salesforce_id text NOT NULL,
    -- The Shopify record the Salesforce record belongs to (NULL: not one the sync wrote).
    record_key text,
    fields text[] NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL,
    restore_enqueued boolean NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, id)
);

-- Which outbox row wrote a Salesforce record: how a change event's record id is traced back
-- to its Shopify record.
CREATE INDEX salesforce_outbox_written ON salesforce_outbox (shop, object, salesforce_id)
    WHERE salesforce_id IS NOT NULL;

-- Quote to cash: a Quote approved in Salesforce becomes a draft-order job (idempotent by the
-- quote id), and the outcome — invoice URLs or the reason — is written back onto the Quote.
CREATE TABLE salesforce_quotes (
    shop text NOT NULL,
    quote_id text NOT NULL,
    -- The draft-order job (NULL when the quote could not become one: see `error`).
    job_id text,
    error text,
    -- commitTimestamp of the approval: the start of the approval → invoice URL lag.
    approved_at timestamptz NOT NULL,
    -- The write-back: due at `run_at`, leased while it runs, done at `written_at`.
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    last_error text,
    written_at timestamptz,
    PRIMARY KEY (shop, quote_id)
);
CREATE INDEX salesforce_quotes_unwritten ON salesforce_quotes (run_at) WHERE written_at IS NULL;
