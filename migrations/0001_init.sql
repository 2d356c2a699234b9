-- The whole v1 contract: stock levels, their history, reservations, the transactional outbox,
-- the consumer inbox and idempotency keys. Applied in one transaction by the migrator.

CREATE TABLE stock_levels (
  variant_id          text        PRIMARY KEY CHECK (variant_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  sku                 text        NULL CHECK (char_length(sku) BETWEEN 1 AND 128),
  on_hand             integer     NOT NULL DEFAULT 0,
  reserved            integer     NOT NULL DEFAULT 0,
  low_stock_threshold integer     NOT NULL DEFAULT 0 CHECK (low_stock_threshold >= 0),
  -- Same rule as domain/StockLevel.ts deriveStatus; generated so that listing by status is indexed.
  status              text        NOT NULL GENERATED ALWAYS AS (
                        CASE WHEN on_hand - reserved <= 0 THEN 'OUT_OF_STOCK'
                             WHEN on_hand - reserved <= low_stock_threshold THEN 'LOW_STOCK'
                             ELSE 'IN_STOCK' END) STORED,
  version             integer     NOT NULL DEFAULT 1,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT stock_levels_reserved_within_on_hand CHECK (reserved >= 0 AND reserved <= on_hand),
  CONSTRAINT stock_levels_on_hand_limit CHECK (on_hand <= 1000000000)
);
-- GET /v1/stock-levels?status=…: keyset pagination by variant id within a status.
CREATE INDEX stock_levels_status_variant ON stock_levels (status, variant_id);

CREATE TABLE inventory_history (
  id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  variant_id       text        NOT NULL REFERENCES stock_levels (variant_id),
  type             text        NOT NULL CHECK (type IN ('PURCHASE','SALE','RETURN','ADJUSTMENT','RECOUNT',
                                                       'RESERVE','RELEASE','COMMIT','EXPIRE')),
  on_hand_change   integer     NOT NULL,
  reserved_change  integer     NOT NULL,
  on_hand_after    integer     NOT NULL,
  reserved_after   integer     NOT NULL,
  reason           text        NULL,
  reference        text        NULL,
  order_id         text        NULL,
  correlation_id   text        NULL,
  actor            text        NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (on_hand_change <> 0 OR reserved_change <> 0 OR type = 'RECOUNT')
);
-- GET /v1/stock-levels/{id}/history: newest first, keyset on id.
CREATE INDEX inventory_history_variant_id ON inventory_history (variant_id, id DESC);
-- Retention sweeps by age.
CREATE INDEX inventory_history_created_at ON inventory_history (created_at);

CREATE TABLE reservations (
  order_id        text        PRIMARY KEY CHECK (order_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  status          text        NOT NULL CHECK (status IN ('ACTIVE','COMMITTED','RELEASED','EXPIRED')),
  expires_at      timestamptz NOT NULL,
  correlation_id  text        NULL,
  actor           text        NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The expiry sweeper: ACTIVE reservations by due time.
CREATE INDEX reservations_active_expires_at ON reservations (expires_at) WHERE status = 'ACTIVE';

CREATE TABLE reservation_lines (
  order_id    text    NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
  variant_id  text    NOT NULL REFERENCES stock_levels (variant_id),
  quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000000),
  PRIMARY KEY (order_id, variant_id)
);
-- Reconciliation and "expire the due reservations of these variants" go by variant.
CREATE INDEX reservation_lines_variant ON reservation_lines (variant_id, order_id);

CREATE TABLE outbox (
  id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id        uuid        NOT NULL UNIQUE,
  event_type      text        NOT NULL,
  routing_key     text        NOT NULL,
  aggregate_type  text        NOT NULL,
  aggregate_id    text        NOT NULL,
  payload         jsonb       NOT NULL,
  correlation_id  text        NULL,
  traceparent     text        NULL,
  tracestate      text        NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text        NULL,
  published_at    timestamptz NULL,
  parked_at       timestamptz NULL
);
-- The relay: the oldest pending row of each aggregate, in commit order (ids of one aggregate are
-- taken under that aggregate's row lock, so id order is commit order within an aggregate).
CREATE INDEX outbox_pending ON outbox (aggregate_id, id) WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at, id) WHERE published_at IS NULL AND parked_at IS NULL;
-- Retention of published rows.
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TABLE inbox (
  message_id   text        PRIMARY KEY,
  consumer     text        NOT NULL,
  event_type   text        NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);

CREATE TABLE idempotency_keys (
  scope           text        NOT NULL,
  key             text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  request_hash    text        NOT NULL,
  response_status integer     NOT NULL,
  response_body   jsonb       NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
