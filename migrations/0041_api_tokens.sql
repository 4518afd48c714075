-- Named, scoped API tokens replace the single admin token (origin/src/auth).
--
-- A token is 'wso_' + 43 base64url characters (32 random bytes); only its SHA-256 is stored.
-- `origin tokens rotate` moves the current hash to previous_hash, which stays valid until
-- previous_valid_until (the rotation's grace period; none by default). A revoked token keeps
-- its row (the audit log points at it) and its name can be given to a new token.

CREATE TABLE api_tokens (
    id                   bigserial PRIMARY KEY,
    name                 text   NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    -- Any of 'ops:read', 'ops:write', 'integrator'; none implies another.
    scopes               text[] NOT NULL
                         CHECK (cardinality(scopes) > 0
                                AND scopes <@ ARRAY['ops:read', 'ops:write', 'integrator']),
    secret_hash          bytea  NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    previous_hash        bytea  CHECK (length(previous_hash) = 32),
    previous_valid_until timestamptz,
    -- Integrators only: the key their draft-order callbacks are signed with. Origin must sign
    -- with it, so it is stored as generated (not hashed); treat the table as secret.
    callback_secret      text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    rotated_at           timestamptz,
    revoked_at           timestamptz
);

-- One live token per name.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
CREATE INDEX api_tokens_previous_hash ON api_tokens (previous_hash)
    WHERE previous_hash IS NOT NULL;

-- Every write action: over HTTP by a token (also when refused for its scopes), or on the host
-- by the CLI (token_id NULL, actor 'cli').
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    token_id  bigint REFERENCES api_tokens (id),
    actor     text NOT NULL,
    -- 'POST /admin/dead-letters/{id}/replay' (method and route), or 'tokens rotate' (CLI).
    action    text NOT NULL,
    -- What it acted on: the request path and query, or the CLI's argument.
    target    text NOT NULL,
    outcome   text NOT NULL CHECK (outcome IN ('success', 'error', 'denied')),
    -- The HTTP status (NULL for the CLI).
    status    integer,
    -- What the action did, when the handler says (a job id, replayed ids).
    detail    text
);

CREATE INDEX audit_log_at ON audit_log (at);

-- The integrator token a job was submitted with (NULL: the CLI). Its callback is signed with
-- that token's callback_secret and only that token can read the job.
ALTER TABLE draft_order_jobs ADD COLUMN token_id bigint REFERENCES api_tokens (id);
