-- The SHA-256 of the body Shopify sent, per inbox row (NULL for rows stored before this
-- column). Intake quarantines a body already accepted for another shop, or re-sent under a
-- delete topic, instead of applying it (origin/src/body_guard.rs). The digest lives on the
-- inbox row, so the inbox retention purges it with the row.
ALTER TABLE inbox ADD COLUMN body_sha256 bytea;
CREATE INDEX inbox_body_sha256 ON inbox (body_sha256) WHERE body_sha256 IS NOT NULL;
