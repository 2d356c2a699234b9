import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { MainLive } from "../../src/App.js"
import { AppConfig, configFromMap } from "../../src/layers/Config.js"
import { structuredLogger } from "../../src/layers/Logging.js"
import { createTestDatabase, type TestDatabase } from "./database.js"
import { secretsIn } from "./redaction.js"

const testLogLevel = () =>
  ({ debug: LogLevel.Debug, info: LogLevel.Info, warn: LogLevel.Warning, error: LogLevel.Error })[
    process.env["TEST_LOG_LEVEL"] ?? "error"
  ] ?? LogLevel.Error

export interface TestApp {
  readonly baseUrl: string
  readonly database: TestDatabase
  /** Runs an effect with the app's services (SqlClient, StockLevels, ...). */
  readonly run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | Layer.Layer.Success<typeof MainLive>>) => Promise<A>
  /** Every log line the app wrote so far (all levels, as JSON text), whatever TEST_LOG_LEVEL prints. */
  readonly logs: () => ReadonlyArray<string>
  /** Stops the app and drops its database; fails if any log line held a secret (see redaction.ts). */
  readonly close: () => Promise<void>
}

/**
 * The whole service, in process, against a fresh PostgreSQL database, listening on a free port:
 * tests talk to it over a real socket with `fetch`, and read the database directly. Every test app
 * logs at debug level into memory and is checked for leaked secrets when closed, so the whole
 * suite is a redaction test; lines at TEST_LOG_LEVEL (default error) are also printed.
 */
export const startTestApp = async (
  options: {
    readonly label?: string
    readonly env?: Record<string, string>
    /** An existing database to run on (not dropped by `close`) instead of a fresh one. */
    readonly database?: TestDatabase
    /** How the service reaches the database, e.g. through a test proxy; default its own URL. */
    readonly databaseUrl?: (database: TestDatabase) => string
    /** Values that must never appear in a log line (checked at close, beside the generic patterns). */
    readonly secrets?: ReadonlyArray<string>
  } = {}
): Promise<TestApp> => {
  const database = options.database ?? (await createTestDatabase(options.label ?? "app"))
  const databaseUrl = options.databaseUrl?.(database) ?? database.url
  const config = configFromMap({ DATABASE_URL: databaseUrl, PORT: "0", DB_POOL_MAX: "10", ...options.env })
  const lines: Array<string> = []
  const printFrom = testLogLevel()
  const capture = Logger.make<unknown, void>((entry) => {
    const line = structuredLogger.log(entry)
    lines.push(line)
    if (LogLevel.greaterThanEqual(entry.logLevel, printFrom)) process.stdout.write(line + "\n")
  })
  const logging = Layer.merge(Logger.replace(Logger.defaultLogger, capture), Logger.minimumLogLevel(LogLevel.Debug))
  const runtime = ManagedRuntime.make(MainLive.pipe(Layer.provideMerge(config), Layer.provide(logging)))
  try {
    const address = await runtime.runPromise(HttpServer.addressWith(Effect.succeed))
    const port = address._tag === "TcpAddress" ? address.port : 0
    return {
      baseUrl: `http://127.0.0.1:${port}`,
      database,
      run: (effect) => runtime.runPromise(effect),
      logs: () => lines,
      close: async () => {
        await runtime.dispose()
        if (options.database === undefined) await database.drop()
        const leaks = secretsIn(lines, options.secrets)
        if (leaks.length > 0) throw new Error(`log lines leak secrets:\n${leaks.join("\n")}`)
      }
    }
  } catch (error) {
    await runtime.dispose().catch(() => undefined)
    if (options.database === undefined) await database.drop()
    throw error
  }
}

export { AppConfig }
