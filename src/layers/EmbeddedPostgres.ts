import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
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
export const embeddedPostgres = (dataDir: string) =>
  Effect.gen(function* () {
    const pgdata = resolve(dataDir, "pgdata")
    yield* Effect.try({
      try: () => mkdirSync(pgdata, { recursive: true }),
      catch: (cause) => new SqlError({ cause, message: `cannot create DATA_DIR ${dataDir}` })
    })
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => PGlite.create(pgdata),
        catch: (cause) => new SqlError({ cause, message: `cannot open the embedded database in ${pgdata}` })
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
        catch: (cause) => new SqlError({ cause, message: "cannot start the embedded database socket" })
      }),
      () => Effect.promise(() => server.stop()).pipe(Effect.ignore)
    )
    return { socketDir, pgdata }
  })
