-- The relay's claim (migration 0083) looked up each locked aggregate's head and rows with
-- `aggregate_id = x ORDER BY id LIMIT n`. The equality makes the planner treat the order as "by id",
-- which the partial index outbox_pending_id (id) also gives; with statistics that do not yet know how
-- many aggregates the pending rows have (a table that has just grown: a fresh deployment, a burst
-- after a quiet night), it walked that index filtering on aggregate_id, reading the whole pending
-- backlog once per aggregate: 100 aggregates × 20,000 pending rows took 320–470 ms per claim, and a
-- wide backlog (one or two events per aggregate, as uniform reservations leave) drained at a few
-- hundred events/s. The lookups are now range conditions on (aggregate_id, id), which only
-- outbox_pending (aggregate_id, id) can serve in order: 9–13 ms for the same claim, with or without
-- statistics (test/messaging/relay-claims.test.ts). Same signature, same protocol, same rows: a
-- relay of the previous release calls this body as it called the old one. Ids start at 1 (identity).
CREATE OR REPLACE FUNCTION outbox_claim(
  relay text, busy text[], head_window integer, max_locks integer, batch_size integer,
  lease_seconds integer, lock_space integer
) RETURNS TABLE (
  id text, event_id uuid, event_type text, routing_key text, aggregate_id text, payload text,
  occurred_at text, correlation_id text, traceparent text, tracestate text, attempts integer,
  created_at timestamptz
) LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
DECLARE
  scanned integer;
  locked text[];
BEGIN
  -- 1. The aggregates to claim, oldest head first, each under an advisory lock (those another relay
  --    is claiming right now are skipped), among the oldest `head_window` pending rows: an
  --    aggregate's oldest pending row is in that prefix whenever any of its rows is.
  WITH pending AS MATERIALIZED (
    SELECT o.id, o.aggregate_id, o.next_attempt_at, o.claimed_by, o.claimed_until FROM outbox o
     WHERE o.published_at IS NULL AND o.parked_at IS NULL
     ORDER BY o.id
     LIMIT head_window
  ), heads AS (
    SELECT DISTINCT ON (p.aggregate_id) * FROM pending p ORDER BY p.aggregate_id, p.id
  ), ready AS MATERIALIZED (
    SELECT h.id, h.aggregate_id FROM heads h
     WHERE h.next_attempt_at <= now()
       AND (h.claimed_until IS NULL OR h.claimed_until < now() OR h.claimed_by = relay)
       AND h.aggregate_id <> ALL(busy)
     ORDER BY h.id
     LIMIT max_locks
  )
  SELECT (SELECT count(*) FROM pending)::integer,
         ARRAY(SELECT r.aggregate_id FROM ready r
                WHERE pg_try_advisory_xact_lock(lock_space, hashtext(r.aggregate_id))
                ORDER BY r.id)
    INTO scanned, locked;

  -- 1b. Only when that prefix is full and holds no claimable aggregate (all backing off, leased or in
  --     flight): a loose index scan over outbox_pending (aggregate_id, id), one probe per aggregate,
  --     never reading a stuck aggregate's other rows; at most `head_window` aggregates.
  IF cardinality(locked) = 0 AND scanned = head_window THEN
    WITH RECURSIVE walk AS (
      (SELECT o.id, o.aggregate_id, o.next_attempt_at, o.claimed_by, o.claimed_until, 1 AS n FROM outbox o
        WHERE o.published_at IS NULL AND o.parked_at IS NULL
        ORDER BY o.aggregate_id, o.id
        LIMIT 1)
      UNION ALL
      SELECT nxt.id, nxt.aggregate_id, nxt.next_attempt_at, nxt.claimed_by, nxt.claimed_until, w.n + 1
        FROM walk w
        CROSS JOIN LATERAL (
          SELECT o.id, o.aggregate_id, o.next_attempt_at, o.claimed_by, o.claimed_until FROM outbox o
           WHERE o.published_at IS NULL AND o.parked_at IS NULL AND o.aggregate_id > w.aggregate_id
           ORDER BY o.aggregate_id, o.id
           LIMIT 1) AS nxt
       WHERE w.n < head_window
    ), ready AS MATERIALIZED (
      SELECT w.id, w.aggregate_id FROM walk w
       WHERE w.next_attempt_at <= now()
         AND (w.claimed_until IS NULL OR w.claimed_until < now() OR w.claimed_by = relay)
         AND w.aggregate_id <> ALL(busy)
       ORDER BY w.id
       LIMIT max_locks
    )
    SELECT ARRAY(SELECT r.aggregate_id FROM ready r
                  WHERE pg_try_advisory_xact_lock(lock_space, hashtext(r.aggregate_id))
                  ORDER BY r.id)
      INTO locked;
  END IF;

  IF cardinality(locked) = 0 THEN
    RETURN;
  END IF;

  -- 2. In a fresh snapshot, which sees every claim committed before our locks: check those heads
  --    again and lease up to `batch_size` rows, whole runs of the oldest aggregates first.
  --    Each aggregate's rows are found by a range on (aggregate_id, id), never `aggregate_id = …`
  --    (see the top of this file).
  RETURN QUERY
  WITH ready AS (
    SELECT l.aggregate_id, l.position
      FROM unnest(locked) WITH ORDINALITY AS l (aggregate_id, position)
      JOIN LATERAL (
        SELECT o.aggregate_id, o.next_attempt_at, o.claimed_by, o.claimed_until FROM outbox o
         WHERE (o.aggregate_id, o.id) > (l.aggregate_id, 0) AND o.published_at IS NULL AND o.parked_at IS NULL
         ORDER BY o.aggregate_id, o.id
         LIMIT 1) AS head ON head.aggregate_id = l.aggregate_id
     WHERE head.next_attempt_at <= now()
       AND (head.claimed_until IS NULL OR head.claimed_until < now() OR head.claimed_by = relay)
  ), taken AS (
    SELECT rows.id
      FROM ready
      JOIN LATERAL (
        SELECT o.id FROM outbox o
         WHERE (o.aggregate_id, o.id) > (ready.aggregate_id, 0) AND o.aggregate_id <= ready.aggregate_id
           AND o.published_at IS NULL AND o.parked_at IS NULL
         ORDER BY o.aggregate_id, o.id
         LIMIT batch_size) AS rows ON true
     ORDER BY ready.position, rows.id
     LIMIT batch_size
  ), claimed AS (
    UPDATE outbox o
       SET claimed_by = relay, claimed_until = now() + make_interval(secs => lease_seconds)
     -- ARRAY(…) runs once (an InitPlan): the update then goes by primary key, not a scan of the table.
     WHERE o.id = ANY(ARRAY(SELECT t.id FROM taken t))
    RETURNING o.id AS claimed_id, o.event_id, o.event_type, o.routing_key, o.aggregate_id,
              o.payload, o.correlation_id, o.traceparent, o.tracestate, o.attempts, o.created_at
  )
  -- Id (= commit) order per aggregate, as published; the payload as text: the message body as
  -- stored; id as text: the driver returns bigint columns as JS bigint.
  SELECT c.claimed_id::text, c.event_id, c.event_type, c.routing_key, c.aggregate_id, c.payload::text,
         c.payload->>'occurredAt', c.correlation_id, c.traceparent, c.tracestate, c.attempts, c.created_at
    FROM claimed c
   ORDER BY c.claimed_id;
END
$$;
