-- An outbox row's created_at is when the row was written (clock_timestamp()), no longer its
-- transaction's start (now()). The relay's publish latency (inventory_outbox_publish_latency_seconds,
-- confirm − created_at), the oldest-pending age and bench:relay's commit → confirm (published_at −
-- created_at) then count from the write, not from the whole writing transaction: for a reservation
-- batch the write is its last statement before COMMIT, so what the figures no longer include is the
-- batch's lock statement and its wait for row locks. Still an upper bound of commit → confirm.
ALTER TABLE outbox ALTER COLUMN created_at SET DEFAULT clock_timestamp();
