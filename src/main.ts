import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { MainLive } from "./App.js"
import { AppConfig, loadConfig } from "./layers/Config.js"
import { LoggingLive } from "./layers/Logging.js"

/**
 * runMain closes the layers on SIGTERM/SIGINT; should draining outlive SHUTDOWN_GRACE_MS (a stuck
 * finalizer), the process ends anyway, as Kubernetes would end it a little later.
 */
const exitAfterGrace = (graceMs: number) => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      setTimeout(() => {
        process.stderr.write(`shutdown: still draining after ${graceMs} ms, exiting\n`)
        process.exit(1)
      }, graceMs).unref()
    })
  }
}

/** Reads the configuration, then runs every layer of App.ts until SIGTERM/SIGINT closes them in reverse. */
const main = Effect.gen(function* () {
  // Read configuration once up front so a bad value is one clear line, before any logger or layer.
  const config = yield* loadConfig
  yield* Effect.sync(() => exitAfterGrace(config.shutdownGraceMs))
  return yield* Layer.launch(MainLive).pipe(
    Effect.provide(LoggingLive(config.logLevel)),
    Effect.provideService(AppConfig, config)
  )
}).pipe(
  Effect.catchTag("InvalidConfig", (error) =>
    Effect.sync(() => {
      process.stderr.write(error.message + "\n")
      process.exit(1)
    })
  )
)

NodeRuntime.runMain(main, { disablePrettyLogger: true })
