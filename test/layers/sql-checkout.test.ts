import { Effect, Exit, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { configFromMap } from "../../src/layers/Config.js"
import { SqlLive } from "../../src/layers/Sql.js"
import { classifySqlError } from "../../src/services/Transactions.js"
import { createTestDatabase, type TestDatabase } from "../support/database.js"

/**
 * Waiting for a pooled connection is bounded by DB_CONNECT_TIMEOUT_MS whether or not the checkout
 * took its fast path (a free connection: no race with the deadline): with every connection busy, the
 * next statement fails as "database unavailable" (503) after the timeout, not after the busy ones.
 */
describe("SQL connection checkout", () => {
  let database: TestDatabase
  beforeAll(async () => {
    database = await createTestDatabase("sqlcheckout")
  })
  afterAll(() => database?.drop())

  /** The service's SQL client on the test database with three connections and the given acquire deadline (ms). */
  const poolOfThree = (connectTimeoutMs: string) =>
    SqlLive.pipe(Layer.provide(configFromMap({ DATABASE_URL: database.url, DB_POOL_MAX: "3", DB_CONNECT_TIMEOUT_MS: connectTimeoutMs })))

  it("answers at once while a connection is free, and fails after DB_CONNECT_TIMEOUT_MS when none is", async () => {
    const layer = poolOfThree("300")
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* sql`SELECT 1`
          // Every connection busy for 3 s.
          const busy = yield* Effect.forkChild(Effect.all(Array.from({ length: 3 }, () => sql`SELECT pg_sleep(3)`), { concurrency: "unbounded" }))
          yield* Effect.sleep("300 millis")
          const started = Date.now()
          const late = yield* Effect.exit(sql`SELECT 1`)
          const waited = Date.now() - started
          yield* Fiber.await(busy)
          return { late, waited }
        })
      ).pipe(Effect.provide(layer))
    )
    expect(Exit.isFailure(outcome.late)).toBe(true)
    if (Exit.isFailure(outcome.late)) {
      const error = outcome.late.cause.reasons[0] as { readonly error?: unknown }
      expect(classifySqlError(error.error)).toBe("unavailable")
    }
    expect(outcome.waited).toBeGreaterThanOrEqual(250)
    expect(outcome.waited).toBeLessThan(2000)
  })

  it("gives every connection back after waiters time out or are interrupted: all three serve at once again", async () => {
    const layer = poolOfThree("400")
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const busy = yield* Effect.forkChild(Effect.all(Array.from({ length: 3 }, () => sql`SELECT pg_sleep(1)`), { concurrency: "unbounded" }))
          yield* Effect.sleep("200 millis")
          // Statements and a transaction waiting for a connection: some interrupted, some timing out.
          const interrupted = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(sql`SELECT 1`))
          const inTransaction = yield* Effect.forkChild(sql.withTransaction(sql`SELECT 1`))
          const timingOut = yield* Effect.forkChild(Effect.exit(Effect.all([sql`SELECT 1`, sql`SELECT 2`], { concurrency: "unbounded" })))
          yield* Effect.sleep("100 millis")
          yield* Effect.forEach([...interrupted, inTransaction], Fiber.interrupt)
          const timedOut = yield* Fiber.join(timingOut)
          yield* Fiber.await(busy)
          // Three at once, each holding its connection for longer than the deadline: only if all three
          // places came back.
          const again = yield* Effect.exit(
            Effect.all(Array.from({ length: 3 }, () => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid, pg_sleep(0.6)`), { concurrency: "unbounded" })
          )
          return { timedOut, again }
        })
      ).pipe(Effect.provide(layer))
    )
    expect(Exit.isFailure(outcome.timedOut)).toBe(true)
    expect(Exit.isSuccess(outcome.again)).toBe(true)
    if (Exit.isSuccess(outcome.again)) expect(new Set(outcome.again.value.map(([row]) => row!.pid)).size).toBe(3)
  })
})
