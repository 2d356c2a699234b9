import { Effect, Exit, Layer, Option, Schema, Scope } from "effect"
import pg from "pg"
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
 * Group commit with a variant whose row is held (a long transaction elsewhere, a hot variant's
 * batch): the requests on it wait for the one batch that holds it, not one batch per worker, so the
 * other workers go on deciding reservations of other variants meanwhile (ReservationBatcher's
 * `formBatch`). Against the real PostgreSQL, with the row locked by another connection.
 */
describe("group commit and a variant held by a batch", () => {
  let database: TestDatabase
  let scope: Scope.Closeable
  let blocker: pg.Client
  const layer = () =>
    Layer.mergeAll(Reservations.layer, Adjustments.layer, StockLevels.layer).pipe(
      Layer.provideMerge(MigrationsLive),
      Layer.provideMerge(SqlLive),
      Layer.provide(configFromMap({ DATABASE_URL: database.url, RESERVATION_BATCH_WORKERS: "3" })),
      Layer.provideMerge(LoggingLive("Error"))
    )

  beforeAll(async () => {
    database = await createTestDatabase("batchheld")
    blocker = new pg.Client({ connectionString: database.url })
    await blocker.connect()
  })
  afterAll(async () => {
    await blocker?.end()
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    await database?.drop()
  })

  it("decides a reservation of another variant while every worker's earlier request waits on one locked variant", async () => {
    const built = layer()
    scope = Effect.runSync(Scope.make())
    const context = await Effect.runPromise(Layer.buildWithScope(built, scope))
    const run = <A, E>(effect: Effect.Effect<A, E, Layer.Success<typeof built>>) => Effect.runPromise(Effect.provideContext(effect, context))
    for (const variant of ["held-x", "held-y"]) {
      await run(Effect.flatMap(StockLevels, (s) => s.configure(variant, new VariantSettings({ lowStockThreshold: 0 }))))
      await run(Effect.flatMap(Adjustments, (a) => a.adjust(variant, new Adjustment({ type: "PURCHASE", quantity: 100 }), Option.none())))
    }
    const reserve = (orderId: string, variantId: string) =>
      run(Effect.flatMap(Reservations, (r) => r.create(decodeRequest({ orderId, lines: [{ variantId, quantity: 1 }] }))))

    // Another transaction holds held-x's row: a batch with a request on it waits for its lock.
    await blocker.query("BEGIN")
    await blocker.query("SELECT 1 FROM stock_levels WHERE variant_id = 'held-x' FOR UPDATE")
    // One request at a time, each after the previous was taken: with three workers taking
    // whatever waits, each would start a batch of its own, and all three would wait on the lock.
    const onHeld: Array<Promise<{ readonly created: boolean }>> = []
    for (let i = 0; i < 3; i++) {
      onHeld.push(reserve(`held-x-${i}`, "held-x"))
      await sleep(150)
    }
    const other = reserve("held-y-0", "held-y")
    const inTime = await Promise.race([other.then(() => true), sleep(2_000).then(() => false)])
    const stillLocked = await query<{ waiting: number }>(
      database.url,
      "SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    await blocker.query("COMMIT")
    expect(inTime).toBe(true)
    expect((await other).created).toBe(true)
    // One batch waits on the lock (the first request's); the other two requests wait for it to end.
    expect(stillLocked[0]!.waiting).toBe(1)
    expect((await Promise.all(onHeld)).map((answer) => answer.created)).toEqual([true, true, true])
    const [row] = await query<{ x: number; y: number }>(
      database.url,
      "SELECT (SELECT reserved FROM stock_levels WHERE variant_id = 'held-x') AS x, (SELECT reserved FROM stock_levels WHERE variant_id = 'held-y') AS y"
    )
    expect(row).toEqual({ x: 3, y: 1 })
  })
})
