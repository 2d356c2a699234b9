import type { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option, Redacted, Runtime, String as Str } from "effect"
import pg from "pg"
import { AppConfig, type AppConfigShape } from "./Config.js"
import { embeddedPostgres } from "./EmbeddedPostgres.js"
import { instrumentPool } from "./SqlMetrics.js"


const acquirePool = (options: pg.PoolConfig, instrumented = true) =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const pool = new pg.Pool(options)
        // node-postgres emits errors of idle clients on the pool; unlogged they would vanish.
        pool.on("error", (error) =>
          Runtime.runFork(runtime)(Effect.logWarning("database pool: idle client error", error.message))
        )
        return pool
      }),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.timeout(Duration.seconds(5)), Effect.ignore)
    )
    if (instrumented) yield* instrumentPool(pool, options.max ?? 10)
    return pool
  })

const clientOptions = {
  transformResultNames: Str.snakeToCamel,
  transformQueryNames: Str.camelToSnake,
  applicationName: "inventory-service",
  // sql-pg sets the current `db.system.name`; tracing backends still key on the older `db.system`.
  spanAttributes: { "db.system": "postgresql" }
} as const

/**
 * `SqlClient` (and `PgClient`) for the whole service: a `pg.Pool` of `DB_POOL_MAX` connections to
 * `DATABASE_URL`, or, when it is unset, the embedded PGlite database behind a pool of exactly one.
 */
const basePoolOptions = (config: AppConfigShape): pg.PoolConfig => ({
  connectionTimeoutMillis: config.dbConnectTimeoutMs,
  idleTimeoutMillis: 30_000,
  application_name: "inventory-service",
  // A database that vanished without closing the socket (network partition) is otherwise only
  // noticed by the next query on that connection; keepalive probes find dead idle connections.
  keepAlive: true,
  keepAliveInitialDelayMillis: 10_000
})

const serverPoolOptions = (config: AppConfigShape, url: Redacted.Redacted, max: number): pg.PoolConfig => ({
  ...basePoolOptions(config),
  connectionString: Redacted.value(url),
  max,
  // Bound every statement in the database itself: interrupting a query from the client can
  // cancel the wrong statement once the pool reuses the connection (EFFECT-NOTES.md).
  statement_timeout: config.dbStatementTimeoutMs,
  idle_in_transaction_session_timeout: config.dbStatementTimeoutMs * 2
})

export const SqlLive = Layer.unwrapScoped(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const base = basePoolOptions(config)
    if (Option.isSome(config.databaseUrl)) {
      const pool = acquirePool(serverPoolOptions(config, config.databaseUrl.value, config.dbPoolMax))
      return PgClient.layerFromPool({ acquire: pool, ...clientOptions })
    }
    const embedded = yield* embeddedPostgres(config.dataDir)
    yield* Effect.logInfo("DATABASE_URL is unset: using the embedded PostgreSQL (PGlite)").pipe(
      Effect.annotateLogs("dataDir", embedded.pgdata)
    )
    const pool = acquirePool({ ...base, host: embedded.socketDir, user: "postgres", database: "postgres", max: 1 })
    return PgClient.layerFromPool({ acquire: pool, ...clientOptions })
  })
)

/** Connections of the outbox relay's own pool (per replica, on top of DB_POOL_MAX). */
export const RELAY_POOL_SIZE = 2

/**
 * The outbox relay's own small pool, so that its claim and mark statements never queue behind
 * request traffic on the main pool (commit-to-confirm latency). On the embedded database, which
 * must have exactly one connection, the relay shares the main client.
 */
export const RelaySqlLive = Layer.unwrapScoped(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (Option.isNone(config.databaseUrl)) {
      return Layer.effectContext(Effect.context<PgClient.PgClient | SqlClient.SqlClient>())
    }
    const pool = acquirePool(serverPoolOptions(config, config.databaseUrl.value, RELAY_POOL_SIZE), false)
    return PgClient.layerFromPool({ acquire: pool, ...clientOptions, applicationName: "inventory-service-relay" })
  })
)
