import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Schedule } from "effect"
import { Outbox } from "../outbox/Outbox.js"

const RETRYABLE = new Set(["40001", "40P01"]) // serialization_failure, deadlock_detected

/** The SQLSTATE of a database error, wrapped in a SqlError or not. */
export const pgCode = (u: unknown): string | undefined => {
  const cause = u instanceof SqlError ? u.cause : u
  return typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined
}

/** SQLSTATEs and driver failures that mean "the database is not there right now", not a bug. */
const UNAVAILABLE_CODES = new Set(["57P01", "57P02", "57P03", "53300", "57014", "08000", "08001", "08003", "08006"])
export const isDatabaseUnavailable = (error: SqlError) => {
  const code = pgCode(error)
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) return true
  const text = String((error.cause as { message?: unknown } | undefined)?.message ?? error.message)
  return /ECONNREFUSED|ECONNRESET|ENOTFOUND|EPIPE|timeout|terminat|Connection|connect/i.test(text)
}

const retrySchedule = Schedule.exponential(Duration.millis(5), 2).pipe(
  Schedule.jittered,
  Schedule.union(Schedule.spaced(Duration.millis(200))),
  Schedule.intersect(Schedule.recurs(8))
)

/**
 * One state change = one transaction. Serialization failures and deadlocks (which PostgreSQL may
 * report even for well-ordered locking) are retried whole with backoff before anyone sees them; a
 * failed COMMIT surfaces as a defect in @effect/sql, so retryable defects are retried too. After a
 * successful commit the outbox relay is woken. A COMMIT/ROLLBACK lost with its connection fails as
 * the SqlError it is, so that callers answer 503.
 */
export class Transactions extends Effect.Service<Transactions>()("inventory/Transactions", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    return {
      run: <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
        sql.withTransaction(effect).pipe(
          // @effect/sql turns a failed COMMIT or ROLLBACK into a defect. When the connection died under
          // it, that is an outage (503, outcome unknown to the client), not a bug.
          Effect.catchAllDefect((defect) =>
            RETRYABLE.has(pgCode(defect) ?? "")
              ? Effect.fail(new SqlError({ cause: defect }))
              : defect instanceof SqlError && isDatabaseUnavailable(defect)
                ? Effect.fail(defect)
                : Effect.die(defect)
          ),
          Effect.retry({ schedule: retrySchedule, while: (e) => RETRYABLE.has(pgCode(e) ?? "") }),
          Effect.tap(() => outbox.committed)
        )
    } as const
  }),
  dependencies: [Outbox.Default]
}) {}
