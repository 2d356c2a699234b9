-- One clock for every expiry decision: the database's, not each replica's (a replica whose clock
-- runs ahead would otherwise expire reservations early or refuse a commit within its TTL).
-- Millisecond precision, so a time read back into a JavaScript Date compares exactly as stored.
-- STABLE SQL function: the planner inlines it, so `expires_at <= inventory_now()` still uses the index.
CREATE FUNCTION inventory_now() RETURNS timestamptz
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT date_trunc('milliseconds', now()) $$;
