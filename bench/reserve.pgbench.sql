-- One single-line reservation, statement for statement what Reservations.create sends for it when
-- it can succeed (src/services/Reservations.ts applyIfUnchanged, StockChanges.recordIf, Outbox.rows):
-- claim + read, then lock + check + update + lines + history + outbox in one statement; when the row
-- changed between the read and the lock (the hot variant), the same statement again on the values
-- it locked. One transaction. The variant is picked by bench/run.ts: uniformly among
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
WITH locked AS (
  SELECT variant_id, sku, on_hand, reserved, low_stock_threshold, status, version, updated_at FROM stock_levels
   WHERE variant_id = ANY(ARRAY['bench-' || :n::int]) ORDER BY variant_id FOR UPDATE
), unchanged AS (
  SELECT count(*) = 1 AS ok
    FROM locked l
    JOIN unnest(ARRAY['bench-' || :n::int]::text[], ARRAY[:on_hand::int]::int[], ARRAY[:reserved::int]::int[], ARRAY[:version::int]::int[],
                ARRAY[:low_stock_threshold::int]::int[]) AS e(variant_id, on_hand, reserved, version, low_stock_threshold)
      ON (l.variant_id, l.on_hand, l.reserved, l.version, l.low_stock_threshold)
       = (e.variant_id, e.on_hand, e.reserved, e.version, e.low_stock_threshold)
), updated AS (
  UPDATE stock_levels
     SET on_hand = on_hand + d.on_hand_change, reserved = reserved + d.reserved_change,
         version = version + d.versions, updated_at = now()
    FROM unnest(ARRAY['bench-' || :n::int]::text[], ARRAY[0]::int[], ARRAY[1]::int[], ARRAY[1]::int[]) AS d(id, on_hand_change, reserved_change, versions)
   WHERE stock_levels.variant_id = d.id AND (SELECT ok FROM unchanged)
  RETURNING stock_levels.variant_id, stock_levels.on_hand, stock_levels.reserved, stock_levels.version
), lines AS (
  INSERT INTO reservation_lines (order_id, variant_id, quantity)
  SELECT * FROM unnest(ARRAY[:order_id::text]::text[], ARRAY['bench-' || :n::int]::text[], ARRAY[1]::int[])
   WHERE (SELECT ok FROM unchanged)
), history AS (
  INSERT INTO inventory_history (variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, correlation_id, actor)
  SELECT h.variant_id, h.type, h.on_hand_change, h.reserved_change, h.on_hand_after, h.reserved_after, h.reason, h.reference, h.order_id, 'bench', NULL
    FROM unnest(ARRAY['bench-' || :n::int]::text[], ARRAY['RESERVE']::text[], ARRAY[0]::int[], ARRAY[1]::int[], ARRAY[:on_hand::int]::int[],
                ARRAY[:reserved::int + 1]::int[], ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[:order_id::text]::text[])
         WITH ORDINALITY AS h(variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, n)
   WHERE (SELECT ok FROM unchanged)
   ORDER BY h.n
  RETURNING id, variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, correlation_id, created_at
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
                                         'data', jsonb_build_object('orderId', :order_id::text, 'lines', jsonb_build_array(jsonb_build_object('variantId', 'bench-' || :n::int, 'quantity', 1)), 'expiresAt', now())),
                      jsonb_build_object('eventType', 'StockLevelChangedEvent', 'eventVersion', 1, 'occurredAt', now(), 'aggregateType', 'StockLevel',
                                         'aggregateId', 'bench-' || :n::int, 'correlationId', 'bench',
                                         'data', jsonb_build_object('variantId', 'bench-' || :n::int, 'onHand', :on_hand::int, 'reserved', :reserved::int + 1,
                                                                    'available', :on_hand::int - :reserved::int - 1, 'version', :version::int + 1,
                                                                    'changeType', 'RESERVE', 'onHandChange', 0, 'reservedChange', 1))]::jsonb[],
                ARRAY['bench', 'bench']::text[], ARRAY[NULL, NULL]::text[])
         WITH ORDINALITY AS e(event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id, traceparent, n)
   WHERE (SELECT ok FROM unchanged)
   ORDER BY e.n
)
SELECT u.ok, l.*, up.on_hand AS after_on_hand, up.reserved AS after_reserved, up.version AS after_version
  FROM unchanged u LEFT JOIN locked l ON true LEFT JOIN updated up ON up.variant_id = l.variant_id \gset
\if :ok
\else
WITH locked AS (
  SELECT variant_id, sku, on_hand, reserved, low_stock_threshold, status, version, updated_at FROM stock_levels
   WHERE variant_id = ANY(ARRAY['bench-' || :n::int]) ORDER BY variant_id FOR UPDATE
), unchanged AS (
  SELECT count(*) = 1 AS ok
    FROM locked l
    JOIN unnest(ARRAY['bench-' || :n::int]::text[], ARRAY[:on_hand::int]::int[], ARRAY[:reserved::int]::int[], ARRAY[:version::int]::int[],
                ARRAY[:low_stock_threshold::int]::int[]) AS e(variant_id, on_hand, reserved, version, low_stock_threshold)
      ON (l.variant_id, l.on_hand, l.reserved, l.version, l.low_stock_threshold)
       = (e.variant_id, e.on_hand, e.reserved, e.version, e.low_stock_threshold)
), updated AS (
  UPDATE stock_levels
     SET on_hand = on_hand + d.on_hand_change, reserved = reserved + d.reserved_change,
         version = version + d.versions, updated_at = now()
    FROM unnest(ARRAY['bench-' || :n::int]::text[], ARRAY[0]::int[], ARRAY[1]::int[], ARRAY[1]::int[]) AS d(id, on_hand_change, reserved_change, versions)
   WHERE stock_levels.variant_id = d.id AND (SELECT ok FROM unchanged)
  RETURNING stock_levels.variant_id, stock_levels.on_hand, stock_levels.reserved, stock_levels.version
), lines AS (
  INSERT INTO reservation_lines (order_id, variant_id, quantity)
  SELECT * FROM unnest(ARRAY[:order_id::text]::text[], ARRAY['bench-' || :n::int]::text[], ARRAY[1]::int[])
   WHERE (SELECT ok FROM unchanged)
), history AS (
  INSERT INTO inventory_history (variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, correlation_id, actor)
  SELECT h.variant_id, h.type, h.on_hand_change, h.reserved_change, h.on_hand_after, h.reserved_after, h.reason, h.reference, h.order_id, 'bench', NULL
    FROM unnest(ARRAY['bench-' || :n::int]::text[], ARRAY['RESERVE']::text[], ARRAY[0]::int[], ARRAY[1]::int[], ARRAY[:on_hand::int]::int[],
                ARRAY[:reserved::int + 1]::int[], ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[:order_id::text]::text[])
         WITH ORDINALITY AS h(variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, n)
   WHERE (SELECT ok FROM unchanged)
   ORDER BY h.n
  RETURNING id, variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, correlation_id, created_at
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
                                         'data', jsonb_build_object('orderId', :order_id::text, 'lines', jsonb_build_array(jsonb_build_object('variantId', 'bench-' || :n::int, 'quantity', 1)), 'expiresAt', now())),
                      jsonb_build_object('eventType', 'StockLevelChangedEvent', 'eventVersion', 1, 'occurredAt', now(), 'aggregateType', 'StockLevel',
                                         'aggregateId', 'bench-' || :n::int, 'correlationId', 'bench',
                                         'data', jsonb_build_object('variantId', 'bench-' || :n::int, 'onHand', :on_hand::int, 'reserved', :reserved::int + 1,
                                                                    'available', :on_hand::int - :reserved::int - 1, 'version', :version::int + 1,
                                                                    'changeType', 'RESERVE', 'onHandChange', 0, 'reservedChange', 1))]::jsonb[],
                ARRAY['bench', 'bench']::text[], ARRAY[NULL, NULL]::text[])
         WITH ORDINALITY AS e(event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id, traceparent, n)
   WHERE (SELECT ok FROM unchanged)
   ORDER BY e.n
)
SELECT u.ok, l.*, up.on_hand AS after_on_hand, up.reserved AS after_reserved, up.version AS after_version
  FROM unchanged u LEFT JOIN locked l ON true LEFT JOIN updated up ON up.variant_id = l.variant_id;
\endif
COMMIT;
