import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { appendFileSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { MainLive } from "../../src/App.js"
import { AppConfig, configFromMap } from "../../src/layers/Config.js"
import { LoggingLive, structuredLogger } from "../../src/layers/Logging.js"
import { bearer, TEST_AUDIENCE, TEST_ISSUER, testPublicKeyPem } from "./auth.js"
import { createTestDatabase, type TestDatabase } from "./database.js"
import { client } from "./http.js"

const testLogLevel = () =>
  ({ debug: LogLevel.Debug, info: LogLevel.Info, warn: LogLevel.Warning, error: LogLevel.Error })[
    process.env["TEST_LOG_LEVEL"] ?? "error"
  ] ?? LogLevel.Error

/**
 * The database password every test app is given (the test server trusts local connections, so it is
 * never checked): the log scan (test/support/log-scan.ts) proves it never reaches a log line.
 */
export const TEST_DB_PASSWORD = `s3cret-db-password-${process.pid}`

/**
 * With TEST_LOG_DIR set (vitest's globalSetup sets it), every app also writes all its log lines at
 * debug level to a file there, so a whole test run's logs can be searched for leaked secrets.
 */
const testLogging = () => {
  const consoleOnly = LoggingLive(testLogLevel())
  const dir = process.env["TEST_LOG_DIR"]
  if (dir === undefined) return consoleOnly
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `worker-${process.pid}.log`)
  const toFile = Logger.map(structuredLogger, (line) => appendFileSync(file, line + "\n"))
  // The console keeps the test level; the file gets everything.
  return Layer.mergeAll(
    Logger.replace(Logger.defaultLogger, Logger.filterLogLevel(Logger.map(structuredLogger, (line) => {
      process.stdout.write(line + "\n")
    }), (level) => LogLevel.greaterThanEqual(level, testLogLevel()))),
    Logger.add(toFile),
    Logger.minimumLogLevel(LogLevel.Debug)
  )
}

export interface TestApp {
  readonly baseUrl: string
  /** A client whose requests carry a valid token with every scope. */
  readonly api: ReturnType<typeof client>
  /** `{ authorization: "Bearer …" }` with every scope. */
  readonly authHeaders: Record<string, string>
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
  // A password the test server (trust authentication) never checks: the log scan looks for it.
  const url = new URL(databaseUrl)
  if (url.password === "") url.password = TEST_DB_PASSWORD
  const config = configFromMap({
    DATABASE_URL: url.toString(),
    PORT: "0",
    DB_POOL_MAX: "10",
    AUTH_PUBLIC_KEY: testPublicKeyPem,
    AUTH_ISSUER: TEST_ISSUER,
    AUTH_AUDIENCE: TEST_AUDIENCE,
    ...options.env
  })
  const runtime = ManagedRuntime.make(MainLive.pipe(Layer.provideMerge(config), Layer.provide(testLogging())))
  try {
    const address = await runtime.runPromise(HttpServer.addressWith(Effect.succeed))
    const port = address._tag === "TcpAddress" ? address.port : 0
    const baseUrl = `http://127.0.0.1:${port}`
    const authHeaders = await bearer()
    return {
      baseUrl,
      api: client(baseUrl, authHeaders),
      authHeaders,
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
