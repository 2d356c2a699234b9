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

  it("answers at once while a connection is free, and fails after DB_CONNECT_TIMEOUT_MS when none is", async () => {
    const layer = SqlLive.pipe(Layer.provide(configFromMap({ DATABASE_URL: database.url, DB_POOL_MAX: "3", DB_CONNECT_TIMEOUT_MS: "300" })))
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
})
