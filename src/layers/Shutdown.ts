import { Context, Effect, Layer } from "effect"
import { AppConfig } from "./Config.js"
import { Lifecycle } from "./Lifecycle.js"

/**
 * How the front door stops: stop accepting and wait for every in-flight request. The HTTP server
 * provides it (src/http/Server.ts), so this layer knows no HTTP module and any other front end
 * (or a test) can plug in its own.
 */
export class InFlightDrain extends Context.Service<InFlightDrain, { readonly drain: Effect.Effect<void> }>()("inventory/InFlightDrain") {}

/**
 * The first finalizer to run on SIGTERM (it is built after the HTTP server): readiness turns 503 so
 * load balancers stop routing here, the server stops accepting and every in-flight request finishes
 * (responses now carry `Connection: close`), then the remaining layers close in reverse order:
 * background fibers stop, the broker and the pool close. The process's hard deadline
 * (SHUTDOWN_GRACE_MS) belongs to main.ts, which owns the process; in-process users (tests) have none.
 */
export const ShutdownLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const lifecycle = yield* Lifecycle
    const inFlight = yield* InFlightDrain
    const { shutdownGraceMs } = yield* AppConfig
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* lifecycle.markDraining
        yield* Effect.logInfo("shutdown: readiness is 503, draining in-flight requests").pipe(
          Effect.annotateLogs("graceMs", shutdownGraceMs)
        )
        yield* inFlight.drain
        yield* Effect.logInfo("shutdown: HTTP drained, stopping background work")
      })
    )
  })
)
