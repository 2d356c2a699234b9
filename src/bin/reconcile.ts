import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { AppConfig, loadConfig } from "../layers/Config.js"
import { LoggingLive } from "../layers/Logging.js"
import { SqlLive } from "../layers/Sql.js"
import { reconcile } from "../services/Reconcile.js"

/**
 * `npm run reconcile`: checks every variant's counters against its reservations and history, prints
 * each drift, and exits 1 when there is any (2 when the check itself could not run).
 */
const program = Effect.gen(function* () {
  const config = yield* loadConfig
  const report = yield* reconcile.pipe(
    Effect.provide(SqlLive.pipe(Layer.provide(Layer.succeed(AppConfig, config)))),
    Effect.provide(LoggingLive(config.logLevel))
  )
  for (const drift of report.drifts) {
    process.stdout.write(`DRIFT ${drift.variantId} ${drift.check}: stored ${drift.stored}, expected ${drift.expected}\n`)
  }
  process.stdout.write(`reconcile: ${report.variantsChecked} variants checked, ${report.drifts.length} drift(s)\n`)
  if (report.drifts.length > 0) process.exit(1)
}).pipe(
  Effect.catchTag("InvalidConfig", (error) => Effect.sync(() => (process.stderr.write(error.message + "\n"), process.exit(2)))),
  Effect.catchAllCause((cause) => Effect.sync(() => (process.stderr.write(`reconcile failed: ${String(cause)}\n`), process.exit(2)))),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, { disablePrettyLogger: true })
