import { Data, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
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
    // A SqlError's own message is its reason's, generic ("PgConnection: Query failed"); PostgreSQL's
    // is on the reason's cause, the driver error (Effect 4: error.cause.cause.message).
    const text: Array<string> = []
    let current: unknown = this.cause
    for (let depth = 0; depth < 3 && typeof current === "object" && current !== null; depth++) {
      const { message, cause } = current as { readonly message?: unknown; readonly cause?: unknown }
      if (message !== undefined && String(message) !== "" && !text.includes(String(message))) text.push(String(message))
      current = cause
    }
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

/**
 * A migration file's statements, in order. @effect/sql-pg 4 speaks only the extended query
 * protocol, which runs one statement per message ("cannot insert multiple commands into a prepared
 * statement"), where node-postgres sent a whole file as one simple query. So the file is split at
 * top-level semicolons, skipping those inside quotes ('…', E'…', "…"), dollar quotes ($$…$$,
 * $tag$…$tag$) and comments (line comments and nested block comments); statements that are only
 * comments are dropped.
 */
export const splitStatements = (text: string): ReadonlyArray<string> => {
  const statements: Array<string> = []
  let start = 0
  let meaningful = false
  let i = 0
  const n = text.length
  const push = (end: number) => {
    const statement = text.slice(start, end).trim()
    if (meaningful && statement !== "") statements.push(statement)
    start = end + 1
    meaningful = false
  }
  while (i < n) {
    const c = text[i]!
    const next = text[i + 1]
    if (c === "-" && next === "-") {
      const eol = text.indexOf("\n", i)
      i = eol === -1 ? n : eol + 1
    } else if (c === "/" && next === "*") {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        if (text[i] === "/" && text[i + 1] === "*") {
          depth += 1
          i += 2
        } else if (text[i] === "*" && text[i + 1] === "/") {
          depth -= 1
          i += 2
        } else {
          i += 1
        }
      }
    } else if (c === "'" || c === '"') {
      // E'…' strings may escape a quote with a backslash; elsewhere a quote is doubled.
      const backslashes = c === "'" && i > 0 && /[eE]/.test(text[i - 1]!) && !/[A-Za-z0-9_]/.test(text[i - 2] ?? " ")
      meaningful = true
      i += 1
      while (i < n) {
        if (backslashes && text[i] === "\\") i += 2
        else if (text[i] === c && text[i + 1] === c) i += 2
        else if (text[i] === c) break
        else i += 1
      }
      i += 1
    } else if (c === "$") {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i))
      meaningful = true
      if (tag !== null && !/[A-Za-z0-9_]/.test(text[i - 1] ?? " ")) {
        const end = text.indexOf(tag[0], i + tag[0].length)
        i = end === -1 ? n : end + tag[0].length
      } else {
        i += 1
      }
    } else if (c === ";") {
      push(i)
      i += 1
    } else {
      if (!/\s/.test(c)) meaningful = true
      i += 1
    }
  }
  push(n)
  return statements
}

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
        for (const statement of splitStatements(migration.sql)) yield* sql.unsafe(statement).unprepared
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
