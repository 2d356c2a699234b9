import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { MainLive } from "./App.js"
import { AppConfig, loadConfig } from "./layers/Config.js"
import { LoggingLive } from "./layers/Logging.js"

/** Reads the configuration, then runs every layer of App.ts until SIGTERM/SIGINT closes them in reverse. */
const main = Effect.gen(function* () {
  // Read configuration once up front so a bad value is one clear line, before any logger or layer.
  const config = yield* loadConfig
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
