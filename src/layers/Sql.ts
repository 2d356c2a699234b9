import { PgClient, type PgConnection, PgPool } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option, Redacted, Scope, Stream, String as Str } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient, type SqlConnection, SqlError, Statement } from "effect/sql"
import { join } from "node:path"
import { AppConfig, type AppConfigShape } from "./Config.js"
import { makeConnectionGate } from "./ConnectionGate.js"
import { embeddedPostgres } from "./EmbeddedPostgres.js"
import { instrumentPool, makePoolStats, timeStatements } from "./SqlMetrics.js"

/** A connection unused this long is closed by the pool (and no longer counted idle, SqlMetrics.ts). */
const IDLE_TIMEOUT_MS = 30_000

/**
 * Result names, snake_case to camelCase, computed once per distinct name: every row of every result
 * is re-keyed (a batch's locked stock rows have 15 columns, the relay's claimed events 12), and
 * `Str.snakeToCamel` builds each name a character at a time. Bounded, as nested JSON keys pass here too.
 */
const camelNames = new Map<string, string>()
const MAX_CAMEL_NAMES = 1_000
const snakeToCamel = (name: string): string => {
  const known = camelNames.get(name)
  if (known !== undefined) return known
  const camel = Str.snakeToCamel(name)
  if (camelNames.size < MAX_CAMEL_NAMES) camelNames.set(name, camel)
  return camel
}

const clientOptions = {
  transformResultNames: snakeToCamel,
  transformQueryNames: Str.camelToSnake,
  applicationName: "inventory-service",
  // sql-pg sets the current `db.system.name`; tracing backends still key on the older `db.system`.
  spanAttributes: { "db.system": "postgresql" }
} as const

/**
 * `SqlClient` for the whole service: a pool of `DB_POOL_MAX` connections to `DATABASE_URL`, or, when
 * it is unset, the embedded PGlite database behind a pool of exactly one.
 */
const baseOptions = (config: AppConfigShape): PgClient.PgPoolConfig => ({
  ...clientOptions,
  // Opening a connection; waiting for a free one is bounded in `checkout` below.
  connectTimeout: Duration.millis(config.dbConnectTimeoutMs),
  idleTimeout: Duration.millis(IDLE_TIMEOUT_MS),
  // A database that vanished without closing the socket (network partition) is otherwise only
  // noticed by the next query on that connection; keepalive probes find dead idle connections.
  keepAlive: Duration.seconds(10)
})

const serverOptions = (config: AppConfigShape, url: Redacted.Redacted, max: number): PgClient.PgPoolConfig => ({
  ...baseOptions(config),
  url,
  maxConnections: max,
  // Bound every statement in the database itself: it reports a retryable `StatementTimeoutError`
  // and does not depend on the client interrupting the query (EFFECT-NOTES.md).
  startupParameters: {
    statement_timeout: String(config.dbStatementTimeoutMs),
    idle_in_transaction_session_timeout: String(config.dbStatementTimeoutMs * 2)
  }
})

/** PgClient's own COMMIT (not exported by sql-pg): a COMMIT the server answers with ROLLBACK is an error. */
const commit = (connection: SqlConnection.Connection): Effect.Effect<void, SqlError.SqlError> =>
  Effect.flatMap(connection.executeRaw("COMMIT", []), (result) =>
    (result as { readonly command?: unknown }).command === "ROLLBACK"
      ? Effect.fail(
          new SqlError.SqlError({
            reason: new SqlError.UnknownError({
              cause: new Error("COMMIT rolled back an aborted transaction"),
              message: "PgClient: COMMIT rolled back an aborted transaction",
              operation: "commit"
            })
          })
        )
      : Effect.void
  )

/**
 * A pooled session as the SQL client's `Connection`: what sql-pg's PgClient wraps each session in
 * (its `ConnectionImpl`, not exported), for the statements this service runs. Made once per
 * session (`connectionOf`), not per checkout.
 */
const asConnection = (session: PgConnection.PgConnection): SqlConnection.Connection => {
  const rows = (sql: string, params: ReadonlyArray<unknown>, prepare?: boolean) =>
    Effect.map(session.query(sql, params, prepare), (result) => result.rows)
  return {
    execute: (sql, params, transformRows) => (transformRows ? Effect.map(rows(sql, params), transformRows) : rows(sql, params)),
    executeRaw: (sql, params) => session.query(sql, params),
    // Nothing here streams (cursors); kept whole, rows transformed one by one.
    executeStream: (sql, params, transformRows) =>
      transformRows ? Stream.flattenIterable(Stream.map(session.stream(sql, params), (row) => transformRows([row]))) : session.stream(sql, params),
    executeValues: (sql, params) => session.queryValues(sql, params),
    executeValuesUnprepared: (sql, params) => session.queryValues(sql, params, false),
    executeUnprepared: (sql, params, transformRows) =>
      transformRows ? Effect.map(rows(sql, params, false), transformRows) : rows(sql, params, false)
  }
}

/**
 * A pooled client whose every connection checkout (statement outside a transaction, transaction,
 * `sql.reserve`) is admitted by one `ConnectionGate`, the ONE place that bounds waiting for a
 * connection: @effect/sql-pg 4 bounds only opening one (`connectTimeout`), while node-postgres'
 * `connectionTimeoutMillis` covered waiting in a full pool too. A caller that has no connection
 * after `DB_CONNECT_TIMEOUT_MS` fails with a `ConnectionError` reason ("timeout exceeded when
 * trying to connect"), which Transactions.ts classifies as the database being unavailable (503).
 * It also keeps the pool's counts for the gauges and times statements (SqlMetrics.ts).
 *
 * The pool is sql-pg's own (`PgPool`: dead-connection handling, idle timeout), and so are the
 * compiler, COMMIT and savepoints (those PgClient uses). A statement outside a transaction borrows
 * a session for its one round trip (`PgPool.use` as the client's `borrower`: no scope, no
 * finalizer); a transaction or `sql.reserve` checks one out into its scope (`PgPool.get`). Neither
 * path copies the request's context (sql-pg's `reserve` did, in its `acquireRelease`), and no
 * checkout forks a fiber to race its deadline.
 */
const makeClient = (
  options: PgClient.PgPoolConfig,
  acquireTimeoutMs: number,
  instrumented: boolean
): Effect.Effect<SqlClient.SqlClient, SqlError.SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const pool = yield* PgPool.make(options)
    const maxConnections = options.maxConnections ?? 10
    const gate = makeConnectionGate(maxConnections, acquireTimeoutMs)
    const stats = makePoolStats(IDLE_TIMEOUT_MS, gate.waiting)
    if (instrumented) yield* instrumentPool(stats, maxConnections)
    const connections = new WeakMap<PgConnection.PgConnection, SqlConnection.Connection>()
    const connectionOf = (session: PgConnection.PgConnection) => {
      let connection = connections.get(session)
      if (connection === undefined) {
        connection = instrumented ? timeStatements(asConnection(session)) : asConnection(session)
        connections.set(session, connection)
      }
      return connection
    }
    const checkedOut = (session: PgConnection.PgConnection) => {
      stats.inUse += 1
      stats.checkedOut.add(session.processId)
    }
    const givenBack = (session: PgConnection.PgConnection) =>
      Effect.sync(() => {
        stats.inUse -= 1
        stats.checkedOut.delete(session.processId)
        stats.seen.set(session.processId, Date.now())
      })
    const unavailable = () =>
      new SqlError.SqlError({
        reason: new SqlError.ConnectionError({
          message: `no database connection within ${acquireTimeoutMs} ms`,
          operation: "acquire",
          cause: new Error("timeout exceeded when trying to connect")
        })
      })
    // Into the current scope: a transaction or `sql.reserve`. Exclusive without multiplexing (off
    // here), so `get` rather than `reserve`, whose `pin` is an acquireRelease that re-provides the
    // whole context it captured when it releases.
    const checkout: SqlConnection.Acquirer = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        yield* gate.enterScoped(unavailable)
        const session = yield* restore(pool.get)
        checkedOut(session)
        // Scope.addFinalizer, not Effect.addFinalizer: the latter captures the caller's context to
        // run the finalizer in, a copy of every service of the request; this bookkeeping needs none.
        yield* Scope.addFinalizer(yield* Effect.scope, givenBack(session))
        return connectionOf(session)
      })
    )
    // For one statement outside a transaction: the session is lent for its round trip only.
    const borrow = <A, E, R>(run: (connection: SqlConnection.Connection) => Effect.Effect<A, E, R>) =>
      gate.withPlace(
        unavailable,
        pool.use((session) => {
          checkedOut(session)
          return Effect.ensuring(run(connectionOf(session)), givenBack(session))
        })
      )
    return yield* SqlClient.make({
      acquirer: checkout,
      borrower: borrow,
      transactionAcquirer: checkout,
      driver: "pg",
      compiler: PgClient.makeCompiler(clientOptions.transformQueryNames),
      transformRows: Statement.defaultTransforms(clientOptions.transformResultNames).array,
      prepareTransactionControls: true,
      commit,
      releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
      // Not the db.system.name / db.namespace / server.address PgClient would add: in 4 a statement
      // span is named after the first of those present (Statement.spanName), and the runbooks and
      // trace queries of ops key on the Effect 3 name `sql.execute`, kept by leaving them out.
      spanAttributes: Object.entries(options.spanAttributes ?? {})
    })
  })

const clientLayer = (options: PgClient.PgPoolConfig, acquireTimeoutMs: number, instrumented: boolean) =>
  Layer.effect(SqlClient.SqlClient, makeClient(options, acquireTimeoutMs, instrumented)).pipe(Layer.provide(Reactivity.layer))

export const SqlLive: Layer.Layer<SqlClient.SqlClient, SqlError.SqlError, AppConfig> = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (Option.isSome(config.databaseUrl)) {
      return clientLayer(serverOptions(config, config.databaseUrl.value, config.dbPoolMax), config.dbConnectTimeoutMs, true)
    }
    const embedded = yield* embeddedPostgres(config.dataDir)
    yield* Effect.logInfo("DATABASE_URL is unset: using the embedded PostgreSQL (PGlite)").pipe(
      Effect.annotateLogs("dataDir", embedded.pgdata)
    )
    return clientLayer(
      {
        ...baseOptions(config),
        path: join(embedded.socketDir, ".s.PGSQL.5432"),
        username: "postgres",
        database: "postgres",
        maxConnections: 1
      },
      config.dbConnectTimeoutMs,
      true
    )
  })
)

/** Connections of the outbox relay's own pool (per replica, on top of DB_POOL_MAX). */
export const RELAY_POOL_SIZE = 2

/**
 * The outbox relay's own small pool, so that its claim and mark statements never queue behind
 * request traffic on the main pool (commit-to-confirm latency). On the embedded database, which
 * must have exactly one connection, the relay shares the main client.
 */
export const RelaySqlLive: Layer.Layer<SqlClient.SqlClient, SqlError.SqlError, AppConfig | SqlClient.SqlClient> = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (Option.isNone(config.databaseUrl)) {
      return Layer.effect(
        SqlClient.SqlClient,
        Effect.gen(function* () {
          return yield* SqlClient.SqlClient
        })
      )
    }
    return clientLayer(
      { ...serverOptions(config, config.databaseUrl.value, RELAY_POOL_SIZE), applicationName: "inventory-service-relay" },
      config.dbConnectTimeoutMs,
      false
    )
  })
)
