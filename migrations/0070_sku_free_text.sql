-- API.md Conventions: a sku is free text of 1-512 characters (was 1-128). The schema refuses the
-- rest with 400 before it gets here; this bound only keeps the table honest.
ALTER TABLE stock_levels DROP CONSTRAINT stock_levels_sku_check;
ALTER TABLE stock_levels ADD CONSTRAINT stock_levels_sku_check CHECK (char_length(sku) BETWEEN 1 AND 512);
