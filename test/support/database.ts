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

/**
 * `count` pending StockLevelChanged events as the service writes them (the envelope, correlation id
 * and traceparent) over 1,000 aggregates `${prefix}N`, interleaved, due after `dueIn`: a relay
 * backlog of realistic width (bench:relay's drain, the claim-plan tests).
 */
export const insertEventBacklog = (url: string, count: number, prefix: string, dueIn = "0 seconds") =>
  query(
    url,
    `INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id, traceparent, next_attempt_at)
     SELECT id, 'StockLevelChangedEvent', 'inventory.stock_level_changed', 'StockLevel', $2 || (n % 1000),
            jsonb_build_object('eventId', id, 'eventType', 'StockLevelChangedEvent', 'eventVersion', 1,
              'occurredAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              'aggregateType', 'StockLevel', 'aggregateId', $2 || (n % 1000), 'correlationId', 'bench',
              'data', jsonb_build_object('variantId', $2 || (n % 1000), 'onHand', n, 'reserved', 0, 'available', n,
                'version', n, 'changeType', 'PURCHASE', 'onHandChange', 1, 'reservedChange', 0)),
            'bench', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', now() + $3::interval
       FROM (SELECT n, gen_random_uuid() AS id FROM generate_series(1, $1::int) AS n) AS s`,
    [count, prefix, dueIn]
  )
