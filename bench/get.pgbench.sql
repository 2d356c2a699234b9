-- GET /v1/stock-levels/{id}: the one statement StockLevels.get sends (src/services/StockLevels.ts
-- `levelOf`, the columns of STOCK_LEVEL_COLUMNS in src/services/StockRows.ts: the totals and the
-- location rows in one snapshot). The floor servers (bench/floor-*.ts) send it from that constant.
\set n random(1, 10000)
SELECT s.variant_id, s.sku, s.on_hand, s.reserved, s.available, s.low_stock_threshold, s.status,
       s.version, s.updated_at,
       (SELECT coalesce(json_agg(json_build_object(
                 'locationId', ls.location_id, 'onHand', ls.on_hand, 'reserved', ls.reserved,
                 'safetyStock', ls.safety_stock, 'version', ls.version,
                 'updatedAt', floor(extract(epoch FROM ls.updated_at) * 1000))
                 ORDER BY l.priority, ls.location_id COLLATE "C"), '[]'::json)
          FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
         WHERE ls.variant_id = s.variant_id) AS locations
  FROM stock_levels s WHERE s.variant_id = 'bench-' || :n;
