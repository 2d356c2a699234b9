-- Wakes every replica's relay when a transaction that wrote outbox rows commits: the relay LISTENs on
-- `inventory_outbox` (src/outbox/Relay.ts). PostgreSQL delivers a NOTIFY only at COMMIT (never for a
-- rolled-back transaction) and folds identical notifications of one transaction into one, so a
-- statement-level trigger costs one notification per writing transaction and the writers need no
-- change. Polling (OUTBOX_POLL_INTERVAL_MS) stays as the safety net for a lost listener connection.
--
-- The price is on concurrent writers: PostgreSQL serialises the commits of notifying transactions
-- (docs/messaging.md has the measurement). Should that ever be the limit, `ALTER DATABASE … SET
-- inventory.outbox_notify = off` (with OUTBOX_LISTEN=false) turns the notifications off: the relays
-- then find other replicas' rows by polling, as before this migration.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('inventory.outbox_notify', true), '') <> 'off' THEN
    PERFORM pg_notify('inventory_outbox', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
