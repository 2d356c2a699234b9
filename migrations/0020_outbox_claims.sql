-- Relay leases: a relay claims the head rows of an aggregate for a short while, publishes them and
-- marks them; another replica takes over only once the lease has expired (the relay died).
ALTER TABLE outbox
  ADD COLUMN claimed_by    text        NULL,
  ADD COLUMN claimed_until timestamptz NULL;
