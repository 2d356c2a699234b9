-- One single-line reservation, statement for statement what Reservations.create sends for it
-- (src/services/Reservations.ts, StockChanges.record, Outbox.rows): claim + read, lock, update +
-- lines, history + outbox, in one transaction. The variant is picked by bench/run.ts: uniformly among
-- bench-1..bench-10000 (-D lo=1 -D hi=10000) or the hot bench-0 (-D lo=0 -D hi=0).
\set n random(:lo, :hi)
BEGIN;
WITH claim AS (
  INSERT INTO reservations (order_id, status, expires_at, correlation_id, actor, created_at, updated_at)
  VALUES ('pgb-' || gen_random_uuid(), 'ACTIVE', now() + interval '900 seconds', 'bench', NULL, now(), now())
  ON CONFLICT (order_id) DO NOTHING
  RETURNING order_id
)
SELECT (SELECT order_id FROM claim) AS order_id, c.claimed, s.*
  FROM (SELECT count(*)::int AS claimed FROM claim) c
  LEFT JOIN LATERAL (
    SELECT variant_id, sku, on_hand, reserved, low_stock_threshold, status, version, updated_at
      FROM stock_levels WHERE variant_id = ANY(ARRAY['bench-' || :n::int]) AND c.claimed = 1
  ) s ON true \gset
SELECT variant_id, sku, on_hand, reserved, low_stock_threshold, status, version, updated_at FROM stock_levels
 WHERE variant_id = ANY(ARRAY['bench-' || :n::int]) ORDER BY variant_id FOR UPDATE;
WITH updated AS (
  UPDATE stock_levels
     SET on_hand = on_hand + d.on_hand_change, reserved = reserved + d.reserved_change,
         version = version + d.versions, updated_at = now()
    FROM unnest(ARRAY['bench-' || :n::int]::text[], ARRAY[0]::int[], ARRAY[1]::int[], ARRAY[1]::int[]) AS d(id, on_hand_change, reserved_change, versions)
   WHERE stock_levels.variant_id = d.id
  RETURNING stock_levels.variant_id, stock_levels.on_hand, stock_levels.reserved, stock_levels.version
), lines AS (
  INSERT INTO reservation_lines (order_id, variant_id, quantity)
  SELECT * FROM unnest(ARRAY[:order_id::text]::text[], ARRAY['bench-' || :n::int]::text[], ARRAY[1]::int[])
)
SELECT * FROM updated \gset
WITH history AS (
  INSERT INTO inventory_history (variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, correlation_id, actor)
  VALUES ('bench-' || :n::int, 'RESERVE', 0, 1, :on_hand::int, :reserved::int, NULL, NULL, :order_id::text, 'bench', NULL)
  RETURNING id, variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, correlation_id, created_at
), events AS (
  INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id, traceparent)
  VALUES (gen_random_uuid(), 'InventoryReservedEvent', 'inventory.reserved', 'Reservation', :order_id::text,
          jsonb_build_object('eventType', 'InventoryReservedEvent', 'eventVersion', 1, 'occurredAt', now(), 'aggregateType', 'Reservation',
                             'aggregateId', :order_id::text, 'correlationId', 'bench',
                             'data', jsonb_build_object('orderId', :order_id::text, 'lines', jsonb_build_array(jsonb_build_object('variantId', 'bench-' || :n::int, 'quantity', 1)), 'expiresAt', now())),
          'bench', NULL),
         (gen_random_uuid(), 'StockLevelChangedEvent', 'inventory.stock_level_changed', 'StockLevel', 'bench-' || :n::int,
          jsonb_build_object('eventType', 'StockLevelChangedEvent', 'eventVersion', 1, 'occurredAt', now(), 'aggregateType', 'StockLevel',
                             'aggregateId', 'bench-' || :n::int, 'correlationId', 'bench',
                             'data', jsonb_build_object('variantId', 'bench-' || :n::int, 'onHand', :on_hand::int, 'reserved', :reserved::int,
                                                        'available', :on_hand::int - :reserved::int, 'version', :version::int,
                                                        'changeType', 'RESERVE', 'onHandChange', 0, 'reservedChange', 1)),
          'bench', NULL)
)
SELECT * FROM history;
COMMIT;
