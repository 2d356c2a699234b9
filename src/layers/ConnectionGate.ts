import { Effect, Scope } from "effect"

/**
 * Admission to a connection pool of `size`: at most `size` checkouts hold a place at once, the
 * others wait in arrival order, each for at most `timeoutMs`, then fail with `timedOut()`. A waiter
 * is a callback and a timer, not a fiber: the deadline used to be a race of the checkout against a
 * timer, two fibers for every statement that found the pool busy, which under full load is most.
 * With every checkout admitted here, the pool behind never makes one wait for another; it only
 * opens connections (bounded by its own connect timeout). The deadline is a wall-clock timer, not
 * Effect's Clock: a test clock that stands still or jumps must not decide that the database is
 * unavailable.
 *
 * An entry interrupted while it waits takes no place; one interrupted just as it was let in gives
 * its place to the next waiter.
 */
export interface ConnectionGate {
  /** Runs `use` holding a place; the place is given back when `use` ends, however it ends. */
  readonly withPlace: <A, E, R, T>(timedOut: () => T, use: Effect.Effect<A, E, R>) => Effect.Effect<A, E | T, R>
  /** Takes a place until the current scope closes (a scoped checkout: transactions, `sql.reserve`). */
  readonly enterScoped: <T>(timedOut: () => T) => Effect.Effect<void, T, Scope.Scope>
  /** Entries waiting for a place now. */
  readonly waiting: () => number
}

export const makeConnectionGate = (size: number, timeoutMs: number): ConnectionGate => {
  let held = 0
  // Insertion-ordered: the oldest waiter first.
  const waiters = new Set<() => void>()

  const leave = Effect.sync(() => {
    held -= 1
    const next = waiters.values().next()
    if (!next.done) next.value()
  })

  /** Called uninterruptibly; only the wait itself is interruptible (`restore`). */
  const enter = <T>(restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>, timedOut: () => T) =>
    Effect.suspend((): Effect.Effect<void, T> => {
      if (held < size && waiters.size === 0) {
        held += 1
        return Effect.void
      }
      let letIn = false
      const wait = Effect.callback<void, T>((resume) => {
        const wake = () => {
          waiters.delete(wake)
          clearTimeout(timer)
          held += 1
          letIn = true
          resume(Effect.void)
        }
        const timer = setTimeout(() => {
          waiters.delete(wake)
          resume(Effect.fail(timedOut()))
        }, timeoutMs)
        waiters.add(wake)
        return Effect.sync(() => {
          clearTimeout(timer)
          waiters.delete(wake)
        })
      })
      return Effect.onInterrupt(restore(wait), () => (letIn ? leave : Effect.void))
    })

  return {
    withPlace: (timedOut, use) =>
      Effect.uninterruptibleMask((restore) => Effect.flatMap(enter(restore, timedOut), () => Effect.ensuring(restore(use), leave))),
    enterScoped: (timedOut) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(enter(restore, timedOut), () => Effect.flatMap(Effect.scope, (scope) => Scope.addFinalizer(scope, leave)))
      ),
    waiting: () => waiters.size
  }
}
