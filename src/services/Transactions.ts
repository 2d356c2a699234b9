import { Context, Duration, Effect, Layer, Metric, Option, Ref, Schedule } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import { Outbox } from "../outbox/Outbox.js"

const RETRYABLE = new Set(["40001", "40P01"]) // serialization_failure, deadlock_detected

/**
 * The driver's error behind a database failure: a SqlError's reason holds it as its `cause` (the
 * SQLSTATE is there, one level deeper than in Effect 3), a bare reason likewise; anything else is taken as is.
 */
const driverErrorOf = (u: unknown): unknown =>
  SqlError.isSqlError(u) ? u.reason.cause : SqlError.isSqlErrorReason(u) ? u.cause : u

/** The SQLSTATE of a database error, wrapped in a SqlError (or its reason) or not. */
export const pgCode = (u: unknown): string | undefined => {
  const cause = driverErrorOf(u)
  return typeof cause === "object" && cause !== null && "code" in cause && cause.code !== undefined ? String(cause.code) : undefined
}

/**
 * What a SQL error says about its cause. "unavailable": the database cannot serve right now and a
 * retry may succeed (503). "bad-data": a value only bad input can produce, class 22 data exceptions
 * such as 22021 (NUL or invalid UTF-8) or 22003 (out of range): the caller's fault (400, or an
 * unprocessable message). "bug": anything else.
 */
export type SqlFailureKind = "unavailable" | "bad-data" | "bug"

// Classes 08 (connection), 53 (insufficient resources: 53200 out of shared memory, 53300 too many
// connections...) and 40 (contention left after the transaction retries) are transient. 57014: a
// statement_timeout; 57P01-57P05: the server shut down or dropped the session; 55P03: lock timeout;
// 25P03: an idle transaction cut; 25006: a write reached a read-only server (the old primary after a failover, via a cached address).
const UNAVAILABLE_CLASSES = new Set(["08", "40", "53"])
const UNAVAILABLE_CODES = new Set(["25006", "25P03", "55P03", "57014", "57P01", "57P02", "57P03", "57P04", "57P05"])

export const classifySqlError = (error: unknown): SqlFailureKind => {
  const code = pgCode(error) ?? ""
  if (code.startsWith("22")) return "bad-data"
  if (UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || UNAVAILABLE_CODES.has(code)) return "unavailable"
  // The driver could not open, lost or timed out a connection (it classifies those itself).
  if (SqlError.isSqlError(error) && error.reason._tag === "ConnectionError") return "unavailable"
  // A driver or socket failure (ECONNREFUSED, "Connection terminated", pool timeout), or the server
  // ending the session (25P03 idle-in-transaction timeout: "terminating connection...").
  const cause = driverErrorOf(error)
  const reasonMessage = SqlError.isSqlError(error) ? error.reason.message : undefined
  const text = String((cause as { message?: unknown } | undefined)?.message ?? reasonMessage ?? (error instanceof Error ? error.message : ""))
  return /ECONNREFUSED|ECONNRESET|ENOTFOUND|EPIPE|timeout|terminat|Connection|connect/i.test(text) ? "unavailable" : "bug"
}

/** SQLSTATEs and driver failures that mean "the database is not there right now", not a bug. */
export const isDatabaseUnavailable = (error: SqlError.SqlError) => classifySqlError(error) === "unavailable"

/** `inventory_db_transaction_retries_total{code}`: transactions retried after a deadlock (40P01) or serialization failure (40001). */
const transactionRetries = Metric.counter("inventory_db_transaction_retries", {
  description: "Transactions retried whole after a deadlock (40P01) or a serialization failure (40001)",
  incremental: true
})
const retriesOf = (code: string) => Metric.withAttributes(transactionRetries, { code })
const countRetry = (code: string) => Metric.update(retriesOf(code), 1)

/** Both codes at 0 from the start, so a rate or an alert sees the series before the first retry. */
const initTransactionMetrics = Effect.forEach([...RETRYABLE], (code) => Metric.update(retriesOf(code), 0), {
  discard: true
})

// Exponential from 5 ms, jittered, capped at 200 ms (the shorter of the two delays), at most 8 retries.
const retrySchedule = Schedule.max([
  Schedule.min([Schedule.exponential(Duration.millis(5), 2).pipe(Schedule.jittered), Schedule.spaced(Duration.millis(200))]),
  Schedule.recurs(8)
])

/** Work queued by the transaction attempt running on this fiber, if any (a FiberRef in Effect 3). */
const PendingAfterCommit = Context.Reference<Option.Option<Ref.Ref<ReadonlyArray<Effect.Effect<void>>>>>(
  "inventory/Transactions/PendingAfterCommit",
  { defaultValue: () => Option.none() }
)

/**
 * Runs `effect` once the current `Transactions.run` has committed (at once outside one): metrics and
 * business log lines then describe what really happened, never a rolled-back or retried attempt.
 */
export const afterCommit = (effect: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.flatMap(PendingAfterCommit, (pending) =>
    Option.match(pending, { onNone: () => effect, onSome: (queue) => Ref.update(queue, (all) => [...all, effect]) })
  )

/**
 * One state change = one transaction. Serialization failures and deadlocks (which PostgreSQL may
 * report even for well-ordered locking) are retried whole with backoff before anyone sees them; a
 * failed COMMIT is a typed SqlError in Effect 4, so a serialization failure at COMMIT is retried the
 * same way. After a successful commit the outbox relay is woken. A COMMIT lost with its connection
 * fails as the SqlError it is, and a lost ROLLBACK (which the SQL client turns into a defect) is
 * turned back into that SqlError, so that callers answer 503.
 */
export class Transactions extends Context.Service<Transactions>()("inventory/Transactions", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    yield* initTransactionMetrics
    return {
      run: <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError.SqlError, R> =>
        Effect.gen(function* () {
          // Nested in another run: its after-commit work waits for the outermost commit.
          if (Option.isSome(yield* PendingAfterCommit)) return yield* sql.withTransaction(effect)
          const queue = yield* Ref.make<ReadonlyArray<Effect.Effect<void>>>([])
          const value = yield* Ref.set(queue, []).pipe(
            Effect.andThen(sql.withTransaction(effect)),
            Effect.provideService(PendingAfterCommit, Option.some(queue)),
            // The SQL client turns a failed ROLLBACK (or a failed clean-up after a failed COMMIT) into a
            // defect. When the connection died under it, that is an outage (503, outcome unknown to the
            // client), not a bug.
            Effect.catchDefect((defect) =>
              SqlError.isSqlError(defect) && (RETRYABLE.has(pgCode(defect) ?? "") || isDatabaseUnavailable(defect))
                ? Effect.fail(defect)
                : RETRYABLE.has(pgCode(defect) ?? "")
                  ? Effect.fail(new SqlError.SqlError({ reason: new SqlError.UnknownError({ cause: defect }) }))
                  : Effect.die(defect)
            ),
            Effect.tapError((e) => {
              const code = pgCode(e) ?? ""
              return RETRYABLE.has(code) ? countRetry(code) : Effect.void
            }),
            Effect.retry({ schedule: retrySchedule, while: (e) => RETRYABLE.has(pgCode(e) ?? "") })
          )
          yield* outbox.committed
          for (const work of yield* Ref.get(queue)) yield* work
          return value
        })
    } as const
  })
}) {
  /** Was `Transactions.Default`: the service with its dependencies (Outbox) provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(Outbox.layer))
}
