-- Quote to cash: a B2B quote becomes one or more linked Shopify draft orders
-- (origin/src/draft_orders). A job is one quote; its parts are the drafts it is split into.
--
-- The job row is also the work queue: a job loop claims due rows with FOR UPDATE SKIP LOCKED
-- and a lease (locked_by / locked_until; an expired lease is claimable again), retries with
-- backoff stored in run_at, and marks the job failed with the reason when it gives up.
--
-- Phases of a job (status stays 'processing' until the drafts exist):
--   planned_at IS NULL       price and validate the lines, split them, write the parts
--   a part without draft_id  if a create was ever sent for it, look its tag up in Shopify;
--                            create it if absent; record it
--   all parts have drafts    optional invoice send, then 'completed'
-- A callback, when requested, is delivered afterwards (callback_state) by the same loop.

CREATE TABLE draft_order_jobs (
    -- 'dq_' + 20 hex digits of SHA-256(shop, quote_id): the same quote always has the same
    -- job id, which is also the drafts' group id.
    id                  text PRIMARY KEY,
    shop                text NOT NULL,
    quote_id            text NOT NULL,
    company_location_id text NOT NULL,
    -- The quote as submitted (lines, shipping, note, callback URL, invoice flag).
    request             jsonb NOT NULL,
    status              text NOT NULL DEFAULT 'processing'
                        CHECK (status IN ('processing', 'completed', 'rejected', 'failed')),
    -- Set by the planning step, together with the parts.
    planned_at          timestamptz,
    currency            text,
    -- Sum over the parts of lines at their negotiated prices plus shipping, in cents.
    quote_total_cents   bigint,
    parts_total         integer,
    parts_created       integer NOT NULL DEFAULT 0,
    -- Rejected: every validation error [{code, line, message}]. Failed: the reason.
    violations          jsonb,
    error               text,
    -- Claims of the job loop (each processing step or callback attempt counts).
    attempts            integer NOT NULL DEFAULT 0,
    run_at              timestamptz NOT NULL DEFAULT now(),
    locked_by           text,
    locked_until        timestamptz,
    -- Where the final status is POSTed (signed), if anywhere.
    callback_url        text,
    -- 'none' (no callback URL), 'pending' (due at run_at once the job has ended),
    -- 'delivered', 'failed' (gave up after the configured attempts).
    callback_state      text NOT NULL DEFAULT 'none'
                        CHECK (callback_state IN ('none', 'pending', 'delivered', 'failed')),
    callback_attempts   integer NOT NULL DEFAULT 0,
    callback_error      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    UNIQUE (shop, quote_id)
);

-- What the job loop claims: unfinished jobs and pending callbacks, by due time.
CREATE INDEX draft_order_jobs_due ON draft_order_jobs (run_at)
    WHERE status = 'processing' OR callback_state = 'pending';

CREATE TABLE draft_order_parts (
    job_id          text    NOT NULL REFERENCES draft_order_jobs (id),
    -- 1-based; "part i of n".
    part            integer NOT NULL,
    -- Deterministic: '<job id>-<part>'; the draft carries the tag 'wholesail-part:<key>'.
    key             text    NOT NULL UNIQUE,
    -- The priced lines of this part [{variant_id, quantity, list_price, unit_price, …}].
    lines           jsonb   NOT NULL,
    line_count      integer NOT NULL,
    shipping_cents  bigint  NOT NULL DEFAULT 0,
    -- Lines at negotiated prices plus shipping, as computed here.
    total_cents     bigint  NOT NULL,
    -- Set (lease held) just before draftOrderCreate is sent. Only a part with it set can
    -- exist in Shopify unrecorded, so only such a part is looked up by its tag first.
    create_sent_at  timestamptz,
    -- Set in the same transaction that counts the part as created.
    draft_id        text,
    draft_name      text,
    invoice_url     text,
    -- What Shopify computed for the draft (compared with total_cents).
    shopify_total_cents bigint,
    -- Whether the draft was found by its tag (an earlier attempt's outcome was unknown).
    recovered       boolean NOT NULL DEFAULT false,
    created_at      timestamptz,
    invoice_sent_at timestamptz,
    PRIMARY KEY (job_id, part)
);
