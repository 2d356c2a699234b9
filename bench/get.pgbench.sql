-- GET /v1/stock-levels/{id}: the one statement StockLevels.get sends.
\set n random(1, 10000)
SELECT variant_id, sku, on_hand, reserved, low_stock_threshold, status, version, updated_at FROM stock_levels WHERE variant_id = 'bench-' || :n;
