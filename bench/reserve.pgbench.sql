-- One single-line reservation held at `default`, statement for statement what Reservations.create
-- sends for it when it succeeds (src/services/Reservations.ts createInTransaction, applyToStock,
-- StockChanges.record; migration 0080: the location row is written, the triggers roll the variant's
-- totals up): claim + read, lock the variant then its location rows, move the location row, read the
-- totals, store line + allocation, history + outbox in one statement. One transaction. The variant
-- is picked by bench/run.ts: uniformly among bench-1..bench-10000 (-D lo=1 -D hi=10000) or the hot
-- bench-0 (-D lo=0 -D hi=0).
\set n random(:lo, :hi)
BEGIN;
WITH claim AS (
  INSERT INTO reservations (order_id, status, expires_at, correlation_id, actor, created_at, updated_at)
  VALUES ('pgb-' || gen_random_uuid(), 'ACTIVE', now() + interval '900 seconds', 'bench', NULL, now(), now())
  ON CONFLICT (order_id) DO NOTHING
  RETURNING order_id, created_at, expires_at
)
SELECT (SELECT order_id FROM claim) AS order_id, c.claimed, s.variant_id AS stocked_id, ls.variant_id, ls.location_id, ls.on_hand,
       ls.reserved, ls.safety_stock, ls.version, ls.updated_at, l.active, l.priority
  FROM (SELECT count(*)::int AS claimed FROM claim) c
  LEFT JOIN LATERAL (SELECT variant_id FROM stock_levels WHERE variant_id = ANY(ARRAY['bench-' || :n::int]) AND c.claimed = 1) s ON true
  LEFT JOIN location_stock ls ON ls.variant_id = s.variant_id
  LEFT JOIN locations l ON l.location_id = ls.location_id \gset
SELECT variant_id, sku, on_hand, reserved, available, low_stock_threshold, status, version, updated_at FROM stock_levels
 WHERE variant_id = ANY(ARRAY['bench-' || :n::int]) ORDER BY variant_id FOR UPDATE;
SELECT ls.variant_id, ls.location_id, ls.on_hand, ls.reserved, ls.safety_stock, ls.version, ls.updated_at, l.active, l.priority
  FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
 WHERE ls.variant_id = ANY(ARRAY['bench-' || :n::int]) ORDER BY ls.variant_id, ls.location_id FOR UPDATE OF ls;
UPDATE location_stock ls
   SET on_hand = ls.on_hand + m.on_hand_change, reserved = ls.reserved + m.reserved_change
  FROM unnest(ARRAY['bench-' || :n::int]::text[], ARRAY['default']::text[], ARRAY[0]::int[], ARRAY[1]::int[])
       AS m(variant_id, location_id, on_hand_change, reserved_change)
 WHERE ls.variant_id = m.variant_id AND ls.location_id = m.location_id
RETURNING ls.variant_id, ls.location_id, ls.on_hand AS after_on_hand, ls.reserved AS after_reserved, ls.version AS after_version \gset
SELECT variant_id, sku, on_hand AS total_on_hand, reserved AS total_reserved, available AS total_available, low_stock_threshold, status,
       version AS total_version, updated_at
  FROM stock_levels WHERE variant_id = ANY(ARRAY['bench-' || :n::int]) \gset
WITH lines AS (
  INSERT INTO reservation_lines (order_id, variant_id, quantity)
  SELECT * FROM unnest(ARRAY[:order_id::text]::text[], ARRAY['bench-' || :n::int]::text[], ARRAY[1]::int[])
)
INSERT INTO reservation_allocations (order_id, variant_id, location_id, quantity)
SELECT * FROM unnest(ARRAY[:order_id::text]::text[], ARRAY['bench-' || :n::int]::text[], ARRAY['default']::text[], ARRAY[1]::int[]);
WITH history AS (
  INSERT INTO inventory_history (variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after,
                                 reason, reference, order_id, correlation_id, actor)
  SELECT h.variant_id, h.location_id, h.type, h.on_hand_change, h.reserved_change, h.on_hand_after, h.reserved_after,
         h.reason, h.reference, h.order_id, h.correlation_id, NULL::text
    FROM unnest(ARRAY['bench-' || :n::int]::text[], ARRAY['default']::text[], ARRAY['RESERVE']::text[], ARRAY[0]::int[], ARRAY[1]::int[],
                ARRAY[:after_on_hand::int]::int[], ARRAY[:after_reserved::int]::int[], ARRAY[NULL]::text[], ARRAY[NULL]::text[],
                ARRAY[:order_id::text]::text[], ARRAY['bench']::text[])
         WITH ORDINALITY AS h(variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after,
                              reason, reference, order_id, correlation_id, n)
   ORDER BY h.n
  RETURNING id, variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference,
            order_id, correlation_id, created_at
), events AS (
  INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id, traceparent)
  SELECT e.event_id, e.event_type, e.routing_key, e.aggregate_type, e.aggregate_id, e.payload, e.correlation_id, e.traceparent
    FROM unnest(ARRAY[gen_random_uuid(), gen_random_uuid()]::uuid[],
                ARRAY['InventoryReservedEvent', 'StockLevelChangedEvent']::text[],
                ARRAY['inventory.reserved', 'inventory.stock_level_changed']::text[],
                ARRAY['Reservation', 'StockLevel']::text[],
                ARRAY[:order_id::text, 'bench-' || :n::int]::text[],
                ARRAY[jsonb_build_object('eventType', 'InventoryReservedEvent', 'eventVersion', 1, 'occurredAt', now(), 'aggregateType', 'Reservation',
                                         'aggregateId', :order_id::text, 'correlationId', 'bench',
                                         'data', jsonb_build_object('orderId', :order_id::text, 'expiresAt', now(),
                                                                    'lines', jsonb_build_array(jsonb_build_object('variantId', 'bench-' || :n::int, 'quantity', 1,
                                                                      'allocations', jsonb_build_array(jsonb_build_object('locationId', 'default', 'quantity', 1)))))),
                      jsonb_build_object('eventType', 'StockLevelChangedEvent', 'eventVersion', 1, 'occurredAt', now(), 'aggregateType', 'StockLevel',
                                         'aggregateId', 'bench-' || :n::int, 'correlationId', 'bench',
                                         'data', jsonb_build_object('variantId', 'bench-' || :n::int, 'onHand', :total_on_hand::int,
                                                                    'reserved', :total_reserved::int, 'available', :total_available::int,
                                                                    'version', :total_version::int, 'changeType', 'RESERVE', 'onHandChange', 0,
                                                                    'reservedChange', 1, 'locationId', 'default',
                                                                    'location', jsonb_build_object('onHand', :after_on_hand::int, 'reserved', :after_reserved::int,
                                                                                                   'safetyStock', 0, 'available', :after_on_hand::int - :after_reserved::int,
                                                                                                   'version', :after_version::int)))]::jsonb[],
                ARRAY['bench', 'bench']::text[], ARRAY[NULL, NULL]::text[])
         WITH ORDINALITY AS e(event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id, traceparent, n)
   ORDER BY e.n
)
SELECT * FROM history ORDER BY id;
COMMIT;
