-- The relay's claim walks the pending rows in id (commit) order and stops after one batch of
-- aggregate heads: this index makes that walk skip every published row (kept for retention).
CREATE INDEX outbox_pending_id ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
