-- The relay's claim no longer looks up each claimed aggregate's rows by index after choosing it.
-- Migration 0085 made those lookups ranges on (aggregate_id, id), which fixed a table without
-- statistics, but statistics taken while the outbox was drained (pending rows: about none) still
-- made the planner read the whole pending backlog through outbox_pending_id and sort it, once per
-- aggregate: 334,283 rows per transaction and 131 s for 20,000 wide events; 1.5 s for one claim of
-- 100 aggregates. Now the first statement keeps, from the head window it has already read, the rows
-- of the aggregates it locked (oldest head first, at most `batch_size`), and the lease statement
-- re-reads exactly those rows by primary key in its fresh snapshot: no plan of it can read more than
-- `batch_size` rows, whatever the statistics say (test/messaging/relay-claims.test.ts).
--
-- Same rows as before: the window holds the oldest pending rows, so each aggregate's rows in it are
-- its oldest, in order (ids are taken under the aggregate's row lock: a later commit of an aggregate
-- never has a lower id). An aggregate whose head the fresh snapshot finds gone (published by another
-- relay before our lock) keeps only its remaining rows of the window, from its new head; one whose
-- head is now leased by another relay or backing off is dropped. What is given up: a run that
-- continues past the window waits for the next claim (the window is 4 batches long).
-- The head walk (1b, when the window holds nothing claimable) still finds its aggregates' rows by
-- range, now in a function of its own planned without sorts (below). Same signature and protocol as
-- 0083 and 0085.

-- The claim's head walk (step 1b): a loose index scan over outbox_pending (aggregate_id, id), one
-- probe per aggregate (`aggregate_id > previous … LIMIT 1`), never reading a stuck aggregate's other
-- rows; at most `head_window` aggregates, the claimable ones locked as in step 1; then up to
-- `batch_size` of their rows, by a range on (aggregate_id, id). Sorting is off for this function:
-- with statistics that put the outbox at about no pending rows, the planner served each probe from
-- outbox_pending_id and sorted the whole backlog (4,000 probes × 18,000 rows: 30 s for one claim);
-- without a sort, only outbox_pending serves these queries in order, one probe each. JIT is off: the
-- cost a disabled sort adds (enable_sort = off makes a sort cost 10^10, and the walk's last steps
-- must sort) put the plan over jit_above_cost, and compiling it took 270 ms of a 310 ms statement.
CREATE FUNCTION outbox_claim_walk(
  relay text, busy text[], head_window integer, max_locks integer, batch_size integer, lock_space integer,
  OUT locked text[], OUT candidates bigint[]
) LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan SET enable_sort = off SET jit = off AS $$
#variable_conflict use_column
BEGIN
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

  candidates := ARRAY(
    SELECT rows.id
      FROM unnest(locked) WITH ORDINALITY AS l (aggregate_id, position)
      JOIN LATERAL (
        SELECT o.id FROM outbox o
         WHERE (o.aggregate_id, o.id) > (l.aggregate_id, 0) AND o.aggregate_id <= l.aggregate_id
           AND o.published_at IS NULL AND o.parked_at IS NULL
         ORDER BY o.aggregate_id, o.id
         LIMIT batch_size) AS rows ON true
     ORDER BY l.position, rows.id
     LIMIT batch_size);
END
$$;

CREATE OR REPLACE FUNCTION outbox_claim(
  relay text, busy text[], head_window integer, max_locks integer, batch_size integer,
  lease_seconds integer, lock_space integer
) RETURNS TABLE (
  id text, event_id uuid, event_type text, routing_key text, aggregate_id text, payload text,
  occurred_at text, correlation_id text, traceparent text, tracestate text, attempts integer,
  created_at timestamptz
) LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan SET jit = off AS $$
#variable_conflict use_column
DECLARE
  scanned integer;
  locked text[];
  window_ids bigint[];
  window_aggregates text[];
  candidates bigint[];
BEGIN
  -- 1. The aggregates to claim, oldest head first, each under an advisory lock (those another relay
  --    is claiming right now are skipped), among the oldest `head_window` pending rows: an
  --    aggregate's oldest pending row is in that prefix whenever any of its rows is. The locked
  --    aggregates' rows of the prefix are the candidates for the lease.
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
                ORDER BY r.id),
         ARRAY(SELECT p.id FROM pending p ORDER BY p.id),
         ARRAY(SELECT p.aggregate_id FROM pending p ORDER BY p.id)
    INTO scanned, locked, window_ids, window_aggregates;

  -- The candidates: the locked aggregates' rows of the prefix, oldest head first, at most
  -- `batch_size`. Arrays and a window function, no join: with statistics that put the outbox at
  -- about no pending rows, the planner would nest-loop a join of 4,000 × 100 rows.
  candidates := ARRAY(
    SELECT w.id FROM unnest(window_ids, window_aggregates) AS w (id, aggregate_id)
     WHERE w.aggregate_id = ANY(locked)
     ORDER BY min(w.id) OVER (PARTITION BY w.aggregate_id), w.id
     LIMIT batch_size);

  -- 1b. Only when that prefix is full and holds no claimable aggregate (all backing off, leased or in
  --     flight): the aggregates' heads walked by index (outbox_claim_walk, below).
  IF cardinality(locked) = 0 AND scanned = head_window THEN
    SELECT w.locked, w.candidates INTO locked, candidates
      FROM outbox_claim_walk(relay, busy, head_window, max_locks, batch_size, lock_space) AS w;
  END IF;

  IF cardinality(candidates) = 0 THEN
    RETURN;
  END IF;

  -- 2. In a fresh snapshot, which sees every claim committed before our locks: re-read the
  --    candidates by primary key, check each aggregate's head among them again and lease its rows,
  --    whole runs of the oldest aggregates first.
  RETURN QUERY
  WITH fetched AS MATERIALIZED (
    -- By primary key only: the pending conditions stay outside, so no partial index (and no plan
    -- that scans one whole) can serve this.
    SELECT o.id, o.aggregate_id, o.next_attempt_at, o.claimed_by, o.claimed_until, o.published_at, o.parked_at
      FROM outbox o
     WHERE o.id = ANY(candidates)
  ), current AS (
    SELECT f.id, f.aggregate_id,
           f.next_attempt_at <= now()
             AND (f.claimed_until IS NULL OR f.claimed_until < now() OR f.claimed_by = relay) AS claimable
      FROM fetched f
     WHERE f.published_at IS NULL AND f.parked_at IS NULL
  ), runs AS (
    SELECT c.id, first_value(c.claimable) OVER (PARTITION BY c.aggregate_id ORDER BY c.id) AS head_claimable
      FROM current c
  ), claimed AS (
    UPDATE outbox o
       SET claimed_by = relay, claimed_until = now() + make_interval(secs => lease_seconds)
     -- ARRAY(…) runs once (an InitPlan): the update then goes by primary key, not a scan of the table.
     WHERE o.id = ANY(ARRAY(SELECT r.id FROM runs r WHERE r.head_claimable))
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
