-- The operator's inbox filter (dead-letters list, count and replay; quarantine replay), defined
-- once so every query using it is a literal the compiler checks. A single-expression SQL
-- function: the planner inlines it, so the inbox's indexes still serve the filter.
CREATE FUNCTION wholesail_inbox_matches(
    id int8, topic text, shop text, inserted_at timestamptz,
    want_ids int8[], want_topic text, want_shop text, since timestamptz, until timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (cardinality(want_ids) = 0 OR id = ANY(want_ids))
       AND (want_topic IS NULL OR topic = want_topic)
       AND (want_shop IS NULL OR shop = want_shop)
       AND (since IS NULL OR inserted_at >= since)
       AND (until IS NULL OR inserted_at < until)
$$;
