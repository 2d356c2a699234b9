import { Context, Effect, Exit, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { AppConfig, configFromMap, reservationBatchWorkers } from "../../src/layers/Config.js"

/** The group-commit settings: one clear line for a bad value, and a worker count that leaves the pool room. */
const load = (env: Record<string, string>) =>
  Effect.runPromiseExit(Effect.scoped(Layer.build(configFromMap(env)).pipe(Effect.map((context) => Context.get(context, AppConfig)))))

const message = async (env: Record<string, string>) => {
  const exit = await load(env)
  return Exit.isFailure(exit) ? String((exit.cause.reasons[0] as { error?: { message?: string } }).error?.message) : "started"
}

describe("group-commit configuration", () => {
  it("refuses a batch size outside 1-1000 and workers that would take the whole pool, naming the variable", async () => {
    expect(await message({ RESERVATION_BATCH_MAX: "0" })).toMatch(/^Invalid configuration: RESERVATION_BATCH_MAX: must be an integer 1-1000/)
    expect(await message({ RESERVATION_BATCH_MAX: "lots" })).toMatch(/^Invalid configuration: RESERVATION_BATCH_MAX: /)
    expect(await message({ DB_POOL_MAX: "4", RESERVATION_BATCH_WORKERS: "4" })).toBe("Invalid configuration: RESERVATION_BATCH_WORKERS: must be below DB_POOL_MAX (4)")
  })

  it("runs 3 workers by default, fewer on a small pool", async () => {
    const workers = async (env: Record<string, string>) => {
      const exit = await load(env)
      if (Exit.isFailure(exit)) throw new Error("did not load")
      return reservationBatchWorkers(exit.value)
    }
    expect(await workers({})).toBe(3)
    expect(await workers({ DB_POOL_MAX: "2" })).toBe(1)
    expect(await workers({ DB_POOL_MAX: "20", RESERVATION_BATCH_WORKERS: "8" })).toBe(8)
  })
})
