import { Effect, Layer } from "effect"
import { AppConfig } from "./Config.js"
import { Lifecycle } from "./Lifecycle.js"

/**
 * The first finalizer to run on SIGTERM (it is built after the HTTP server): readiness turns 503 so
 * load balancers stop routing here, then the server drains in-flight requests, background fibers
 * stop and the pool closes. A hard deadline ends the process if draining outlives SHUTDOWN_GRACE_MS.
 */
export const ShutdownLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const lifecycle = yield* Lifecycle
    const { shutdownGraceMs } = yield* AppConfig
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* lifecycle.markDraining
        yield* Effect.logInfo("shutdown: readiness is 503, draining in-flight work").pipe(
          Effect.annotateLogs("graceMs", shutdownGraceMs)
        )
        const deadline = setTimeout(() => {
          process.stderr.write(`shutdown: still draining after ${shutdownGraceMs} ms, exiting\n`)
          process.exit(1)
        }, shutdownGraceMs)
        deadline.unref()
      })
    )
  })
)
