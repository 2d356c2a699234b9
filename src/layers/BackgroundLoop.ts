import { Cause, Clock, Duration, Effect, Metric, Random, type Scope } from "effect"
import { Lifecycle, type LoopState } from "./Lifecycle.js"

/** `inventory_background_loop_failures_total{loop}`: failed iterations of a background loop. */
export const loopFailures = Metric.counter("inventory_background_loop_failures", {
  description: "Failed iterations of a background loop (relay, sweepers, broker connection, consumers), each retried after a backoff",
  incremental: true
})

export interface LoopOptions {
  /** Bounded label: the metric's `loop` and the log lines' `loop`. */
  readonly name: string
  /** Longest one iteration's work (outside `idle`) may take before liveness calls the loop stalled. */
  readonly stallAfter: Duration.Input
  /** Backoff after consecutive failures: `initial` doubling, jittered, at most `max` (default 200 ms .. 5 s). */
  readonly backoff?: { readonly initial: Duration.Input; readonly max: Duration.Input }
}

export interface LoopControl {
  /** Runs `effect` as waiting for work: time spent there is never a stall. */
  readonly idle: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

const errorLine = (cause: Cause.Cause<unknown>) => Cause.pretty(cause).split("\n")[0]!.slice(0, 300)

/** The delay after the `n`-th consecutive failure: initial·2^(n-1), capped, times a jitter in [0.5, 1). */
export const backoffDelay = (n: number, initial: Duration.Input, max: Duration.Input, jitter: number) =>
  Duration.millis(
    Math.min(Duration.toMillis(max), Duration.toMillis(initial) * 2 ** Math.min(30, Math.max(0, n - 1))) * (0.5 + jitter / 2)
  )

/**
 * Runs `iteration` forever on a fiber of the enclosing scope: the one mechanism every background
 * loop of the service goes through, so that none can end or stop silently. Each failed iteration,
 * typed error or defect alike, is logged with its cause, counted in
 * `inventory_background_loop_failures_total{loop}` and followed by a capped, jittered backoff; then
 * the loop goes on. Its state is reported to Lifecycle, and `/health/live` fails when the fiber ends
 * without shutdown or one iteration's work outlasts `stallAfter` (see docs/resilience.md).
 */
export const runBackgroundLoop = <E, R>(
  options: LoopOptions,
  iteration: (loop: LoopControl) => Effect.Effect<void, E, R>
): Effect.Effect<void, never, R | Lifecycle | Scope.Scope> =>
  Effect.gen(function* () {
    const lifecycle = yield* Lifecycle
    const { name } = options
    const stallAfterMs = Duration.toMillis(options.stallAfter)
    const initial = options.backoff?.initial ?? Duration.millis(200)
    const max = options.backoff?.max ?? Duration.seconds(5)
    const failed = Metric.withAttributes(loopFailures, { loop: name })
    let consecutiveFailures = 0
    let lastError: string | undefined
    let stopping = false

    const report = (status: LoopState["status"]) =>
      Effect.flatMap(Clock.currentTimeMillis, (since) =>
        lifecycle.reportLoop(name, { status, since, stallAfterMs, consecutiveFailures, ...(lastError === undefined ? {} : { lastError }) })
      )
    const control: LoopControl = {
      idle: (effect) => Effect.andThen(report("idle"), Effect.ensuring(effect, report("running")))
    }

    const onFailure = (cause: Cause.Cause<unknown>) =>
      Effect.gen(function* () {
        consecutiveFailures += 1
        lastError = errorLine(cause)
        const delay = backoffDelay(consecutiveFailures, initial, max, yield* Random.next)
        yield* Metric.update(failed, 1)
        yield* Effect.logWarning(`${name}: iteration failed, retrying`, cause).pipe(
          Effect.annotateLogs({ loop: name, consecutiveFailures, retryInMs: Math.round(Duration.toMillis(delay)) })
        )
        yield* report("backing-off")
        yield* Effect.sleep(delay)
      })

    const once = Effect.andThen(report("running"), iteration(control)).pipe(
      Effect.matchCauseEffect({
        onSuccess: () =>
          Effect.sync(() => {
            consecutiveFailures = 0
            lastError = undefined
          }),
        onFailure: (cause) => (Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : onFailure(cause))
      })
    )

    yield* Metric.update(failed, 0)
    yield* report("idle")
    yield* Effect.forkScoped(
      Effect.forever(once).pipe(
        Effect.onExit((exit) =>
          stopping
            ? Effect.void
            : Effect.gen(function* () {
                lastError = exit._tag === "Failure" ? errorLine(exit.cause) : "returned"
                yield* report("dead")
                const message = `${name}: background loop ended; /health/live now fails`
                yield* (exit._tag === "Failure" ? Effect.logError(message, exit.cause) : Effect.logError(message)).pipe(
                  Effect.annotateLogs({ loop: name })
                )
              })
        )
      )
    )
    // Added after the fork, so it runs before the scope interrupts the fiber: shutdown is not a death.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopping = true
      })
    )
  })
