import { Duration, Effect, Layer, Metric, Ref, type Scope } from "effect"
import { describe, expect, it } from "vitest"
import { backoffDelay, loopFailures, runBackgroundLoop } from "../../src/layers/BackgroundLoop.js"
import { failingLoops, Lifecycle } from "../../src/layers/Lifecycle.js"

const failures = (loop: string) =>
  Metric.value(Metric.withAttributes(loopFailures, { loop })).pipe(Effect.map((state) => (state as Metric.CounterState<number>).count))

const run = <A>(effect: Effect.Effect<A, never, Lifecycle | Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(effect).pipe(Effect.provide(Layer.fresh(Lifecycle.layer))))

describe("background loops", () => {
  it("survive typed failures and defects alike: each is counted and the loop goes on", async () => {
    const result = await run(
      Effect.gen(function* () {
        const calls = yield* Ref.make(0)
        yield* runBackgroundLoop({ name: "test-survivor", stallAfter: "1 minute", backoff: { initial: "1 millis", max: "5 millis" } }, () =>
          Effect.flatMap(Ref.updateAndGet(calls, (n) => n + 1), (n) =>
            n === 1 ? Effect.fail("database away") : n === 2 ? Effect.die(new Error("Client has encountered a connection error")) : Effect.sleep("1 millis")
          )
        )
        yield* Effect.sleep("1 second")
        const lifecycle = yield* Lifecycle
        return { calls: yield* Ref.get(calls), failures: yield* failures("test-survivor"), failing: failingLoops(yield* lifecycle.loops, Date.now()) }
      })
    )
    expect(result.calls).toBeGreaterThan(3)
    expect(result.failures).toBe(2)
    expect(result.failing).toEqual([])
  })

  it("make liveness fail when a loop's fiber ends other than by shutdown, or one iteration hangs", async () => {
    const failing = await run(
      Effect.gen(function* () {
        const lifecycle = yield* Lifecycle
        yield* runBackgroundLoop({ name: "test-hung", stallAfter: "20 millis" }, () => Effect.never)
        // A fiber interrupted other than by shutdown is the one way left to end a loop.
        yield* runBackgroundLoop({ name: "test-killed", stallAfter: "1 minute" }, () => Effect.interrupt)
        yield* runBackgroundLoop({ name: "test-idle", stallAfter: "20 millis" }, (loop) => loop.idle(Effect.never))
        yield* Effect.sleep("60 millis")
        return failingLoops(yield* lifecycle.loops, Date.now())
      })
    )
    expect(failing.some((line) => line.startsWith("test-hung: one iteration running"))).toBe(true)
    expect(failing.some((line) => line.startsWith("test-killed: ended"))).toBe(true)
    expect(failing.some((line) => line.startsWith("test-idle"))).toBe(false) // waiting for work is never a stall
  })

  it("backs off exponentially with jitter, capped", () => {
    const ms = (n: number, jitter: number) => Duration.toMillis(backoffDelay(n, "200 millis", "5 seconds", jitter))
    expect(ms(1, 1)).toBe(200)
    expect(ms(3, 1)).toBe(800)
    expect(ms(20, 1)).toBe(5_000)
    expect(ms(20, 0)).toBe(2_500)
  })
})
