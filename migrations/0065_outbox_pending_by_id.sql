-- The relay's claim looks for aggregate heads among the oldest pending rows (id = commit order):
-- this index gives that prefix without visiting the published rows kept for retention.
CREATE INDEX outbox_pending_id ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
