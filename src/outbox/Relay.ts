import { Clock, Duration, Effect, FiberSet, Layer, Metric, PubSub, Queue, Ref, Schedule, Semaphore } from "effect"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { type LoopControl, loopFailures, runBackgroundLoop } from "../layers/BackgroundLoop.js"
import { AppConfig } from "../layers/Config.js"
import { Lifecycle, type LoopState } from "../layers/Lifecycle.js"
import { Messaging, type OutgoingMessage, type PublishFailed, Topology } from "../layers/Messaging.js"
import { eventsPublished, initOutboxMetrics, outboxOldestPendingAge, outboxParked, outboxPendingRows, publishFailures, publishLatency } from "./Metrics.js"
import { Outbox } from "./Outbox.js"
import { settle } from "./Settlement.js"

/** An outbox row as the relay claims it. */
export interface OutboxRow {
  readonly id: string
  readonly eventId: string
  readonly eventType: string
  readonly routingKey: string
  readonly aggregateId: string
  readonly payload: { readonly occurredAt?: string } & Record<string, unknown>
  readonly correlationId: string | null
  readonly traceparent: string | null
  readonly tracestate: string | null
  readonly attempts: number
  readonly createdAt: Date
}

/** The message of EVENTS.md for a row: the stored envelope as body, its ids and trace as properties. */
export const toMessage = (row: OutboxRow): OutgoingMessage => {
  const headers: Record<string, string> = {}
  if (row.traceparent !== null) headers["traceparent"] = row.traceparent
  if (row.tracestate !== null) headers["tracestate"] = row.tracestate
  if (row.correlationId !== null) headers["x-correlation-id"] = row.correlationId
  const occurredAt = Date.parse(row.payload.occurredAt ?? "")
  return {
    exchange: Topology.eventsExchange,
    routingKey: row.routingKey,
    body: JSON.stringify(row.payload),
    messageId: row.eventId,
    type: row.eventType,
    timestamp: Math.floor((Number.isNaN(occurredAt) ? row.createdAt.getTime() : occurredAt) / 1000),
    headers
  }
}

/**
 * Refused publishes are tried again after 1 s, 2 s, 4 s … (jittered), at most 5 minutes apart
 * (`Schedule.min` is Effect 3's `union`: recur while either does, with the shorter delay).
 */
export const retrySchedule = Schedule.min([
  Schedule.exponential(Duration.seconds(1), 2).pipe(Schedule.jittered),
  Schedule.spaced(Duration.minutes(5))
])

/** The schedule's delay after the `attempts`-th failure (its `attempts`-th step; 1 s if it ended before). */
export const retryDelay = (attempts: number): Effect.Effect<Duration.Duration> =>
  Effect.gen(function* () {
    const step = yield* Schedule.toStep(retrySchedule)
    let delay = Duration.seconds(1)
    for (let i = 0; i < Math.max(1, attempts); i++) {
      const next = yield* Effect.exit(step(0, undefined))
      // The schedule never ends; a `Done` (or anything else) keeps the last delay, as Chunk.last did.
      if (next._tag === "Failure") break
      delay = next.value[1]
    }
    return delay
  })

/** How long a claim keeps other replicas' relays off an aggregate; far longer than a batch takes. */
const LEASE_SECONDS = 60
/** First key of the relay's per-aggregate advisory locks (the second is hashtext(aggregate_id)). */
const LOCK_SPACE = 73_182
const GAUGE_INTERVAL = Duration.seconds(5)
/** Batches published but not yet settled, per relay; more add little once the broker round trip is covered. */
const MAX_BATCHES_IN_FLIGHT = 4
/** A claim looks for aggregate heads among the oldest this many batches of pending rows. */
const HEAD_WINDOW_BATCHES = 4
/**
 * Most aggregates (= advisory locks) one claim takes. PostgreSQL's shared lock table holds about
 * max_locks_per_transaction × max_connections (6,400 by default); OUTBOX_BATCH_SIZE locks per relay
 * exhausted it with ten relays ("out of shared memory", 53200). A batch still carries up to
 * OUTBOX_BATCH_SIZE rows: whole runs of these aggregates.
 */
export const MAX_AGGREGATES_PER_CLAIM = 100
/** Loop names (the `loop` label of inventory_background_loop_failures_total). */
const RELAY_LOOP = "outbox-relay"
const GAUGE_LOOP = "outbox-gauges"

/** What the gauge loop last read of the outbox. */
interface DrainReading {
  readonly at: number
  readonly pending: number
  readonly oldestSeconds: number
  /** Since the newest publish by any replica; null when nothing was ever published. */
  readonly sincePublishSeconds: number | null
}

/** Pending rows older than this, with no publish for as long, mean the outbox is not draining. */
export const OUTBOX_STALL_SECONDS = 60

/**
 * The readiness body's `outbox` entry: down when the relay's loop is dead, when its reading is stale
 * (the database is away), or when rows wait longer than OUTBOX_STALL_SECONDS while nothing is
 * published by any replica (broker away, or a relay wedged: see docs/resilience.md).
 */
export const outboxHealth = (
  reading: DrainReading | undefined,
  now: number,
  relay: LoopState | undefined
): { readonly status: "up" | "down"; readonly detail?: string } => {
  if (relay?.status === "dead") return { status: "down", detail: `relay loop ended: ${relay.lastError ?? "unknown"}` }
  if (reading === undefined) return { status: "up", detail: "no reading yet" }
  if (now - reading.at > 3 * Duration.toMillis(GAUGE_INTERVAL) + 5_000) {
    return { status: "down", detail: `no outbox reading for ${Math.round((now - reading.at) / 1000)} s (database unreachable?)` }
  }
  const idle = reading.sincePublishSeconds === null || reading.sincePublishSeconds > OUTBOX_STALL_SECONDS
  if (reading.pending > 0 && reading.oldestSeconds > OUTBOX_STALL_SECONDS && idle) {
    return {
      status: "down",
      detail: `not draining: ${reading.pending} rows pending, oldest ${Math.round(reading.oldestSeconds)} s, none published for ${
        reading.sincePublishSeconds === null ? "ever" : `${Math.round(reading.sincePublishSeconds)} s`
      }`
    }
  }
  return { status: "up", detail: `${reading.pending} rows pending` }
}

/**
 * The outbox relay: publishes committed rows, per aggregate in commit (id) order, and marks each
 * published only after the broker's confirm. Several replicas coordinate through the database; see
 * docs/messaging.md. Every batch runs claim → publish → confirm → mark in short transactions (no
 * transaction is held while waiting for the broker) and uninterruptibly, so shutdown waits for it.
 * Published rows are deleted by the retention sweep (services/Retention.ts, OUTBOX_RETENTION_HOURS).
 */
export const RelayLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    const messaging = yield* Messaging
    const config = yield* AppConfig
    const lifecycle = yield* Lifecycle
    const me = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
    const batchSize = config.outboxBatchSize
    const commits = yield* outbox.subscribe
    yield* initOutboxMetrics

    /**
     * The aggregates to claim, oldest head first, each under a transaction-scoped advisory lock
     * (SKIP LOCKED style: those another relay is claiming right now are skipped). It looks at the
     * oldest `window` pending rows only: an aggregate's oldest pending row is in that prefix whenever
     * any of its rows is, so the heads found there are exact, and a claim costs O(window), not
     * O(pending rows). `scanned` tells whether the prefix was full. At most `maxLocks` locks.
     */
    const maxLocks = Math.min(batchSize, MAX_AGGREGATES_PER_CLAIM)
    const window = HEAD_WINDOW_BATCHES * batchSize
    /** The claimable heads among `heads`, each under its advisory lock, oldest first, at most `maxLocks`. */
    const lockReady = (busy: ReadonlyArray<string>) =>
      sql`
        ready AS MATERIALIZED (
          SELECT id, aggregate_id FROM heads
           WHERE next_attempt_at <= now()
             AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = ${me})
             AND aggregate_id <> ALL(${busy})
           ORDER BY id
           LIMIT ${maxLocks}
        )`
    const lockedOfReady = sql`
      ARRAY(SELECT aggregate_id FROM ready
             WHERE pg_try_advisory_xact_lock(${LOCK_SPACE}, hashtext(aggregate_id))
             ORDER BY id) AS locked`
    const lockHeads = (busy: ReadonlyArray<string>) =>
      sql<{ scanned: number; locked: ReadonlyArray<string> }>`
        WITH pending AS MATERIALIZED (
          SELECT id, aggregate_id, next_attempt_at, claimed_by, claimed_until FROM outbox
           WHERE published_at IS NULL AND parked_at IS NULL
           ORDER BY id
           LIMIT ${window}
        ), heads AS (
          SELECT DISTINCT ON (aggregate_id) * FROM pending ORDER BY aggregate_id, id
        ), ${lockReady(busy)}
        SELECT (SELECT count(*) FROM pending)::int AS scanned, ${lockedOfReady}`.pipe(Effect.map((rows) => rows[0]!))
    /**
     * The fallback when the oldest `window` pending rows all belong to aggregates that cannot be
     * claimed (backing off, leased, in flight): a loose index scan (outbox_pending, aggregate_id, id)
     * that jumps from one aggregate's head to the next, so it costs one index probe per aggregate
     * and never reads a stuck aggregate's other rows; bounded to `window` aggregates.
     */
    const lockHeadsByAggregate = (busy: ReadonlyArray<string>) =>
      sql<{ locked: ReadonlyArray<string> }>`
        WITH RECURSIVE walk AS (
          (SELECT id, aggregate_id, next_attempt_at, claimed_by, claimed_until, 1 AS n FROM outbox
            WHERE published_at IS NULL AND parked_at IS NULL
            ORDER BY aggregate_id, id
            LIMIT 1)
          UNION ALL
          SELECT next.id, next.aggregate_id, next.next_attempt_at, next.claimed_by, next.claimed_until, walk.n + 1
            FROM walk
            CROSS JOIN LATERAL (
              SELECT id, aggregate_id, next_attempt_at, claimed_by, claimed_until FROM outbox
               WHERE published_at IS NULL AND parked_at IS NULL AND aggregate_id > walk.aggregate_id
               ORDER BY aggregate_id, id
               LIMIT 1) AS next
           WHERE walk.n < ${window}
        ), heads AS (
          SELECT id, aggregate_id, next_attempt_at, claimed_by, claimed_until FROM walk
        ), ${lockReady(busy)}
        SELECT ${lockedOfReady}`.pipe(Effect.map((rows) => rows[0]!))

    /**
     * Two statements in one short transaction. The first picks aggregates whose oldest pending row is
     * due, not leased by another relay and not in flight here (`lockHeads`; only if the oldest
     * pending rows all belong to other aggregates does it look further). The second, in a fresh
     * snapshot that sees every claim committed before our locks, checks those heads again and leases
     * up to `batchSize` rows, whole runs of the oldest aggregates first: a backlog goes out in batches
     * of few aggregates, so the next claim finds others free while this batch is in flight.
     */
    const claim = (busy: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        // @effect/sql-pg 4 prepares statements (node-postgres sent them unnamed): after five runs
        // PostgreSQL may switch these to a generic plan, which ignores the LIMITs' values and reads the
        // whole pending backlog (18,700 tuples per claim behind a stuck aggregate instead of < 6,000).
        // Custom plans, as before, for this transaction only.
        yield* sql`SET LOCAL plan_cache_mode = force_custom_plan`
        const first = yield* lockHeads(busy)
        const locked = first.locked.length === 0 && first.scanned === window ? (yield* lockHeadsByAggregate(busy)).locked : first.locked
        if (locked.length === 0) return []
        return yield* sql<OutboxRow>`
          WITH ready AS (
            SELECT l.aggregate_id, l.position
              FROM unnest(${locked}::text[]) WITH ORDINALITY AS l (aggregate_id, position)
              JOIN LATERAL (
                SELECT next_attempt_at, claimed_by, claimed_until FROM outbox
                 WHERE aggregate_id = l.aggregate_id AND published_at IS NULL AND parked_at IS NULL
                 ORDER BY id
                 LIMIT 1) AS head ON true
             WHERE head.next_attempt_at <= now()
               AND (head.claimed_until IS NULL OR head.claimed_until < now() OR head.claimed_by = ${me})
          ), taken AS (
            SELECT rows.id
              FROM ready
              JOIN LATERAL (
                SELECT id FROM outbox
                 WHERE aggregate_id = ready.aggregate_id AND published_at IS NULL AND parked_at IS NULL
                 ORDER BY id
                 LIMIT ${batchSize}) AS rows ON true
             ORDER BY ready.position, rows.id
             LIMIT ${batchSize}
          )
          UPDATE outbox
             SET claimed_by = ${me}, claimed_until = now() + make_interval(secs => ${LEASE_SECONDS})
           -- ARRAY(…) runs once (an InitPlan): the update then goes by primary key, not a scan of the table.
           WHERE id = ANY(ARRAY(SELECT id FROM taken))
          -- id as text: the driver returns bigint columns as JS bigint (pg returned a string).
          RETURNING id::text AS id, event_id, event_type, routing_key, aggregate_id, payload, correlation_id,
                    traceparent, tracestate, attempts, created_at`
      }).pipe(sql.withTransaction, Effect.withSpan("Relay.claim"))

    const markPublished = (rows: ReadonlyArray<OutboxRow>) =>
      rows.length === 0
        ? Effect.void
        : sql`
            UPDATE outbox SET published_at = now(), claimed_by = NULL, claimed_until = NULL
             WHERE id = ANY(${rows.map((row) => row.id)}::bigint[])`

    const release = (rows: ReadonlyArray<OutboxRow>) =>
      rows.length === 0
        ? Effect.void
        : sql`
            UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
             WHERE id = ANY(${rows.map((row) => row.id)}::bigint[]) AND claimed_by = ${me}`

    /** A refusal or confirm timeout counts as an attempt: retry after the schedule's delay, or park after OUTBOX_MAX_ATTEMPTS. */
    const recordRefusal = (row: OutboxRow, error: PublishFailed) =>
      Effect.gen(function* () {
        const attempts = row.attempts + 1
        const park = attempts >= config.outboxMaxAttempts
        const delay = yield* retryDelay(attempts)
        yield* sql`
          UPDATE outbox
             SET attempts = ${attempts}, last_error = ${error.message},
                 next_attempt_at = now() + make_interval(secs => ${Duration.toMillis(delay) / 1000}),
                 parked_at = CASE WHEN ${park} THEN now() END,
                 claimed_by = NULL, claimed_until = NULL
           WHERE id = ${row.id}`
        const fields = { eventId: row.eventId, eventType: row.eventType, aggregateId: row.aggregateId, attempts, reason: error.message }
        if (park) {
          yield* Metric.update(outboxParked, 1)
          yield* Effect.logError("outbox: event parked after repeated refusals").pipe(Effect.annotateLogs(fields))
        } else {
          yield* Effect.logWarning(
            error.reason === "timeout" ? "outbox: no confirm from the broker in time, will retry" : "outbox: broker refused an event, will retry"
          ).pipe(
            Effect.annotateLogs({ ...fields, retryInMs: Duration.toMillis(delay) })
          )
        }
      })

    /** Publishes a claimed batch and settles every row: marked, released, or its refusal recorded. */
    const relayBatch = (rows: ReadonlyArray<OutboxRow>, claimMs: number) =>
      Effect.gen(function* () {
        const started = Date.now()
        // UPDATE … RETURNING comes in no particular order: restore id (= commit) order per aggregate.
        const byId = [...rows].sort((x, y) => (BigInt(x.id) < BigInt(y.id) ? -1 : 1))
        // One ordered, pipelined write: the channel keeps each aggregate's rows in commit order.
        const outcomes = yield* messaging.publishAll(byId.map(toMessage))
        const confirmedAt = Date.now()
        const { published, failed, heldBack } = settle(byId, outcomes)
        yield* markPublished(published)
        for (const row of published) yield* Metric.update(publishLatency, Math.max(0, confirmedAt - row.createdAt.getTime()) / 1000)
        const byType = new Map<string, number>()
        for (const row of published) byType.set(row.eventType, (byType.get(row.eventType) ?? 0) + 1)
        for (const [eventType, n] of byType) yield* Metric.update(Metric.withAttributes(eventsPublished, { event_type: eventType }), n)
        // One line per confirmed event (checklist: type, id, outcome, destination); the log publisher
        // already writes its own line per event.
        if (messaging.kind !== "log") {
          for (const row of published) {
            yield* Effect.logInfo("event published").pipe(
              Effect.annotateLogs({
                eventId: row.eventId,
                eventType: row.eventType,
                aggregateId: row.aggregateId,
                exchange: Topology.eventsExchange,
                routingKey: row.routingKey,
                correlationId: row.correlationId
              })
            )
          }
        }

        for (const { row, failure } of failed) {
          yield* Metric.update(publishFailures, 1)
          // A refusal or a missing confirm counts as an attempt (backoff, parked after OUTBOX_MAX_ATTEMPTS);
          // a lost connection is not the event's fault, so no attempt is counted.
          if (failure.reason === "unavailable") yield* release([row])
          else yield* recordRefusal(row, failure)
        }
        if (heldBack.length > 0) {
          // Confirmed or not, they may not leave the outbox before the failed row of their aggregate.
          yield* release(heldBack)
          yield* Effect.logWarning("outbox: later events held back behind a failed one of their aggregate; sent again after it").pipe(
            Effect.annotateLogs({ aggregateIds: [...new Set(heldBack.map((row) => row.aggregateId))], eventIds: heldBack.map((row) => row.eventId) })
          )
        }
        yield* Effect.logDebug("outbox: batch relayed").pipe(
          Effect.annotateLogs({ claimed: rows.length, aggregates: new Set(rows.map((row) => row.aggregateId)).size, claimMs, confirmMs: confirmedAt - started, markMs: Date.now() - confirmedAt })
        )
      }).pipe(Effect.withSpan("Relay.batch", { attributes: { "outbox.rows": rows.length } }))

    /**
     * Up to MAX_BATCHES_IN_FLIGHT batches at once: the next claim overlaps the confirms of the current
     * one. Per-aggregate order holds because an aggregate in flight here (`inFlight`) is never claimed
     * again until its batch has settled, and other relays are kept off by the lease.
     */
    const inFlight = yield* Ref.make<ReadonlySet<string>>(new Set())
    const batchSlots = yield* Semaphore.make(MAX_BATCHES_IN_FLIGHT)
    const batches = yield* FiberSet.make()
    /** Rung when a batch settles: its aggregates (and their next rows) can be claimed again. */
    const settled = yield* Queue.sliding<void>(1)

    const relayAndSettle = (rows: ReadonlyArray<OutboxRow>, aggregates: ReadonlySet<string>, claimMs: number) =>
      relayBatch(rows, claimMs).pipe(
        // Typed errors and defects alike (a failed COMMIT is a typed SqlError in Effect 4, a failed
        // ROLLBACK still a defect): the rows stay leased to this relay, which claims them again at once.
        Effect.catchCause((cause) =>
          Effect.andThen(
            Metric.update(Metric.withAttributes(loopFailures, { loop: RELAY_LOOP }), 1),
            Effect.logWarning("outbox: relay batch failed", cause).pipe(Effect.annotateLogs({ loop: RELAY_LOOP, rows: rows.length }))
          )
        ),
        Effect.ensuring(
          Ref.update(inFlight, (current) => new Set([...current].filter((id) => !aggregates.has(id)))).pipe(
            Effect.andThen(batchSlots.release(1)),
            Effect.andThen(Queue.offer(settled, undefined))
          )
        ),
        // Shutdown waits for a batch in flight to be confirmed and marked.
        Effect.uninterruptible
      )

    /**
     * Claims one batch and starts relaying it; returns how many rows it claimed. Waiting for a free
     * slot can be interrupted; from the claim on, the batch is seen through (its rows are leased).
     */
    const claimAndStart = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        yield* restore(batchSlots.take(1))
        const started = Date.now()
        // A failed claim (typed error or defect: a ROLLBACK on a dead connection dies) frees its slot
        // and fails the loop's iteration, which logs, counts and backs off.
        const rows = yield* claim([...(yield* Ref.get(inFlight))]).pipe(Effect.onError(() => batchSlots.release(1)))
        if (rows.length === 0) {
          yield* batchSlots.release(1)
          return 0
        }
        const aggregates = new Set(rows.map((row) => row.aggregateId))
        yield* Ref.update(inFlight, (current) => new Set([...current, ...aggregates]))
        yield* FiberSet.run(batches, relayAndSettle(rows, aggregates, Date.now() - started))
        return rows.length
      })
    )

    /**
     * A commit here, a settled batch, or the poll interval (other replicas' commits); takes every signal
     * waiting, without waiting for more (`takeUpTo` / `clear`: Effect 4's `takeAll` waits for one).
     */
    const waitForWork = Effect.raceFirst(
      Effect.raceFirst(PubSub.take(commits), Queue.take(settled)),
      Effect.sleep(Duration.millis(config.outboxPollIntervalMs))
    ).pipe(Effect.andThen(PubSub.takeUpTo(commits, Number.MAX_SAFE_INTEGER)), Effect.andThen(Queue.clear(settled)))

    const relayIteration = (loop: LoopControl) =>
      Effect.gen(function* () {
        yield* loop.idle(messaging.awaitConnected)
        const claimed = yield* claimAndStart
        if (claimed < batchSize) yield* loop.idle(waitForWork)
      })

    /** The last gauge reading, for the readiness check (no query in the probe). */
    const drain = yield* Ref.make<DrainReading | undefined>(undefined)
    const updateGauges = Effect.gen(function* () {
      const [row] = yield* sql<{ pending: number; oldestSeconds: number; sincePublishSeconds: number | null }>`
        SELECT count(*)::int AS pending,
               COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_seconds,
               -- by any replica: the outbox_published_at index answers max() in one step
               (SELECT EXTRACT(EPOCH FROM now() - max(published_at))::float8 FROM outbox WHERE published_at IS NOT NULL)
                 AS since_publish_seconds
          FROM outbox
         WHERE published_at IS NULL AND parked_at IS NULL`
      yield* Metric.update(outboxPendingRows, row?.pending ?? 0)
      yield* Metric.update(outboxOldestPendingAge, row?.oldestSeconds ?? 0)
      yield* Ref.set(drain, {
        at: yield* Clock.currentTimeMillis,
        pending: row?.pending ?? 0,
        oldestSeconds: row?.oldestSeconds ?? 0,
        sincePublishSeconds: row?.sincePublishSeconds ?? null
      })
    })
    yield* lifecycle.register({
      name: "outbox",
      // Reported, never flipping readiness: taking replicas out of traffic publishes nothing.
      critical: false,
      check: Effect.map(Effect.all([Ref.get(drain), Clock.currentTimeMillis, lifecycle.loops]), ([reading, now, loops]) =>
        outboxHealth(reading, now, loops.get(RELAY_LOOP))
      )
    })

    // A claim waits at most for a batch's confirms (15 s) and short statements: two minutes is a wedge.
    yield* runBackgroundLoop({ name: RELAY_LOOP, stallAfter: Duration.minutes(2) }, relayIteration)
    yield* runBackgroundLoop({ name: GAUGE_LOOP, stallAfter: Duration.minutes(2), backoff: { initial: GAUGE_INTERVAL, max: Duration.seconds(30) } }, (loop) =>
      Effect.andThen(updateGauges, loop.idle(Effect.sleep(GAUGE_INTERVAL)))
    )
    yield* Effect.logInfo("outbox relay started").pipe(
      Effect.annotateLogs({ relay: me, publisher: messaging.kind, batchSize, pollIntervalMs: config.outboxPollIntervalMs })
    )
  })
)
