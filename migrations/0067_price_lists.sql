-- Reconciliation (#15), negotiated prices at checkout: each buyer (company location) with
-- price or limit rules gets a company location catalog and its price list in Shopify, holding
-- fixed prices, quantity price breaks and quantity rules computed from the price matrix
-- (origin/src/reconcile/price_lists.rs).
--
-- `price_lists`: the ids of a buyer's catalog and price list (the price list id is recorded
-- once it was created) and the price list's currency.
CREATE TABLE price_lists (
    shop              text NOT NULL,
    company_location  text NOT NULL,
    catalog_id        text NOT NULL,
    price_list_id     text,
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, company_location)
);

-- What origin last wrote to a variant of a buyer's price list (fixed price, breaks and
-- quantity rule, as JSON): the rules push compares the computed state with this and writes
-- only what changed; a reconciliation run compares with what Shopify holds and rewrites it.
CREATE TABLE price_list_entries (
    shop              text   NOT NULL,
    company_location  text   NOT NULL,
    variant_id        bigint NOT NULL,
    entry             jsonb  NOT NULL,
    written_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, company_location, variant_id),
    FOREIGN KEY (shop, company_location) REFERENCES price_lists (shop, company_location)
        ON DELETE CASCADE
);
