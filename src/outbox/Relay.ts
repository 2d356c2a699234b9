import { PgConnection } from "@effect/sql-pg"
import { Clock, Duration, Effect, FiberSet, Layer, Metric, Option, PubSub, Queue, type Redacted, Ref, Schedule, Semaphore, Tracer } from "effect"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import { type LoopControl, loopFailures, runBackgroundLoop } from "../layers/BackgroundLoop.js"
import { AppConfig } from "../layers/Config.js"
import { Lifecycle, type LoopState } from "../layers/Lifecycle.js"
import { PublishedEventsLog } from "../layers/Logging.js"
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
  /**
   * The stored envelope. The claim returns it as JSON text (jsonb's output), sent as the body as is:
   * no parse, snake-to-camel walk and re-serialisation per event; `occurredAt` then comes beside it.
   */
  readonly payload: string | ({ readonly occurredAt?: string } & Record<string, unknown>)
  readonly occurredAt?: string | null
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
  const occurredAt = Date.parse((typeof row.payload === "string" ? row.occurredAt : row.payload.occurredAt) ?? "")
  return {
    exchange: Topology.eventsExchange,
    routingKey: row.routingKey,
    body: typeof row.payload === "string" ? row.payload : JSON.stringify(row.payload),
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
const LISTEN_LOOP = "outbox-listener"
/** The channel the outbox trigger notifies at every commit that wrote outbox rows (migration 0082). */
export const OUTBOX_CHANNEL = "inventory_outbox"

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

    const maxLocks = Math.min(batchSize, MAX_AGGREGATES_PER_CLAIM)
    const window = HEAD_WINDOW_BATCHES * batchSize

    /**
     * One statement, one round trip: `outbox_claim` (migrations 0083, 0086) runs the claim's
     * statements, each in a fresh snapshot, under transaction-scoped advisory locks held until this
     * statement commits. The first picks aggregates whose oldest pending row is due, not leased by
     * another relay and not in flight here (`busy`), among the oldest `window` pending rows (only if
     * those all belong to other aggregates does it walk the aggregates' heads by index), at most
     * `maxLocks`, and keeps their rows of that window. The last, in a snapshot that sees every claim
     * committed before our locks, re-reads those rows by primary key, checks the heads again and
     * leases up to `batchSize` rows, whole runs of the oldest aggregates first: a backlog goes out in
     * batches of few aggregates, so the next claim finds others free while this batch is
     * in flight. Rows come in id (= commit) order, the payload as JSON text.
     */
    const claim = (busy: ReadonlyArray<string>) =>
      sql<OutboxRow>`
        SELECT * FROM outbox_claim(${me}, ${busy}::text[], ${window}, ${maxLocks}, ${batchSize}, ${LEASE_SECONDS}, ${LOCK_SPACE})`.pipe(
        // No stack trace per claim: the span's source is always this line.
        Effect.withSpan("Relay.claim", undefined, { captureStackTrace: false })
      )

    /**
     * One statement for the whole batch. Its commit does not wait for the WAL flush (asynchronous
     * commit, this transaction only): a crash of the database can lose only the last marks, never an
     * earlier one without the later ones, so those rows are published again from their aggregate's
     * head, in order (at-least-once; consumers de-duplicate). Saves a disk flush per batch.
     */
    const markPublished = (rows: ReadonlyArray<OutboxRow>) =>
      rows.length === 0
        ? Effect.void
        : sql`
            UPDATE outbox SET published_at = now(), claimed_by = NULL, claimed_until = NULL
             WHERE id = ANY(${rows.map((row) => row.id)}::bigint[])
               AND set_config('synchronous_commit', 'off', true) IS NOT NULL`

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
        // The claim returns its rows in id (= commit) order.
        const byId = rows
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
          const events = published.map((row) => ({
            correlationId: row.correlationId,
            eventId: row.eventId,
            eventType: row.eventType,
            aggregateId: row.aggregateId,
            exchange: Topology.eventsExchange,
            routingKey: row.routingKey
          }))
          const fastLog = yield* PublishedEventsLog
          if (fastLog !== undefined) {
            const span = yield* Effect.serviceOption(Tracer.ParentSpan)
            fastLog(events, Option.isSome(span) ? { traceId: span.value.traceId, spanId: span.value.spanId } : null)
          } else {
            for (const { correlationId, ...fields } of events) {
              yield* Effect.logInfo("event published").pipe(Effect.annotateLogs({ ...fields, correlationId }))
            }
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
          Effect.annotateLogs({
            claimed: rows.length,
            aggregates: new Set(rows.map((row) => row.aggregateId)).size,
            // From the oldest row's transaction start to the claim's start: how long it waited.
            waitedMs: started - claimMs - Math.min(...rows.map((row) => row.createdAt.getTime())),
            claimMs,
            confirmMs: confirmedAt - started,
            markMs: Date.now() - confirmedAt
          })
        )
      }).pipe(Effect.withSpan("Relay.batch", { attributes: { "outbox.rows": rows.length } }, { captureStackTrace: false }))

    /**
     * Up to MAX_BATCHES_IN_FLIGHT batches at once: the next claim overlaps the confirms of the current
     * one. Per-aggregate order holds because an aggregate in flight here (`inFlight`) is never claimed
     * again until its batch has settled, and other relays are kept off by the lease.
     */
    const inFlight = yield* Ref.make<ReadonlySet<string>>(new Set())
    const batchSlots = yield* Semaphore.make(MAX_BATCHES_IN_FLIGHT)
    const batches = yield* FiberSet.make()
    /**
     * Rung when a batch settles (its aggregates' next rows can be claimed) and when any replica's
     * transaction that wrote outbox rows commits (NOTIFY, `listenForCommits`). Sliding, one slot: a
     * wake-up while a claim runs makes exactly one more claim, never a queue of them.
     */
    const wake = yield* Queue.sliding<void>(1)
    const ring = Queue.offer(wake, undefined).pipe(Effect.asVoid)

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
            Effect.andThen(ring)
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
     * A commit here (in-process, a little ahead of its NOTIFY), a NOTIFY of any replica's commit, a
     * settled batch, or the poll interval (the safety net while the listener is down); takes every
     * signal waiting, without waiting for more (`takeUpTo` / `clear`: Effect 4's `takeAll` waits for
     * one). The claim that follows sees every commit signalled before it.
     */
    const waitForWork = Effect.raceFirst(
      Effect.raceFirst(PubSub.take(commits), Queue.take(wake)),
      Effect.sleep(Duration.millis(config.outboxPollIntervalMs))
    ).pipe(Effect.andThen(PubSub.takeUpTo(commits, Number.MAX_SAFE_INTEGER)), Effect.andThen(Queue.clear(wake)))

    /**
     * LISTEN on a connection of its own (not one of the pools': it stays pinned). One iteration is one
     * connection: it rings once when LISTEN is confirmed (rows committed while nobody listened), then
     * once per notification. When the connection drops (killed backend, restart, network) the
     * iteration ends with a warning and the loop connects again at once; failing to connect backs
     * off (BackgroundLoop.ts). Polling goes on meanwhile.
     */
    const listenForCommits = (url: Redacted.Redacted) => (loop: LoopControl) =>
      Effect.scoped(
        Effect.gen(function* () {
          const connection = yield* PgConnection.make({
            url,
            applicationName: "inventory-service-relay-listen",
            connectTimeout: Duration.millis(config.dbConnectTimeoutMs),
            // A database gone without closing the socket is noticed by keepalive probes, not by a query.
            keepAlive: Duration.seconds(10)
          })
          const notifications = yield* connection.listen(OUTBOX_CHANNEL)
          yield* Effect.logInfo("outbox: listening for commits").pipe(Effect.annotateLogs({ channel: OUTBOX_CHANNEL, backend: connection.processId }))
          yield* ring
          const lost = yield* loop.idle(Effect.forever(Effect.andThen(Queue.take(notifications), ring))).pipe(Effect.flip)
          yield* Effect.logWarning("outbox: listener connection lost; reconnecting, polling meanwhile", lost).pipe(
            Effect.annotateLogs({ loop: LISTEN_LOOP })
          )
        })
      )

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
    // The embedded database is one process with one connection: the in-process signal is enough there.
    // OUTBOX_LISTEN=false (a transaction-mode pooler in between drops notifications): polling only.
    const listenUrl = config.outboxListen ? config.databaseUrl : Option.none()
    if (Option.isSome(listenUrl)) {
      yield* runBackgroundLoop({ name: LISTEN_LOOP, stallAfter: Duration.minutes(1) }, listenForCommits(listenUrl.value))
    }
    yield* runBackgroundLoop({ name: GAUGE_LOOP, stallAfter: Duration.minutes(2), backoff: { initial: GAUGE_INTERVAL, max: Duration.seconds(30) } }, (loop) =>
      Effect.andThen(updateGauges, loop.idle(Effect.sleep(GAUGE_INTERVAL)))
    )
    yield* Effect.logInfo("outbox relay started").pipe(
      Effect.annotateLogs({
        relay: me,
        publisher: messaging.kind,
        batchSize,
        pollIntervalMs: config.outboxPollIntervalMs,
        wakeUp: Option.isSome(listenUrl) ? `LISTEN ${OUTBOX_CHANNEL}` : "in-process and polling"
      })
    )
  })
)
