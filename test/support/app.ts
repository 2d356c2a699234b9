import { Effect, Layer, Logger, LogLevel, ManagedRuntime, References } from "effect"
import { HttpServer } from "effect/http"
import { SqlClient } from "effect/sql"
import { appendFileSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { MainLive } from "../../src/App.js"
import { AppConfig, configFromMap } from "../../src/layers/Config.js"
import { structuredLogger } from "../../src/layers/Logging.js"
import { bearer, TEST_AUDIENCE, TEST_ISSUER, testPublicKeyPem } from "./auth.js"
import { createTestDatabase, type TestDatabase } from "./database.js"
import { client } from "./http.js"
import { secretsIn } from "./redaction.js"

const testLogLevel = (): LogLevel.LogLevel =>
  ({ debug: "Debug", info: "Info", warn: "Warn", error: "Error" } as const satisfies Record<string, LogLevel.LogLevel>)[
    process.env["TEST_LOG_LEVEL"] ?? "error"
  ] ?? "Error"

/**
 * The database password every test app is given (the test server trusts local connections, so it is
 * never checked): log checks prove it never reaches a log line.
 */
export const TEST_DB_PASSWORD = `s3cret-db-password-${process.pid}`

/** With TEST_LOG_DIR set (vitest's globalSetup), log lines also go to a file there: global-setup.ts scans the whole run. */
const runLogFile = () => {
  const dir = process.env["TEST_LOG_DIR"]
  if (dir === undefined) return undefined
  mkdirSync(dir, { recursive: true })
  return join(dir, `worker-${process.pid}.log`)
}

export interface TestApp {
  readonly baseUrl: string
  /** A client whose requests carry a valid token with every scope. */
  readonly api: ReturnType<typeof client>
  /** `{ authorization: "Bearer …" }` with every scope. */
  readonly authHeaders: Record<string, string>
  readonly database: TestDatabase
  /** Runs an effect with the app's services (SqlClient, StockLevels, ...). */
  readonly run: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | Layer.Success<typeof MainLive>>) => Promise<A>
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
  // A password the test server (trust authentication) never checks: the log checks look for it.
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
  const lines: Array<string> = []
  const printFrom = testLogLevel()
  const file = runLogFile()
  const capture = Logger.make<unknown, void>((entry) => {
    const line = structuredLogger.log(entry)
    lines.push(line)
    if (file !== undefined) appendFileSync(file, line + "\n")
    if (LogLevel.isGreaterThanOrEqualTo(entry.logLevel, printFrom)) process.stdout.write(line + "\n")
  })
  // `Logger.layer` replaces the default loggers (was `Logger.replace(Logger.defaultLogger, …)`).
  const logging = Layer.merge(Logger.layer([capture]), Layer.succeed(References.MinimumLogLevel, "Debug"))
  // `provideMerge`: the loggers are context references in Effect 4, so `run` needs them in the runtime too.
  const runtime = ManagedRuntime.make(MainLive.pipe(Layer.provideMerge(config), Layer.provideMerge(logging)))
  try {
    const address = await runtime.runPromise(HttpServer.HttpServer.useSync((server) => server.address))
    const port = address._tag === "UnixPathAddress" ? 0 : address.port
    const baseUrl = `http://127.0.0.1:${port}`
    const authHeaders = await bearer()
    return {
      baseUrl,
      api: client(baseUrl, authHeaders),
      authHeaders,
      database,
      run: (effect) => runtime.runPromise(effect),
      logs: () => lines,
      close: async () => {
        await runtime.dispose()
        if (options.database === undefined) await database.drop()
        const leaks = secretsIn(lines, [TEST_DB_PASSWORD, ...(options.secrets ?? [])])
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
