import { SqlClient } from "@effect/sql"
import { Data, Effect, Layer } from "effect"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export interface Migration {
  readonly id: number
  readonly name: string
  readonly sql: string
}

export class MigrationFailed extends Data.TaggedError("MigrationFailed")<{
  readonly migration: string
  readonly cause: unknown
}> {
  override get message() {
    // A SqlError's own message is generic ("Failed to execute statement"); PostgreSQL's is in its cause.
    const outer = this.cause as { message?: unknown; cause?: { message?: unknown } } | undefined
    const text = [outer?.message, outer?.cause?.message].filter((m) => m !== undefined).map(String)
    return `migration ${this.migration} failed: ${text.length > 0 ? text.join(": ") : String(this.cause)}`
  }
}

/** The project root, found from this module whether it runs from src/ (tsx) or dist/src/ (node). */
const packageRoot = (): string => {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error("package.json not found above " + import.meta.url)
    dir = parent
  }
  return dir
}

export const defaultMigrationsDir = () => join(packageRoot(), "migrations")

/** `NNNN_name.sql` files in id order. */
export const readMigrations = (dir: string = defaultMigrationsDir()): ReadonlyArray<Migration> =>
  readdirSync(dir)
    .flatMap((file) => {
      const match = /^(\d+)_(.+)\.sql$/.exec(file)
      return match ? [{ id: Number(match[1]), name: match[2]!, sql: readFileSync(join(dir, file), "utf8") }] : []
    })
    .sort((a, b) => a.id - b.id)

// Any constant works; every replica must use the same one.
const MIGRATION_LOCK = 7_318_200_451

/**
 * Applies the pending migrations, each in its own transaction. Each transaction first takes a
 * transaction-scoped advisory lock, so replicas starting together apply every migration exactly once:
 * the others wait, then see it recorded and skip it. A failing migration rolls back whole.
 */
export const migrate = (migrations: ReadonlyArray<Migration> = readMigrations()) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const applied: Array<string> = []
    for (const migration of migrations) {
      const label = `${String(migration.id).padStart(4, "0")}_${migration.name}`
      const ran = yield* Effect.gen(function* () {
        yield* sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`
        yield* sql`CREATE TABLE IF NOT EXISTS schema_migrations (
          id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`
        const done = yield* sql`SELECT 1 FROM schema_migrations WHERE id = ${migration.id}`
        if (done.length > 0) return false
        yield* sql.unsafe(migration.sql)
        yield* sql`INSERT INTO schema_migrations (id, name) VALUES (${migration.id}, ${migration.name})`
        return true
      }).pipe(
        sql.withTransaction,
        Effect.mapError((cause) => new MigrationFailed({ migration: label, cause }))
      )
      if (ran) {
        applied.push(label)
        yield* Effect.logInfo("migration applied").pipe(Effect.annotateLogs("migration", label))
      }
    }
    return applied
  }).pipe(Effect.withSpan("migrate"))

/** The id of the newest migration recorded in the database (0 when none). */
export const latestAppliedMigration = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ latest: number | null }>`SELECT max(id) AS latest FROM schema_migrations`
  return rows[0]?.latest ?? 0
})

/** Runs the migrations while the service starts, before it accepts traffic. */
export const MigrationsLive = Layer.effectDiscard(migrate())
