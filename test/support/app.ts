import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, LogLevel, ManagedRuntime } from "effect"
import { MainLive } from "../../src/App.js"
import { AppConfig, configFromMap } from "../../src/layers/Config.js"
import { LoggingLive } from "../../src/layers/Logging.js"
import { createTestDatabase, type TestDatabase } from "./database.js"

const testLogLevel = () =>
  ({ debug: LogLevel.Debug, info: LogLevel.Info, warn: LogLevel.Warning, error: LogLevel.Error })[
    process.env["TEST_LOG_LEVEL"] ?? "error"
  ] ?? LogLevel.Error

export interface TestApp {
  readonly baseUrl: string
  readonly database: TestDatabase
  /** Runs an effect with the app's services (SqlClient, StockLevels, ...). */
  readonly run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | Layer.Layer.Success<typeof MainLive>>) => Promise<A>
  readonly close: () => Promise<void>
}

/**
 * The whole service, in process, against a fresh PostgreSQL database, listening on a free port:
 * tests talk to it over a real socket with `fetch`, and read the database directly.
 */
export const startTestApp = async (
  options: {
    readonly label?: string
    readonly env?: Record<string, string>
    /** An existing database to run on (not dropped by `close`) instead of a fresh one. */
    readonly database?: TestDatabase
    /** How the service reaches the database, e.g. through a test proxy; default its own URL. */
    readonly databaseUrl?: (database: TestDatabase) => string
  } = {}
): Promise<TestApp> => {
  const database = options.database ?? (await createTestDatabase(options.label ?? "app"))
  const databaseUrl = options.databaseUrl?.(database) ?? database.url
  const config = configFromMap({ DATABASE_URL: databaseUrl, PORT: "0", DB_POOL_MAX: "10", ...options.env })
  const runtime = ManagedRuntime.make(
    MainLive.pipe(Layer.provideMerge(config), Layer.provide(LoggingLive(testLogLevel())))
  )
  try {
    const address = await runtime.runPromise(HttpServer.addressWith(Effect.succeed))
    const port = address._tag === "TcpAddress" ? address.port : 0
    return {
      baseUrl: `http://127.0.0.1:${port}`,
      database,
      run: (effect) => runtime.runPromise(effect),
      close: async () => {
        await runtime.dispose()
        if (options.database === undefined) await database.drop()
      }
    }
  } catch (error) {
    await runtime.dispose().catch(() => undefined)
    if (options.database === undefined) await database.drop()
    throw error
  }
}

export { AppConfig }
