-- outbox_pending_due (next_attempt_at, id), from migration 0001, served the first relay's claim
-- (the oldest due rows first). Since the claim takes each aggregate's oldest row in id order
-- (migrations 0065, 0083-0086) no statement reads it; it cost an index entry for every event
-- written and kept the retry update (a new next_attempt_at) from being a HOT update, and a plan
-- made with stale statistics once read it whole (docs/messaging.md). DROP INDEX holds an ACCESS
-- EXCLUSIVE lock on outbox for an instant; the lock_timeout makes this migration fail (and the
-- next run retry it) rather than queue every writer behind a long transaction.
SET LOCAL lock_timeout = '5s';
DROP INDEX IF EXISTS outbox_pending_due;
