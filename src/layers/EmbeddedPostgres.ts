import { Effect } from "effect"
import { SqlError } from "effect/sql"
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"

/**
 * The embedded default: PGlite (PostgreSQL compiled to WASM) persisted under `dataDir`, served over
 * the PostgreSQL wire protocol on a private Unix socket so that the service talks to it through the
 * very same `@effect/sql-pg` client, SQL and migrations as to a real server.
 *
 * PGlite runs one backend for every connection: with several connections, one inside a transaction
 * while others send parameterised queries, clients were handed each other's results. So the pool in
 * front of it MUST hold exactly one connection (see Sql.ts); transactions then queue on the pool.
 */
/** A start-up failure of the embedded database, as a `SqlError` (like any failure to reach a database). */
const failure = (cause: unknown, message: string) => new SqlError.SqlError({ reason: new SqlError.ConnectionError({ cause, message, operation: "open" }) })

/**
 * PGlite is an optional dependency, loaded only here: the production image is installed without it
 * (`npm ci --omit=optional`), and production refuses the embedded database before reaching this.
 */
const loadPglite = Effect.tryPromise({
  try: async () => {
    const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([import("@electric-sql/pglite"), import("@electric-sql/pglite-socket")])
    return { PGlite, PGLiteSocketServer }
  },
  catch: (cause) =>
    failure(cause, "DATABASE_URL is unset and the embedded database (@electric-sql/pglite, an optional dependency) is not installed")
})

export const embeddedPostgres = (dataDir: string) =>
  Effect.gen(function* () {
    const { PGlite, PGLiteSocketServer } = yield* loadPglite
    const pgdata = resolve(dataDir, "pgdata")
    yield* Effect.try({
      try: () => mkdirSync(pgdata, { recursive: true }),
      catch: (cause) => failure(cause, `cannot create DATA_DIR ${dataDir}`)
    })
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => PGlite.create(pgdata),
        catch: (cause) => failure(cause, `cannot open the embedded database in ${pgdata}`)
      }),
      (db) => Effect.promise(() => db.close()).pipe(Effect.ignore)
    )
    // A short private directory: Unix socket paths are limited to about 100 bytes.
    const socketDir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "inv-pg-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const server = new PGLiteSocketServer({ db, path: join(socketDir, ".s.PGSQL.5432"), maxConnections: 4 })
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => server.start(),
        catch: (cause) => failure(cause, "cannot start the embedded database socket")
      }),
      () => Effect.promise(() => server.stop()).pipe(Effect.ignore)
    )
    return { socketDir, pgdata }
  })
