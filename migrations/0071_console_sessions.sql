-- Sessions of the web console (origin/src/console): a signed-in API token in a browser.
--
-- The cookie carries a random session id; only its SHA-256 is stored, like the tokens'. The
-- session lives until expires_at, sign-out deletes it, and it is dead as soon as its token
-- is revoked or rotated (checked on every request, by joining api_tokens). Every form of the
-- session carries csrf_secret, compared on each POST.
CREATE TABLE console_sessions (
    id_hash      bytea       PRIMARY KEY CHECK (length(id_hash) = 32),
    token_id     bigint      NOT NULL REFERENCES api_tokens (id),
    csrf_secret  text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- Expired sessions are swept at each sign-in.
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- The console's lists page by keyset, newest first: draft-order jobs by (created_at, id).
CREATE INDEX draft_order_jobs_created ON draft_order_jobs (created_at DESC, id DESC);
