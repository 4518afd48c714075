-- The operational tables the topic handlers maintain (origin/src/handlers).
--
-- Every resource row is keyed by (shop, Shopify numeric id), or (shop, GID) where the webhook
-- carries no numeric id (companies, company locations). Every row keeps the version it was
-- written from:
--   source_updated_at  the payload's `updated_at`;
--   source_digest      a stable 64-bit FNV-1a hash of the stripped payload, which tells two
--                      different payloads with the same `updated_at` (second precision) apart
--                      from a redelivery of the same one.
-- An upsert wins only when its version is newer: a later `updated_at`, or the same `updated_at`
-- with a different digest (last writer wins inside one second). Money is `numeric`, never float.
--
-- Deletes are tombstones: `deleted_at` is set and the row is kept, so a late create or update
-- of a deleted resource cannot resurrect it (Shopify never reuses ids and never restores a
-- deleted order, product, customer, company or location). Children (order lines, variants) of
-- a tombstone are removed.

CREATE TABLE shops (
    shop               text PRIMARY KEY,
    shopify_id         bigint,
    name               text,
    domain             text,
    plan_name          text,
    source_updated_at  timestamptz,
    source_digest      bigint,
    -- Set by app/uninstalled; the install flow clears it.
    uninstalled_at     timestamptz,
    -- Set by shop/redact: the shop's operational data was deleted; events for the shop are no
    -- longer applied until the install flow clears it.
    redacted_at        timestamptz,
    applied_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    shop                    text   NOT NULL,
    id                      bigint NOT NULL,
    admin_graphql_api_id    text,
    name                    text,
    order_number            bigint,
    email                   text,
    customer_id             bigint,
    company_id              bigint,
    company_location_id     bigint,
    created_at              timestamptz,
    processed_at            timestamptz,
    cancelled_at            timestamptz,
    cancel_reason           text,
    closed_at               timestamptz,
    financial_status        text,
    fulfillment_status      text,
    currency                text,
    total_price             numeric,
    subtotal_price          numeric,
    total_tax               numeric,
    total_discounts         numeric,
    shipping_price          numeric,
    taxes_included          boolean,
    tags                    text,
    po_number               text,
    source_name             text,
    test                    boolean,
    shipping_country_code   text,
    shipping_province_code  text,
    shipping_zip            text,
    shipping_city           text,
    line_count              integer,
    -- NULL only on a tombstone written before any version of the order arrived.
    source_updated_at       timestamptz,
    source_digest           bigint,
    deleted_at              timestamptz,
    -- customers/redact erased this order's personal data; later versions stay erased.
    redacted_at             timestamptz,
    applied_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, id)
);
CREATE INDEX orders_customer ON orders (shop, customer_id) WHERE customer_id IS NOT NULL;

-- Replaced as a set whenever the order's row update wins.
CREATE TABLE order_lines (
    shop              text    NOT NULL,
    order_id          bigint  NOT NULL,
    id                bigint  NOT NULL,
    position          integer NOT NULL,
    variant_id        bigint,
    product_id        bigint,
    sku               text,
    quantity          integer NOT NULL,
    current_quantity  integer,
    price             numeric NOT NULL,
    total_discount    numeric,
    PRIMARY KEY (shop, order_id, id)
);

CREATE TABLE customers (
    shop                  text   NOT NULL,
    id                    bigint NOT NULL,
    admin_graphql_api_id  text,
    email                 text,
    first_name            text,
    last_name             text,
    phone                 text,
    state                 text,
    tags                  text,
    tax_exempt            boolean,
    created_at            timestamptz,
    -- NULL on a tombstone or on a redaction that arrived before any version of the customer.
    source_updated_at     timestamptz,
    source_digest         bigint,
    deleted_at            timestamptz,
    -- customers/redact: email, names and phone are erased and stay NULL whatever arrives later.
    redacted_at           timestamptz,
    applied_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, id)
);

CREATE TABLE companies (
    shop                               text NOT NULL,
    admin_graphql_api_id               text NOT NULL,
    name                               text,
    external_id                        text,
    note                               text,
    customer_since                     timestamptz,
    created_at                         timestamptz,
    main_contact_admin_graphql_api_id  text,
    source_updated_at                  timestamptz,
    source_digest                      bigint,
    deleted_at                         timestamptz,
    applied_at                         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, admin_graphql_api_id)
);

CREATE TABLE company_locations (
    shop                          text NOT NULL,
    admin_graphql_api_id          text NOT NULL,
    company_admin_graphql_api_id  text,
    name                          text,
    external_id                   text,
    created_at                    timestamptz,
    shipping_country_code         text,
    shipping_province_code        text,
    shipping_zip                  text,
    shipping_city                 text,
    source_updated_at             timestamptz,
    source_digest                 bigint,
    deleted_at                    timestamptz,
    applied_at                    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, admin_graphql_api_id)
);
CREATE INDEX company_locations_company ON company_locations (shop, company_admin_graphql_api_id);

CREATE TABLE products (
    shop                  text   NOT NULL,
    id                    bigint NOT NULL,
    admin_graphql_api_id  text,
    title                 text,
    handle                text,
    status                text,
    vendor                text,
    product_type          text,
    tags                  text,
    created_at            timestamptz,
    published_at          timestamptz,
    source_updated_at     timestamptz,
    source_digest         bigint,
    deleted_at            timestamptz,
    applied_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, id)
);

-- Replaced as a set whenever the product's row update wins.
CREATE TABLE variants (
    shop                text   NOT NULL,
    id                  bigint NOT NULL,
    product_id          bigint NOT NULL,
    sku                 text,
    barcode             text,
    title               text,
    price               numeric,
    compare_at_price    numeric,
    position            integer,
    inventory_quantity  integer,
    inventory_item_id   bigint,
    -- The variant's own `updated_at` from the product payload (informational: the product's
    -- version guards the set).
    source_updated_at   timestamptz,
    PRIMARY KEY (shop, id)
);
CREATE INDEX variants_product ON variants (shop, product_id);
CREATE INDEX variants_sku ON variants (shop, sku) WHERE sku IS NOT NULL;

CREATE TABLE inventory_levels (
    shop               text   NOT NULL,
    inventory_item_id  bigint NOT NULL,
    location_id        bigint NOT NULL,
    available          integer,
    source_updated_at  timestamptz NOT NULL,
    source_digest      bigint NOT NULL,
    applied_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, inventory_item_id, location_id)
);

-- What the compliance and uninstall handlers did, kept when the shop's data is deleted. It
-- holds ids and counts only, never the personal data itself.
CREATE TABLE compliance_audit (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop         text NOT NULL,
    topic        text NOT NULL,
    -- What the request is about: `customer:<id>` or `shop:<id or domain>`.
    subject      text NOT NULL,
    -- The payload digest: every delivery of one request (several subscriptions, replays)
    -- records one row.
    request_key  text NOT NULL,
    inbox_id     bigint NOT NULL,
    webhook_id   text NOT NULL,
    event_id     text,
    details      jsonb NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT compliance_audit_request UNIQUE (shop, topic, request_key)
);
CREATE INDEX compliance_audit_subject ON compliance_audit (shop, subject, recorded_at);
