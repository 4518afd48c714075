-- Every outbox row of a record, whatever its status: an order enqueues the products of its
-- lines that were never enqueued (their price book entries are the order items' parents).
CREATE INDEX salesforce_outbox_record ON salesforce_outbox (shop, object, record_key);
