import { Deferred, Effect, Exit, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { type ConnectionGate, makeConnectionGate } from "../../src/layers/ConnectionGate.js"

// The pool's admission (src/layers/ConnectionGate.ts): places, arrival order, deadline, and no place
// lost to an entry that gave up. Real timers, short deadlines.

const TIMED_OUT = "timed out" as const
const timedOut = () => TIMED_OUT

/** Until `check` holds, giving the other fibers turns (the gate's waiters are callbacks). */
const until = (check: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1_000 && !check(); i++) yield* Effect.sleep("1 millis")
    expect(check()).toBe(true)
  })

/** A fiber inside `gate` until `hold` completes; returns once it holds its place. */
const holdPlace = (gate: ConnectionGate) =>
  Effect.gen(function* () {
    const hold = yield* Deferred.make<void>()
    const entered = yield* Deferred.make<void>()
    const holder = yield* Effect.forkChild(gate.withPlace(timedOut, Effect.andThen(Deferred.succeed(entered, undefined), Deferred.await(hold))))
    yield* Deferred.await(entered)
    return { hold, holder }
  })

describe("connection gate", () => {
  it("lets `size` in at once and the rest in arrival order as places are given back", async () => {
    const order = await Effect.runPromise(
      Effect.gen(function* () {
        const gate = makeConnectionGate(2, 5_000)
        const order: Array<string> = []
        const releases = yield* Effect.forEach(["a", "b", "c", "d", "e"], () => Deferred.make<void>())
        const fibers = yield* Effect.forEach(["a", "b", "c", "d", "e"], (name, i) =>
          Effect.forkChild(
            gate.withPlace(
              timedOut,
              Effect.andThen(
                Effect.sync(() => order.push(name)),
                Deferred.await(releases[i]!)
              )
            )
          ).pipe(Effect.tap(() => until(() => order.length + gate.waiting() === i + 1)))
        )
        expect(order).toEqual(["a", "b"])
        expect(gate.waiting()).toBe(3)
        yield* Deferred.succeed(releases[1]!, undefined)
        yield* until(() => order.length === 3)
        yield* Deferred.succeed(releases[0]!, undefined)
        yield* until(() => order.length === 4)
        for (const release of releases) yield* Deferred.succeed(release, undefined)
        yield* Fiber.joinAll(fibers)
        expect(gate.waiting()).toBe(0)
        return order
      })
    )
    expect(order).toEqual(["a", "b", "c", "d", "e"])
  })

  it("fails a waiter after the deadline, and that waiter takes no place", async () => {
    const outcome = await Effect.runPromise(
      Effect.gen(function* () {
        const gate = makeConnectionGate(1, 50)
        const { hold, holder } = yield* holdPlace(gate)
        const started = Date.now()
        const late = yield* Effect.exit(gate.withPlace(timedOut, Effect.succeed("in")))
        const waited = Date.now() - started
        yield* Deferred.succeed(hold, undefined)
        yield* Fiber.join(holder)
        // One place: free again only if neither the holder nor the timed-out waiter kept it.
        const next = yield* Effect.exit(gate.withPlace(timedOut, Effect.succeed("next")))
        return { late, waited, next }
      })
    )
    expect(outcome.late).toEqual(Exit.fail(TIMED_OUT))
    expect(outcome.waited).toBeGreaterThanOrEqual(45)
    expect(outcome.next).toEqual(Exit.succeed("next"))
  })

  it("gives back no place for a waiter interrupted while it waits, and the place of one interrupted inside", async () => {
    const outcome = await Effect.runPromise(
      Effect.gen(function* () {
        const gate = makeConnectionGate(1, 200)
        const { holder } = yield* holdPlace(gate)
        const waiters = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(gate.withPlace(timedOut, Effect.void)))
        yield* until(() => gate.waiting() === 3)
        yield* Effect.forEach(waiters, Fiber.interrupt)
        const waitingAfterInterrupts = gate.waiting()
        // The holder is interrupted inside its use: its place must come back.
        yield* Fiber.interrupt(holder)
        const next = yield* Effect.exit(gate.withPlace(timedOut, Effect.succeed("next")))
        return { waitingAfterInterrupts, next }
      })
    )
    expect(outcome.waitingAfterInterrupts).toBe(0)
    expect(outcome.next).toEqual(Exit.succeed("next"))
  })
})
