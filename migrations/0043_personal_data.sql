-- Personal data really goes away (customers/redact, shop/redact) and done inbox rows expire.

-- The personal fields a stripped payload can carry (contracts/webhook allowlist: orders keep
-- email, customer.email and shipping_address zip/city; customers keep email, names, phone;
-- compliance payloads keep the customer object whole), plus the address and contact fields
-- of unknown topics, which pass through whole. Removed at any depth.
CREATE FUNCTION wholesail_scrub_personal(doc jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN CASE jsonb_typeof(doc)
        WHEN 'object' THEN (
            SELECT coalesce(jsonb_object_agg(key, wholesail_scrub_personal(value)), '{}'::jsonb)
            FROM jsonb_each(doc)
            WHERE key <> ALL (ARRAY['email', 'contact_email', 'customer_email', 'first_name',
                                    'last_name', 'phone', 'address1', 'address2', 'zip',
                                    'city', 'latitude', 'longitude', 'note', 'browser_ip']))
        WHEN 'array' THEN (
            SELECT coalesce(jsonb_agg(wholesail_scrub_personal(value) ORDER BY n), '[]'::jsonb)
            FROM jsonb_array_elements(doc) WITH ORDINALITY AS a(value, n))
        ELSE doc
    END;
END
$$;

-- customers/redact finds the customer's inbox rows by customer id (orders and compliance
-- payloads carry customer.id) and by email (orders and customers/* carry it top-level), within
-- the shop: index lookups instead of a scan of the whole inbox.
CREATE INDEX inbox_customer ON inbox (shop, (payload -> 'customer' ->> 'id'))
    WHERE payload ? 'customer';
CREATE INDEX inbox_email ON inbox (shop, lower(payload ->> 'email'))
    WHERE payload ? 'email';

-- Retention purges done rows by age: rows are inserted in time order, so a BRIN index (a few
-- pages for millions of rows, nearly free to maintain) finds the old ones.
CREATE INDEX inbox_inserted_brin ON inbox USING brin (inserted_at);

-- `doc` with every occurrence of each of `needles` (case-insensitive, literal) replaced by
-- '[redacted]'. Used on text and on jsonb as text (an email needs no JSON escaping).
CREATE FUNCTION wholesail_erase_needles(doc text, needles text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    needle text;
BEGIN
    IF doc IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH needle IN ARRAY coalesce(needles, '{}') LOOP
        CONTINUE WHEN needle IS NULL OR needle = '';
        doc := regexp_replace(doc, regexp_replace(needle, '([.*+?^${}()|\[\]\\])', '\\\1', 'g'),
                              '[redacted]', 'gi');
    END LOOP;
    RETURN doc;
END
$$;
