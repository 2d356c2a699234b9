import { randomBytes } from "node:crypto"
import pg from "pg"

/** The PostgreSQL server the integration tests run against (each test file gets its own database). */
export const ADMIN_URL = process.env["TEST_DATABASE_ADMIN_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"

export interface TestDatabase {
  readonly name: string
  readonly url: string
  readonly drop: () => Promise<void>
}

const admin = async <A>(f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: ADMIN_URL })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

/** A fresh, empty database with a unique name; `drop` removes it even with connections left open. */
export const createTestDatabase = async (label = "t"): Promise<TestDatabase> => {
  const name = `inv_${label.replace(/[^a-z0-9]/gi, "").toLowerCase().slice(0, 20)}_${randomBytes(5).toString("hex")}`
  await admin((client) => client.query(`CREATE DATABASE ${name}`))
  const url = new URL(ADMIN_URL)
  url.pathname = `/${name}`
  return {
    name,
    url: url.toString(),
    drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined)
  }
}

/** Runs plain SQL against a test database (assertions read the tables directly). */
export const query = async <R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values: ReadonlyArray<unknown> = []
): Promise<ReadonlyArray<R>> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<R>(text, values as Array<unknown>)).rows
  } finally {
    await client.end()
  }
}

/**
 * Resolves once a session of this database waits for a lock (pg_stat_activity), its statement
 * containing `statementPart` when given; throws after about 5 s, so a test never goes on before the
 * interleaving it sets up has happened.
 */
export const untilWaitingForLock = async (url: string, statementPart = "") => {
  for (let i = 0; i < 200; i++) {
    const [row] = await query<{ n: string }>(
      url,
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND strpos(query, $1) > 0",
      [statementPart]
    )
    if (Number(row!.n) > 0) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`no statement${statementPart === "" ? "" : ` with "${statementPart}"`} waited for a lock`)
}
