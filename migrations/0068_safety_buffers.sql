-- Safety buffers (#15): units of a high-demand SKU held back from what checkout may sell,
-- so a product drop cannot oversell while stock counts catch up. `warehouse_id` 0 holds the
-- units back from the SKU's total; another value holds them back at that location. The
-- stock rule and the metafields use available minus the buffer.
CREATE TABLE rule_safety_buffers (
    shop          text    NOT NULL,
    target_kind   text    NOT NULL CHECK (target_kind IN ('variant', 'product')),
    target_id     bigint  NOT NULL,
    warehouse_id  bigint  NOT NULL DEFAULT 0 CHECK (warehouse_id >= 0),
    quantity      integer NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (shop, target_kind, target_id, warehouse_id)
);
