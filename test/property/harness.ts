import { Clock, Effect, Layer, ManagedRuntime, Option, Result, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Adjustment } from "../../src/domain/Adjustment.js"
import type { AllocationStrategy } from "../../src/domain/Allocation.js"
import { LocationSettings } from "../../src/domain/Location.js"
import { Reservation, ReservationRequest } from "../../src/domain/Reservation.js"
import { VariantSettings } from "../../src/domain/StockLevel.js"
import { configFromMap } from "../../src/layers/Config.js"
import { LoggingLive } from "../../src/layers/Logging.js"
import { MigrationsLive } from "../../src/layers/Migrations.js"
import { SqlLive } from "../../src/layers/Sql.js"
import { Adjustments } from "../../src/services/Adjustments.js"
import { sweepOnce } from "../../src/services/Expiry.js"
import { Locations } from "../../src/services/Locations.js"
import { reconcile } from "../../src/services/Reconcile.js"
import { Reservations } from "../../src/services/Reservations.js"
import { StockLevels } from "../../src/services/StockLevels.js"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"

/** A clock that stands still until the test moves it: expiry is decided by the test, not by wall time. */
export const makeManualClock = (startMillis: number) => {
  let now = startMillis
  // Sleeping and elapsed-time measurement stay on a live clock: only the time of day stands still.
  const live = Clock.Clock.defaultValue()
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => now,
    currentTimeMillis: Effect.sync(() => now),
    currentTimeNanosUnsafe: () => BigInt(now) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => live.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: live.monotonicTimeNanos,
    sleep: (duration) => live.sleep(duration)
  }
  return {
    clock,
    now: () => now,
    set: (millis: number) => {
      now = millis
    },
    advance: (millis: number) => {
      now += millis
    }
  }
}

/** What an operation answered, in a form a model can produce: the value encoded, or the error's tag and fields. */
export type Answer = { readonly ok: unknown } | { readonly error: string; readonly fields: Record<string, unknown> }

const encodeReservation = Schema.encodeSync(Reservation)
const decodeRequest = Schema.decodeUnknownSync(ReservationRequest)

const answer = <A>(encode: (a: A) => unknown) => <E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.result(effect), (result): Answer =>
    Result.isSuccess(result)
      ? { ok: encode(result.success) }
      : { error: result.failure._tag, fields: JSON.parse(JSON.stringify({ ...result.failure, _tag: undefined, problem: undefined })) as Record<string, unknown> }
  )

/**
 * The reservation services (no HTTP, no background sweeper) on a fresh PostgreSQL database, with a
 * manual clock: property tests drive them step by step and read the tables directly. Expiry runs on
 * the database's clock (`inventory_now()`), so by default the manual clock also drives that one (the
 * test database's function reads a one-row table it sets); `databaseClock: "real"` leaves the
 * database on its own time, so the manual clock is only the replica's, skewed as a test likes.
 * `config` adds environment variables (e.g. RESERVATION_BATCH_MAX for the group-commit batches).
 */
export const startHarness = async (
  label: string,
  options: { readonly databaseClock?: "manual" | "real"; readonly config?: Readonly<Record<string, string>> } = {}
) => {
  const database: TestDatabase = await createTestDatabase(label)
  const layer = Layer.mergeAll(Reservations.layer, Adjustments.layer, StockLevels.layer, Locations.layer).pipe(
    Layer.provideMerge(MigrationsLive),
    Layer.provideMerge(SqlLive),
    Layer.provide(configFromMap({ DATABASE_URL: database.url, DB_POOL_MAX: "10", ...options.config })),
    // Merged, not only provided: in Effect 4 the loggers and the minimum level are context references,
    // so the runtime itself (not only the layer construction) must carry them.
    Layer.provideMerge(LoggingLive("Error"))
  )
  const runtime = ManagedRuntime.make(layer)
  const manual = makeManualClock(Date.parse("2030-01-01T00:00:00.000Z"))
  type Services = Layer.Success<typeof layer>
  const run = <A, E>(effect: Effect.Effect<A, E, Services>) => runtime.runPromise(effect.pipe(Effect.provideService(Clock.Clock, manual.clock)))
  await run(Effect.void)
  const manualDatabaseClock = (options.databaseClock ?? "manual") === "manual"
  const setDatabaseClock = async () => {
    if (manualDatabaseClock) await query(database.url, "UPDATE test_clock SET now = $1", [new Date(manual.now())])
  }
  if (manualDatabaseClock) {
    await query(database.url, "CREATE TABLE test_clock (now timestamptz NOT NULL); INSERT INTO test_clock VALUES (now())")
    await query(database.url, "CREATE OR REPLACE FUNCTION inventory_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT now FROM test_clock $$")
    await setDatabaseClock()
  }
  /** The manual clock; moving it moves the database's too (unless `databaseClock: "real"`). */
  const clock = {
    clock: manual.clock,
    now: manual.now,
    set: (millis: number) => (manual.set(millis), setDatabaseClock()),
    advance: (millis: number) => (manual.advance(millis), setDatabaseClock())
  }

  const ops = {
    configure: (variantId: string, lowStockThreshold: number) =>
      run(Effect.flatMap(StockLevels, (s) => s.configure(variantId, new VariantSettings({ lowStockThreshold })))),
    /** An adjustment at `locationId` (absent: `default`, as in v1). */
    adjust: (variantId: string, type: "PURCHASE" | "SALE", quantity: number, locationId?: string) =>
      run(
        Effect.flatMap(Adjustments, (a) =>
          a.adjust(variantId, new Adjustment(locationId === undefined ? { type, quantity } : { type, quantity, locationId }), Option.none())
        ).pipe(answer(() => null))
      ),
    /** Creates or changes a location (PUT /v1/locations/{locationId}). */
    location: (locationId: string, settings: { readonly priority?: number; readonly active?: boolean } = {}) =>
      run(Effect.flatMap(Locations, (l) => l.upsert(locationId, new LocationSettings({ name: locationId, ...settings })))),
    reserve: (
      orderId: string,
      lines: ReadonlyArray<{ variantId: string; quantity: number; locationId?: string }>,
      ttlSeconds: number,
      allocation?: AllocationStrategy
    ) =>
      run(
        Effect.flatMap(Reservations, (r) =>
          r.create(decodeRequest({ orderId, lines, ttlSeconds, ...(allocation === undefined ? {} : { allocation }) }))
        ).pipe(
          answer(({ reservation, created }) => ({ created, reservation: encodeReservation(reservation) }))
        )
      ),
    release: (orderId: string) => run(Effect.flatMap(Reservations, (r) => r.release(orderId)).pipe(answer(encodeReservation))),
    commit: (orderId: string) => run(Effect.flatMap(Reservations, (r) => r.commit(orderId)).pipe(answer(encodeReservation))),
    get: (orderId: string) => run(Effect.flatMap(Reservations, (r) => r.get(orderId)).pipe(answer(encodeReservation))),
    sweep: () => run(sweepOnce),
    reconcile: () => run(reconcile),
    truncate: () =>
      run(
        Effect.flatMap(
          SqlClient.SqlClient,
          (sql) => sql`TRUNCATE reservation_lines, reservations, inventory_history, inventory_history_archive, inventory_history_baseline, outbox, stock_levels RESTART IDENTITY CASCADE`
        )
      )
  }
  return { database, clock, ops, close: async () => (await runtime.dispose(), await database.drop()) }
}

export type Harness = Awaited<ReturnType<typeof startHarness>>
