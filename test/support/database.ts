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
