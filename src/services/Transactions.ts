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

const retrySchedule = Schedule.exponential(Duration.millis(5), 2).pipe(
  Schedule.jittered,
  Schedule.union(Schedule.spaced(Duration.millis(200))),
  Schedule.intersect(Schedule.recurs(8))
)

/**
 * One state change = one transaction. Serialization failures and deadlocks (which PostgreSQL may
 * report even for well-ordered locking) are retried whole with backoff before anyone sees them; a
 * failed COMMIT surfaces as a defect in @effect/sql, so retryable defects are retried too. After a
 * successful commit the outbox relay is woken.
 */
export class Transactions extends Effect.Service<Transactions>()("inventory/Transactions", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    return {
      run: <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
        sql.withTransaction(effect).pipe(
          Effect.catchAllDefect((defect) =>
            RETRYABLE.has(pgCode(defect) ?? "") ? Effect.fail(new SqlError({ cause: defect })) : Effect.die(defect)
          ),
          Effect.retry({ schedule: retrySchedule, while: (e) => RETRYABLE.has(pgCode(e) ?? "") }),
          Effect.tap(() => outbox.committed)
        )
    } as const
  }),
  dependencies: [Outbox.Default]
}) {}
