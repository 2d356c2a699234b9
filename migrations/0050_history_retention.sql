-- History retention (src/services/Retention.ts). Old history entries move from inventory_history to
-- inventory_history_archive; in the same transaction their changes are added to the variant's
-- baseline, so for every variant, at any committed point in time:
--   stock_levels.on_hand  = baseline.on_hand  + sum(inventory_history.on_hand_change)
--   stock_levels.reserved = baseline.reserved + sum(inventory_history.reserved_change)
-- (a variant without a baseline row has a baseline of 0). Reconciliation checks exactly this.

CREATE TABLE inventory_history_baseline (
  variant_id          text        PRIMARY KEY REFERENCES stock_levels (variant_id),
  -- bigint: a sum of many integer changes.
  on_hand             bigint      NOT NULL,
  reserved            bigint      NOT NULL,
  -- Every entry of this variant with id <= this one is archived (the sweep archives in id order).
  archived_through_id bigint      NOT NULL,
  archived_entries    bigint      NOT NULL,
  updated_at          timestamptz NOT NULL DEFAULT now()
);

-- The same columns as inventory_history (plain bigint id: the ids keep their original values), plus
-- when the entry was archived. Nothing reads it at run time: it is the audit trail, and it may be
-- exported and truncated by operators without affecting reconciliation (the baseline holds the sums).
CREATE TABLE inventory_history_archive (
  id               bigint      PRIMARY KEY,
  variant_id       text        NOT NULL,
  type             text        NOT NULL,
  on_hand_change   integer     NOT NULL,
  reserved_change  integer     NOT NULL,
  on_hand_after    integer     NOT NULL,
  reserved_after   integer     NOT NULL,
  reason           text        NULL,
  reference        text        NULL,
  order_id         text        NULL,
  correlation_id   text        NULL,
  actor            text        NULL,
  created_at       timestamptz NOT NULL,
  archived_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_history_archive_variant_id ON inventory_history_archive (variant_id, id DESC);
