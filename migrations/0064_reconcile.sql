-- Reconciliation (#15): every run is recorded with its scope, window, what it compared and
-- found, and what healing it; each difference found is a finding with when it was found and
-- fixed. Scopes arrive one at a time: `subscriptions` first (each shop's webhook
-- subscriptions against the required topics and the edge's address).
CREATE TABLE reconcile_runs (
    shop text NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    scope text NOT NULL CHECK (scope IN ('subscriptions')),
    trigger text NOT NULL CHECK (trigger IN ('schedule', 'operator')),
    -- `report`: findings are recorded, nothing is changed.
    mode text NOT NULL CHECK (mode IN ('heal', 'report')),
    window_start timestamptz,
    window_end timestamptz,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    compared bigint NOT NULL DEFAULT 0,
    missing bigint NOT NULL DEFAULT 0,
    stale bigint NOT NULL DEFAULT 0,
    healed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    -- Shopify cost points the run used.
    cost_used bigint NOT NULL DEFAULT 0,
    -- Why the run stopped early, if it did.
    error text,
    PRIMARY KEY (shop, id)
);
CREATE INDEX reconcile_runs_recent ON reconcile_runs (shop, scope, started_at DESC);

CREATE TABLE reconcile_findings (
    shop text NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    run_id bigint NOT NULL,
    -- e.g. `subscription_missing`, `subscription_elsewhere`.
    kind text NOT NULL,
    -- The record concerned: a topic, an order id, a SKU at a location.
    record text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    found_at timestamptz NOT NULL DEFAULT now(),
    healed_at timestamptz,
    -- Why healing failed, if it did.
    error text,
    PRIMARY KEY (shop, id),
    FOREIGN KEY (shop, run_id) REFERENCES reconcile_runs (shop, id) ON DELETE CASCADE
);
CREATE INDEX reconcile_findings_run ON reconcile_findings (shop, run_id);
