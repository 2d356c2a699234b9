import { Effect, Exit, Layer, Option, Schema, Scope } from "effect"
import { setTimeout as sleep } from "node:timers/promises"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Adjustment } from "../../src/domain/Adjustment.js"
import { ReservationRequest } from "../../src/domain/Reservation.js"
import { VariantSettings } from "../../src/domain/StockLevel.js"
import { configFromMap } from "../../src/layers/Config.js"
import { LoggingLive } from "../../src/layers/Logging.js"
import { MigrationsLive } from "../../src/layers/Migrations.js"
import { SqlLive } from "../../src/layers/Sql.js"
import { Adjustments } from "../../src/services/Adjustments.js"
import { Reservations } from "../../src/services/Reservations.js"
import { StockLevels } from "../../src/services/StockLevels.js"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"

const decodeRequest = Schema.decodeUnknownSync(ReservationRequest)

/**
 * Shutdown with reservation requests queued for group commit: closing the services' scope (what
 * SIGTERM does once the HTTP server has stopped accepting) ends the batcher's queue and waits until
 * its workers have decided, committed and answered every queued request; none is dropped. The
 * requests run outside that scope, as an HTTP request still being answered during the grace period does.
 */
describe("group commit at shutdown", () => {
  let database: TestDatabase
  beforeAll(async () => {
    database = await createTestDatabase("batchdrain")
  })
  afterAll(() => database?.drop())

  it("answers every queued request after the scope starts closing, and each 201 is committed", async () => {
    // Small batches and one worker: 200 requests take 50 batches, most still queued at the close.
    const layer = Layer.mergeAll(Reservations.layer, Adjustments.layer, StockLevels.layer).pipe(
      Layer.provideMerge(MigrationsLive),
      Layer.provideMerge(SqlLive),
      Layer.provide(configFromMap({ DATABASE_URL: database.url, RESERVATION_BATCH_MAX: "4", RESERVATION_BATCH_WORKERS: "1" })),
      Layer.provideMerge(LoggingLive("Error"))
    )
    const scope = Effect.runSync(Scope.make())
    const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
    const run = <A, E>(effect: Effect.Effect<A, E, Layer.Success<typeof layer>>) => Effect.runPromise(Effect.provideContext(effect, context))
    await run(Effect.flatMap(StockLevels, (s) => s.configure("drain", new VariantSettings({ lowStockThreshold: 0 }))))
    await run(Effect.flatMap(Adjustments, (a) => a.adjust("drain", new Adjustment({ type: "PURCHASE", quantity: 1000 }), Option.none())))

    const pending = Array.from({ length: 200 }, (_, i) =>
      run(Effect.flatMap(Reservations, (r) => r.create(decodeRequest({ orderId: `drain-${i}`, lines: [{ variantId: "drain", quantity: 1 }] }))))
    )
    await sleep(10)
    const closing = Effect.runPromise(Scope.close(scope, Exit.void))
    const answers = await Promise.all(pending)
    await closing
    expect(answers.filter((a) => !a.created)).toEqual([])
    const [row] = await query<{ reservations: number; reserved: number }>(
      database.url,
      "SELECT (SELECT count(*)::int FROM reservations WHERE status = 'ACTIVE') AS reservations, (SELECT reserved FROM stock_levels WHERE variant_id = 'drain') AS reserved"
    )
    expect(row).toEqual({ reservations: 200, reserved: 200 })
  })
})
