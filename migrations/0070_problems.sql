-- Problems (#16): one view over every row that needs a person, and the operators' dismissals.
--
-- `problem_items` has one row per affected record: its kind, shop, reason (the text that
-- groups items into one problem), an item key (what an action addresses), a record (what an
-- operator recognises: a topic and webhook id, a gid, a run) and when it was last seen. The
-- problems module (`origin/src/problems/`) groups it by (kind, shop, reason). Each branch reads
-- its table through a partial index on the failed rows, so the view costs what the failures
-- cost, not what the tables hold.
CREATE VIEW problem_items AS
SELECT 'dead_letter'::text AS kind, shop,
       coalesce(last_error, 'dead without a recorded error') AS reason,
       id::text AS item, topic || ' ' || webhook_id AS record,
       coalesce(processed_at, inserted_at) AS seen_at
FROM inbox WHERE status = 'dead'
UNION ALL
SELECT 'quarantined', shop, coalesce(last_error, 'quarantined without a recorded reason'),
       id::text, topic || ' ' || webhook_id, inserted_at
FROM inbox WHERE status = 'quarantined'
UNION ALL
SELECT 'rules_push_error', shop, error, company_location, company_location, recorded_at
FROM rules_push_errors
UNION ALL
-- A failed catalog run stops being a problem once a later run of its shop completed.
SELECT 'catalog_run_failed', r.shop, coalesce(r.error, 'failed without a recorded error'),
       r.id::text, 'catalog run ' || r.id, coalesce(r.finished_at, r.updated_at)
FROM catalog_runs r
WHERE r.status = 'failed'
  AND NOT EXISTS (SELECT 1 FROM catalog_runs l
                  WHERE l.shop = r.shop AND l.status = 'completed' AND l.id > r.id)
UNION ALL
SELECT 'draft_order_failed', shop, coalesce(error, 'failed without a recorded error'),
       id, 'quote ' || quote_id || ' (' || company_location_id || ')',
       coalesce(finished_at, updated_at)
FROM draft_order_jobs WHERE status = 'failed'
UNION ALL
SELECT 'salesforce_dead', shop, coalesce(last_error, 'dead without a recorded error'),
       id::text, object || ' ' || record_key, changed_at
FROM salesforce_outbox WHERE status = 'dead'
UNION ALL
SELECT 'salesforce_review', shop,
       'the company matches ' || jsonb_array_length(candidates)
           || ' Salesforce Accounts: link one or create a new Account',
       company, company, decided_at
FROM salesforce_links WHERE decision = 'review'
UNION ALL
-- Unhealed findings of the latest finished run of each shop and scope (an older run's
-- findings were either healed since or found again by the latest run).
SELECT 'reconcile_finding', f.shop,
       r.scope || ' ' || f.kind || ': ' || coalesce(f.error,
           CASE WHEN r.mode = 'report' THEN 'reported, not healed (report mode)'
                ELSE 'not healed' END),
       f.id::text, f.record, f.found_at
FROM reconcile_findings f
JOIN reconcile_runs r ON r.shop = f.shop AND r.id = f.run_id
WHERE f.healed_at IS NULL AND r.finished_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM reconcile_runs n
                  WHERE n.shop = r.shop AND n.scope = r.scope AND n.finished_at IS NOT NULL
                    AND n.started_at > r.started_at);

-- Partial indexes where a branch would otherwise scan its table.
CREATE INDEX catalog_runs_failed ON catalog_runs (shop, id) WHERE status = 'failed';
CREATE INDEX catalog_runs_completed ON catalog_runs (shop, id) WHERE status = 'completed';
CREATE INDEX draft_order_jobs_failed ON draft_order_jobs (shop, finished_at)
    WHERE status = 'failed';
CREATE INDEX reconcile_findings_unhealed ON reconcile_findings (shop, run_id)
    WHERE healed_at IS NULL;

-- An operator's dismissal of a problem (kind, shop and the first 16 hex digits of the MD5 of
-- its reason), with the operator's reason. The problem is hidden while nothing of it was seen after `dismissed_at`; an
-- item seen later brings it back. Dismissing again moves `dismissed_at`.
CREATE TABLE problem_dismissals (
    shop          text        NOT NULL,
    kind          text        NOT NULL,
    reason_hash   text        NOT NULL CHECK (reason_hash ~ '^[0-9a-f]{16}$'),
    problem_reason text       NOT NULL,
    reason        text        NOT NULL CHECK (reason <> ''),
    dismissed_at  timestamptz NOT NULL DEFAULT now(),
    token_id      bigint      REFERENCES api_tokens (id),
    actor         text        NOT NULL,
    PRIMARY KEY (shop, kind, reason_hash)
);
