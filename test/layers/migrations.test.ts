// Migrations against the real PostgreSQL: a failing migration changes nothing, and this build's
// migrations upgrade a database at the previous release's schema that already holds data.
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { migrate, readMigrations, type Migration } from "../../src/layers/Migrations.js"
import { historyDrift } from "../../src/services/Retention.js"
import { startTestApp } from "../support/app.js"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"
import { client } from "../support/http.js"

/** The newest migration of the previous release (v1.0.0 shipped 0001_init). Bump at each release. */
const PREVIOUS_RELEASE_MIGRATION = 1

const databases: Array<TestDatabase> = []
afterAll(() => Promise.all(databases.map((d) => d.drop())))
const freshDatabase = async (label: string) => {
  const database = await createTestDatabase(label)
  databases.push(database)
  return database
}

const runMigrate = (url: string, migrations: ReadonlyArray<Migration>) =>
  Effect.runPromiseExit(
    migrate(migrations).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url) })), Effect.scoped)
  )

/** Tables, columns, constraints, indexes, sequences and views of the public schema. */
const schemaOf = async (url: string) => ({
  relations: await query(url, `
    SELECT c.relname, c.relkind FROM pg_class c
     WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname`),
  columns: await query(url, `
    SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default,
           is_identity, is_generated, generation_expression
      FROM information_schema.columns WHERE table_schema = 'public'
     ORDER BY table_name, ordinal_position`),
  constraints: await query(url, `
    SELECT conrelid::regclass::text AS relation, conname, pg_get_constraintdef(oid) AS definition
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`),
  indexes: await query(url, "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2")
})

/** Every row of every public table, as JSON in a stable order. */
const dataOf = async (url: string, tables?: ReadonlyArray<string>) => {
  const names =
    tables ??
    (await query<{ relname: string }>(url, "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1")).map(
      (r) => r.relname
    )
  const data: Record<string, unknown> = {}
  for (const name of names) {
    const [row] = await query<{ rows: unknown }>(
      url,
      `SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]') AS rows FROM "${name}" t`
    )
    data[name] = row!.rows
  }
  return data
}

/** `after`'s rows reduced to the columns `before` had, in a stable order. */
const onColumnsOf = (before: Record<string, unknown>, after: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(after).map(([table, rows]) => {
      const columns = Object.keys(((before[table] as Array<Record<string, unknown>>)[0]) ?? {})
      const projected = (rows as Array<Record<string, unknown>>).map((row) => Object.fromEntries(columns.map((c) => [c, row[c]])))
      return [table, projected.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))]
    })
  )

/** What the service writes, in the previous release's schema: levels, history, a reservation, outbox, inbox, idempotency. */
const fillPreviousRelease = (url: string) =>
  query(url, `
    INSERT INTO stock_levels (variant_id, sku, on_hand, reserved, low_stock_threshold)
    VALUES ('old-a', 'SKU-A', 10, 3, 2), ('old-b', NULL, 0, 0, 0), ('old-c', 'SKU-C', 7, 0, 5);
    INSERT INTO inventory_history (variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, created_at)
    VALUES ('old-a', 'PURCHASE', 10, 0, 10, 0, 'po', now() - interval '400 days'),
           ('old-a', 'RESERVE', 0, 3, 10, 3, NULL, now() - interval '1 day'),
           ('old-c', 'PURCHASE', 9, 0, 9, 0, NULL, now() - interval '2 days'),
           ('old-c', 'SALE', -2, 0, 7, 0, NULL, now() - interval '1 day');
    INSERT INTO reservations (order_id, status, expires_at) VALUES ('order-1', 'ACTIVE', now() + interval '10 minutes');
    INSERT INTO reservation_lines (order_id, variant_id, quantity) VALUES ('order-1', 'old-a', 3);
    INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, published_at)
    VALUES ('6f1c1d2e-0000-4000-8000-000000000001', 'StockLevelChanged', 'inventory.stock-level.changed', 'StockLevel', 'old-a', '{}', now()),
           ('6f1c1d2e-0000-4000-8000-000000000002', 'StockLevelChanged', 'inventory.stock-level.changed', 'StockLevel', 'old-c', '{}', NULL);
    INSERT INTO inbox (message_id, consumer, event_type) VALUES ('msg-1', 'orders', 'OrderCancelled');
    INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body)
    VALUES ('adjustments:-', 'k-1', 'hash', 200, '{"ok":true}');
  `)

describe("migrations", () => {
  const all = readMigrations()

  it("a failing migration leaves the schema, the data and schema_migrations exactly as they were", async () => {
    const database = await freshDatabase("migfail")
    expect(Exit.isSuccess(await runMigrate(database.url, all))).toBe(true)
    await fillPreviousRelease(database.url)
    const schemaBefore = await schemaOf(database.url)
    const dataBefore = await dataOf(database.url)

    // Changes schema and data, then fails halfway.
    const failing: Migration = {
      id: 9999,
      name: "deliberately_failing",
      sql: `
        CREATE TABLE doomed (id integer PRIMARY KEY);
        INSERT INTO doomed VALUES (1);
        ALTER TABLE stock_levels ADD COLUMN doomed integer;
        CREATE INDEX doomed_sku ON stock_levels (sku);
        UPDATE stock_levels SET on_hand = on_hand + 1;
        DELETE FROM inbox;
        SELECT 1 / 0;`
    }
    const exit = await runMigrate(database.url, [...all, failing])
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(Exit.isFailure(exit) ? exit.cause : "")).toMatch(/9999_deliberately_failing.*division by zero/)

    expect(await schemaOf(database.url)).toEqual(schemaBefore)
    expect(await dataOf(database.url)).toEqual(dataBefore)
    expect(await query(database.url, "SELECT id FROM schema_migrations ORDER BY id")).toEqual(all.map((m) => ({ id: m.id })))
  })

  it("this build's migrations apply cleanly to a database at the previous release's schema with data in it", async () => {
    const database = await freshDatabase("migupgrade")
    const previous = all.filter((m) => m.id <= PREVIOUS_RELEASE_MIGRATION)
    const current = all.filter((m) => m.id > PREVIOUS_RELEASE_MIGRATION)
    expect(Exit.isSuccess(await runMigrate(database.url, previous))).toBe(true)
    await fillPreviousRelease(database.url)
    const oldTables = (await query<{ relname: string }>(database.url,
      "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'schema_migrations' ORDER BY 1"
    )).map((r) => r.relname)
    const dataBefore = await dataOf(database.url, oldTables).then((data) => onColumnsOf(data, data))

    const exit = await runMigrate(database.url, all)
    expect(exit).toEqual(Exit.succeed(current.map((m) => `${String(m.id).padStart(4, "0")}_${m.name}`)))
    // Every row of the previous release is still there with the values it had (columns added since
    // are left out of the comparison).
    expect(onColumnsOf(dataBefore, await dataOf(database.url, oldTables))).toEqual(dataBefore)
    expect(await query(database.url, "SELECT id FROM schema_migrations ORDER BY id")).toEqual(all.map((m) => ({ id: m.id })))
    // Migrating again is a no-op.
    expect(await runMigrate(database.url, all)).toEqual(Exit.succeed([]))

    // The service starts on the upgraded database, serves the old data and reconciles.
    const app = await startTestApp({ database })
    try {
      const api = client(app.baseUrl)
      expect((await api.get("/health/ready")).status).toBe(200)
      expect((await api.get("/v1/stock-levels/old-a")).body).toMatchObject({ onHand: 10, reserved: 3, available: 7, status: "IN_STOCK" })
      expect((await api.get("/v1/stock-levels/old-c/history")).body.items.map((e: { onHandChange: number }) => e.onHandChange)).toEqual([-2, 9])
      expect(await app.run(historyDrift)).toEqual([])
    } finally {
      await app.close()
    }
  })
})
