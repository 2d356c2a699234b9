import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { AppConfig, loadConfigFor } from "../layers/Config.js"
import { LoggingLive } from "../layers/Logging.js"
import { migrate } from "../layers/Migrations.js"
import { SqlLive } from "../layers/Sql.js"

/**
 * `npm run migrate`: applies pending migrations to DATABASE_URL (or the embedded database) and exits.
 * It needs the database only, so in production it runs without the broker URL or token keys.
 */
const program = Effect.gen(function* () {
  const config = yield* loadConfigFor("database")
  const applied = yield* migrate().pipe(
    Effect.provide(SqlLive.pipe(Layer.provide(Layer.succeed(AppConfig, config)))),
    Effect.provide(LoggingLive(config.logLevel))
  )
  process.stdout.write(applied.length === 0 ? "migrations: up to date\n" : `migrations applied: ${applied.join(", ")}\n`)
}).pipe(
  Effect.catchTag("InvalidConfig", (error) => Effect.sync(() => (process.stderr.write(error.message + "\n"), process.exit(1)))),
  Effect.provide(NodeServices.layer)
)

NodeRuntime.runMain(program)
