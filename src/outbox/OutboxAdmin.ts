import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"

/** Unpublished rows of one event type, as `outbox status` shows them. */
export interface OutboxTypeStatus {
  readonly eventType: string
  /** Waiting to be published (not parked), leased or not. */
  readonly pending: number
  /** Pending rows a relay holds a live lease on (being published now). */
  readonly inFlight: number
  /** Pending rows the broker refused at least once (waiting for their retry). */
  readonly retrying: number
  readonly parked: number
  readonly oldestPendingSeconds: number
}

export interface OutboxStatus extends Omit<OutboxTypeStatus, "eventType"> {
  readonly byType: ReadonlyArray<OutboxTypeStatus>
  readonly leases: ReadonlyArray<{ readonly relay: string; readonly rows: number; readonly until: Date }>
}

export interface ParkedRow {
  readonly id: string
  readonly eventId: string
  readonly eventType: string
  readonly routingKey: string
  readonly aggregateId: string
  readonly attempts: number
  readonly lastError: string | null
  readonly correlationId: string | null
  readonly createdAt: Date
  readonly parkedAt: Date
}

/** The rows an operator action touched (or, in a dry run, would touch). */
export interface TouchedRow {
  readonly id: string
  readonly eventId: string
  readonly eventType: string
  readonly aggregateId: string
}

// `id::text`: the driver returns bigint columns as JS bigint (pg returned a string); ids stay strings.
// Hence `ORDER BY outbox.id` below: a bare `id` would sort by the text alias.
const PARKED_COLUMNS = "id::text AS id, event_id, event_type, routing_key, aggregate_id, attempts, last_error, correlation_id, created_at, parked_at"
const TOUCHED_COLUMNS = "id::text AS id, event_id, event_type, aggregate_id"

/**
 * What operators do to the outbox (docs/runbooks/outbox-backlog.md, parked-events.md), as the admin
 * CLI runs it. Every change has a dry run (`apply: false`) that selects exactly the rows the change
 * would touch, by the same condition.
 */
export class OutboxAdmin extends Context.Service<OutboxAdmin>()("inventory/OutboxAdmin", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const status = Effect.gen(function* () {
      const byType = yield* sql<OutboxTypeStatus>`
        SELECT event_type,
               count(*) FILTER (WHERE parked_at IS NULL)::int                            AS pending,
               count(*) FILTER (WHERE parked_at IS NULL AND claimed_until > now())::int  AS in_flight,
               count(*) FILTER (WHERE parked_at IS NULL AND attempts > 0)::int           AS retrying,
               count(*) FILTER (WHERE parked_at IS NOT NULL)::int                        AS parked,
               COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0)::float8
                                                                                          AS oldest_pending_seconds
          FROM outbox
         WHERE published_at IS NULL
         GROUP BY event_type
         ORDER BY event_type`
      const leases = yield* sql<{ relay: string; rows: number; until: Date }>`
        SELECT claimed_by AS relay, count(*)::int AS rows, max(claimed_until) AS until
          FROM outbox
         WHERE published_at IS NULL AND claimed_until > now()
         GROUP BY claimed_by
         ORDER BY claimed_by`
      const sum = (f: (t: OutboxTypeStatus) => number) => byType.reduce((total, t) => total + f(t), 0)
      return {
        pending: sum((t) => t.pending),
        inFlight: sum((t) => t.inFlight),
        retrying: sum((t) => t.retrying),
        parked: sum((t) => t.parked),
        oldestPendingSeconds: byType.reduce((oldest, t) => Math.max(oldest, t.oldestPendingSeconds), 0),
        byType,
        leases
      } satisfies OutboxStatus
    }).pipe(Effect.withSpan("OutboxAdmin.status"))

    const parked = (limit: number) =>
      sql<ParkedRow>`
        SELECT ${sql.literal(PARKED_COLUMNS)} FROM outbox
         WHERE parked_at IS NOT NULL AND published_at IS NULL
         ORDER BY outbox.id
         LIMIT ${limit}`.pipe(Effect.withSpan("OutboxAdmin.parked"))

    /** Parked rows: all of them, or those of `ids` (ids that are not parked rows are not touched). */
    const parkedRows = (ids: ReadonlyArray<string> | "all") =>
      ids === "all"
        ? sql`parked_at IS NOT NULL AND published_at IS NULL`
        : sql`parked_at IS NOT NULL AND published_at IS NULL AND id = ANY(${[...ids]}::bigint[])`

    /** Un-parks rows: the relay publishes them within OUTBOX_POLL_INTERVAL_MS with a fresh set of attempts. */
    const requeue = (ids: ReadonlyArray<string> | "all", apply: boolean) =>
      (apply
        ? sql<TouchedRow>`
            UPDATE outbox SET parked_at = NULL, attempts = 0, next_attempt_at = now()
             WHERE ${parkedRows(ids)}
            RETURNING ${sql.literal(TOUCHED_COLUMNS)}`
        : sql<TouchedRow>`SELECT ${sql.literal(TOUCHED_COLUMNS)} FROM outbox WHERE ${parkedRows(ids)} ORDER BY outbox.id`
      ).pipe(Effect.withSpan("OutboxAdmin.requeue"))

    /** Deletes parked rows for good (never a pending one); returns them with their payload for the record. */
    const discard = (ids: ReadonlyArray<string>, apply: boolean) =>
      (apply
        ? sql<TouchedRow & { payload: unknown }>`
            DELETE FROM outbox WHERE ${parkedRows(ids)}
            RETURNING ${sql.literal(TOUCHED_COLUMNS)}, payload`
        : sql<TouchedRow & { payload: unknown }>`
            SELECT ${sql.literal(TOUCHED_COLUMNS)}, payload FROM outbox WHERE ${parkedRows(ids)} ORDER BY outbox.id`
      ).pipe(Effect.withSpan("OutboxAdmin.discard"))

    /**
     * Clears live leases (of one relay, or of all): their rows can be claimed again at once instead of
     * when the 60 s lease runs out. Only safe when that relay is gone: a live one would publish them twice.
     */
    const releaseLeases = (relay: string | null, apply: boolean) => {
      const leased = sql`published_at IS NULL AND claimed_until > now() AND (${relay}::text IS NULL OR claimed_by = ${relay})`
      return (apply
        ? sql<TouchedRow & { relay: string }>`
            WITH leased AS (SELECT id, claimed_by FROM outbox WHERE ${leased} FOR UPDATE)
            UPDATE outbox o SET claimed_by = NULL, claimed_until = NULL
              FROM leased
             WHERE o.id = leased.id
            RETURNING o.id::text AS id, o.event_id, o.event_type, o.aggregate_id, leased.claimed_by AS relay`
        : sql<TouchedRow & { relay: string }>`
            SELECT ${sql.literal(TOUCHED_COLUMNS)}, claimed_by AS relay FROM outbox WHERE ${leased} ORDER BY outbox.id`
      ).pipe(Effect.withSpan("OutboxAdmin.releaseLeases"))
    }

    return { status, parked, requeue, discard, releaseLeases } as const
  })
}) {
  /** Was `OutboxAdmin.Default`; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make)
}
