-- How each company was matched to a Salesforce Account before its first write (#14): never a
-- guess. `created`: no candidate, a new Account; `linked`: a unique strong match, the external
-- id written onto the existing Account; `review`: several or weak candidates, nothing written
-- until an operator links or creates (`origin salesforce review link|create`).
CREATE TABLE salesforce_links (
    shop text NOT NULL,
    company text NOT NULL,
    decision text NOT NULL CHECK (decision IN ('created', 'linked', 'review')),
    account_id text,
    -- False while an operator's link is not yet written onto the Account (the next round does).
    account_written boolean NOT NULL DEFAULT true,
    -- For review: the candidates with their reasons, strongest first.
    candidates jsonb NOT NULL DEFAULT '[]',
    decided_at timestamptz NOT NULL DEFAULT now(),
    decided_by text NOT NULL DEFAULT 'matching',
    PRIMARY KEY (shop, company)
);
CREATE INDEX salesforce_links_review ON salesforce_links (shop, decided_at)
    WHERE decision = 'review';
