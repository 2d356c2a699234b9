import { Effect, Layer } from "effect"
import { NodeServer } from "../http/Server.js"
import { AppConfig } from "./Config.js"
import { Lifecycle } from "./Lifecycle.js"

/**
 * The first finalizer to run on SIGTERM (it is built after the HTTP server): readiness turns 503 so
 * load balancers stop routing here, the server stops accepting and every in-flight request finishes
 * (responses now carry `Connection: close`), then the remaining layers close in reverse order:
 * background fibers stop, the broker and the pool close. A hard deadline ends the process if
 * draining outlives SHUTDOWN_GRACE_MS.
 */
export const ShutdownLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const lifecycle = yield* Lifecycle
    const server = yield* NodeServer
    const { shutdownGraceMs } = yield* AppConfig
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        const deadline = setTimeout(() => {
          process.stderr.write(`shutdown: still draining after ${shutdownGraceMs} ms, exiting\n`)
          process.exit(1)
        }, shutdownGraceMs)
        deadline.unref()
        yield* lifecycle.markDraining
        yield* Effect.logInfo("shutdown: readiness is 503, draining in-flight requests").pipe(
          Effect.annotateLogs("graceMs", shutdownGraceMs)
        )
        yield* Effect.async<void>((resume) => {
          if (!server.listening) return resume(Effect.void)
          server.close(() => resume(Effect.void))
          server.closeIdleConnections()
        })
        yield* Effect.logInfo("shutdown: HTTP drained, stopping background work")
      })
    )
  })
)
