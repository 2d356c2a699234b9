import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Option, Runtime } from "effect"
import { MainLive } from "./App.js"
import { AppConfig, InvalidConfig, loadConfig } from "./layers/Config.js"
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
    // runMain's own failure report would go through Effect's default logger (a second, non-JSON
    // format; Effect 4 has no `disablePrettyLogger`): it is switched off below and done here,
    // inside our logger, so every line is printed once, as our JSON.
    // A configuration refusal (a bad key) is the one stderr line below instead.
    Effect.tapCause((cause) =>
      Cause.hasInterruptsOnly(cause) || Option.exists(Cause.findErrorOption(cause), (e) => e instanceof InvalidConfig)
        ? Effect.void
        : Effect.logError(cause)
    ),
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

/**
 * Exit 0 after SIGTERM/SIGINT closed everything (Kubernetes' normal stop; Effect 4's default
 * teardown would say 130), 1 after a failure.
 */
const teardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
  return Runtime.defaultTeardown(exit, onExit)
}

NodeRuntime.runMain(main, { disableErrorReporting: true, teardown })
