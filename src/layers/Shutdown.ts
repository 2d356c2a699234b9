import { Effect, Layer } from "effect"
import { NodeServer } from "../http/Server.js"
import { AppConfig } from "./Config.js"
import { Lifecycle } from "./Lifecycle.js"

/**
 * The first finalizer to run on SIGTERM (it is built after the HTTP server): readiness turns 503 so
 * load balancers stop routing here, the server stops accepting and every in-flight request finishes
 * (responses now carry `Connection: close`), then the remaining layers close in reverse order:
 * background fibers stop, the broker and the pool close. The process's hard deadline
 * (SHUTDOWN_GRACE_MS) belongs to main.ts, which owns the process; in-process users (tests) have none.
 */
export const ShutdownLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const lifecycle = yield* Lifecycle
    const server = yield* NodeServer
    const { shutdownGraceMs } = yield* AppConfig
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
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
