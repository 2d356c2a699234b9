// Migrations against the real PostgreSQL: a failing migration changes nothing, and this build's
// migrations upgrade a database at the previous release's schema that already holds data.
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { Adjustment } from "../../src/domain/Adjustment.js"
import { migrate, readMigrations, type Migration } from "../../src/layers/Migrations.js"
import { fingerprint } from "../../src/services/Idempotency.js"
import { reconcile } from "../../src/services/Reconcile.js"
import { historyDrift } from "../../src/services/Retention.js"
import { startTestApp } from "../support/app.js"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"

/** The newest migration of the previous release (v1.1 shipped up to 0072_database_clock). Bump at each release. */
const PREVIOUS_RELEASE_MIGRATION = 72
/** The first release (v1.0.0 shipped 0001_init): upgrading from it must keep working too. */
const FIRST_RELEASE_MIGRATION = 1

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

/** What the service writes, in the first release's schema: levels, history, a reservation, outbox, inbox, idempotency. */
const fillFirstRelease = (url: string) =>
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

/**
 * What the service writes, in the previous release's schema (0072), in every table, consistent as the
 * service leaves it: history (part of it archived into the baseline and the archive), reservations
 * ACTIVE, COMMITTED, RELEASED and EXPIRED with their lines (`reserved` = the ACTIVE lines), outbox rows
 * published, pending and parked, inbox ids and idempotency keys.
 *   old-a: 4 archived + 6 bought, 3 reserved by order-1       -> onHand 10, reserved 3
 *   old-b: created, never changed                              -> 0, 0
 *   old-c: 9 bought, 2 sold                                    -> 7, 0
 *   old-d: 20 bought; order-2 reserved 2 and committed them, order-3 reserved 1 and released it,
 *          order-4 reserved 4 and expired, order-1 holds 5      -> 18, 5
 */
const fillPreviousRelease = (url: string) =>
  query(url, `
    INSERT INTO stock_levels (variant_id, sku, on_hand, reserved, low_stock_threshold, version, created_at, updated_at)
    VALUES ('old-a', 'SKU-A', 10, 3, 2, 4, now() - interval '400 days', now() - interval '1 day'),
           ('old-b', NULL, 0, 0, 0, 1, now() - interval '3 days', now() - interval '3 days'),
           ('old-c', 'SKU-C', 7, 0, 5, 3, now() - interval '2 days', now() - interval '1 day'),
           ('old-d', 'SKU-D', 18, 5, 17, 10, now() - interval '5 days', now() - interval '1 hour');
    INSERT INTO inventory_history (variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after,
                                   reason, reference, order_id, correlation_id, actor, created_at)
    VALUES ('old-a', 'PURCHASE', 4, 0, 4, 0, 'po', 'po-1', NULL, 'corr-1', 'svc:erp', now() - interval '400 days'),
           ('old-a', 'PURCHASE', 6, 0, 10, 0, NULL, NULL, NULL, NULL, NULL, now() - interval '2 days'),
           ('old-a', 'RESERVE', 0, 3, 10, 3, NULL, NULL, 'order-1', 'corr-o1', 'svc:orders', now() - interval '1 day'),
           ('old-c', 'PURCHASE', 9, 0, 9, 0, NULL, NULL, NULL, NULL, NULL, now() - interval '2 days'),
           ('old-c', 'SALE', -2, 0, 7, 0, 'sold', NULL, NULL, NULL, NULL, now() - interval '1 day'),
           ('old-d', 'PURCHASE', 20, 0, 20, 0, NULL, NULL, NULL, NULL, NULL, now() - interval '5 days'),
           ('old-d', 'RESERVE', 0, 2, 20, 2, NULL, NULL, 'order-2', NULL, NULL, now() - interval '4 days'),
           ('old-d', 'COMMIT', -2, -2, 18, 0, NULL, NULL, 'order-2', NULL, NULL, now() - interval '4 days'),
           ('old-d', 'RESERVE', 0, 1, 18, 1, NULL, NULL, 'order-3', NULL, NULL, now() - interval '3 days'),
           ('old-d', 'RELEASE', 0, -1, 18, 0, NULL, NULL, 'order-3', NULL, NULL, now() - interval '3 days'),
           ('old-d', 'RESERVE', 0, 4, 18, 4, NULL, NULL, 'order-4', NULL, NULL, now() - interval '2 days'),
           ('old-d', 'EXPIRE', 0, -4, 18, 0, NULL, NULL, 'order-4', NULL, NULL, now() - interval '2 days'),
           ('old-d', 'RESERVE', 0, 5, 18, 5, NULL, NULL, 'order-1', 'corr-o1', 'svc:orders', now() - interval '1 hour');
    -- Retention archived old-a's first entry (as Retention.ts does: archive, baseline, same transaction).
    WITH moved AS (
      DELETE FROM inventory_history WHERE variant_id = 'old-a' AND type = 'PURCHASE' AND reference = 'po-1'
      RETURNING id, variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason,
                reference, order_id, correlation_id, actor, created_at),
    archived AS (
      INSERT INTO inventory_history_archive (id, variant_id, type, on_hand_change, reserved_change, on_hand_after,
                                             reserved_after, reason, reference, order_id, correlation_id, actor, created_at)
      SELECT * FROM moved)
    INSERT INTO inventory_history_baseline (variant_id, on_hand, reserved, archived_through_id, archived_entries)
    SELECT variant_id, on_hand_change, reserved_change, id, 1 FROM moved;
    INSERT INTO reservations (order_id, status, expires_at, correlation_id, actor, created_at, updated_at)
    VALUES ('order-1', 'ACTIVE', now() + interval '10 minutes', 'corr-o1', 'svc:orders', now() - interval '1 day', now() - interval '1 hour'),
           ('order-2', 'COMMITTED', now() - interval '3 days', NULL, NULL, now() - interval '4 days', now() - interval '4 days'),
           ('order-3', 'RELEASED', now() - interval '2 days', NULL, NULL, now() - interval '3 days', now() - interval '3 days'),
           ('order-4', 'EXPIRED', now() - interval '2 days', NULL, NULL, now() - interval '2 days', now() - interval '2 days');
    INSERT INTO reservation_lines (order_id, variant_id, quantity)
    VALUES ('order-1', 'old-a', 3), ('order-1', 'old-d', 5), ('order-2', 'old-d', 2), ('order-3', 'old-d', 1), ('order-4', 'old-d', 4);
    INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, published_at, parked_at,
                        attempts, last_error, claimed_by, claimed_until)
    VALUES ('6f1c1d2e-0000-4000-8000-000000000001', 'StockLevelChanged', 'inventory.stock-level.changed', 'StockLevel', 'old-a', '{}', now(), NULL, 1, NULL, NULL, NULL),
           ('6f1c1d2e-0000-4000-8000-000000000002', 'StockLevelChanged', 'inventory.stock-level.changed', 'StockLevel', 'old-c', '{}', NULL, NULL, 0, NULL, 'pod-1:1:x', now() - interval '1 minute'),
           ('6f1c1d2e-0000-4000-8000-000000000003', 'InventoryReserved', 'inventory.reserved', 'Reservation', 'order-1', '{"lines":[]}', NULL, now(), 10, 'nacked', NULL, NULL);
    INSERT INTO inbox (message_id, consumer, event_type) VALUES ('msg-1', 'orders', 'OrderCancelled');
    INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body)
    VALUES ('adjustments:-', 'k-1', 'hash', 200, '{"ok":true}');
  `)

describe("migrations", () => {
  const all = readMigrations()

  it("a failing migration leaves the schema, the data and schema_migrations exactly as they were", async () => {
    const database = await freshDatabase("migfail")
    expect(Exit.isSuccess(await runMigrate(database.url, all.filter((m) => m.id <= PREVIOUS_RELEASE_MIGRATION)))).toBe(true)
    await fillPreviousRelease(database.url)
    expect(Exit.isSuccess(await runMigrate(database.url, all))).toBe(true)
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
        UPDATE location_stock SET on_hand = on_hand + 1;
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

  it("this build's migrations apply cleanly to a database at the first release's schema with data in it", async () => {
    const database = await freshDatabase("migupgrade")
    const previous = all.filter((m) => m.id <= FIRST_RELEASE_MIGRATION)
    const current = all.filter((m) => m.id > FIRST_RELEASE_MIGRATION)
    expect(Exit.isSuccess(await runMigrate(database.url, previous))).toBe(true)
    await fillFirstRelease(database.url)
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
      const api = app.api
      expect((await api.get("/health/ready")).status).toBe(200)
      expect((await api.get("/v1/stock-levels/old-a")).body).toMatchObject({ onHand: 10, reserved: 3, available: 7, status: "IN_STOCK" })
      expect((await api.get("/v1/stock-levels/old-c/history")).body.items.map((e: { onHandChange: number }) => e.onHandChange)).toEqual([-2, 9])
      expect(await app.run(historyDrift)).toEqual([])
      expect((await app.run(reconcile)).drifts).toEqual([])
    } finally {
      await app.close()
    }
  })

  it("0080 moves every stock level, reservation line and history entry of the previous release to the location default, unchanged", async () => {
    const database = await freshDatabase("miglocations")
    const url = database.url
    expect(Exit.isSuccess(await runMigrate(url, all.filter((m) => m.id <= PREVIOUS_RELEASE_MIGRATION)))).toBe(true)
    await fillPreviousRelease(url)
    const tables = (await query<{ relname: string }>(url,
      "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'schema_migrations' ORDER BY 1"
    )).map((r) => r.relname)
    // Every table of the previous release holds data.
    for (const table of tables) expect((await query(url, `SELECT 1 FROM "${table}" LIMIT 1`)).length, table).toBe(1)
    const before = await dataOf(url, tables)
    type Row = Record<string, unknown>
    const rowsOf = (table: string) => before[table] as Array<Row>

    const exit = await runMigrate(url, all)
    expect(exit).toEqual(Exit.succeed(all.filter((m) => m.id > PREVIOUS_RELEASE_MIGRATION).map((m) => `${String(m.id).padStart(4, "0")}_${m.name}`)))
    // Every row of the previous release keeps the values it had (new columns left out).
    expect(onColumnsOf(before, await dataOf(url, tables))).toEqual(onColumnsOf(before, before))

    // One location, default, and every variant stocked there with exactly its counts.
    expect(await query(url, "SELECT location_id, name, priority, active FROM locations")).toEqual([
      { location_id: "default", name: "Default", priority: 0, active: true }
    ])
    const levels = rowsOf("stock_levels")
    expect(await query(url, `
      SELECT variant_id, location_id, on_hand, reserved, safety_stock, version,
             to_jsonb(created_at) AS created_at, to_jsonb(updated_at) AS updated_at
        FROM location_stock ORDER BY variant_id`)).toEqual(
      levels.map((l) => ({
        variant_id: l["variant_id"], location_id: "default", on_hand: l["on_hand"], reserved: l["reserved"], safety_stock: 0,
        version: 1, created_at: l["created_at"], updated_at: l["updated_at"]
      })).sort((a, b) => String(a.variant_id).localeCompare(String(b.variant_id)))
    )
    // The totals: unchanged (above), their sums, and available / status by the v1 rule.
    expect(await query(url, `
      SELECT s.variant_id FROM stock_levels s JOIN location_stock ls USING (variant_id)
       WHERE s.on_hand <> ls.on_hand OR s.reserved <> ls.reserved OR s.available <> s.on_hand - s.reserved`)).toEqual([])
    expect(await query(url, "SELECT variant_id, available, status FROM stock_levels ORDER BY variant_id")).toEqual([
      { variant_id: "old-a", available: 7, status: "IN_STOCK" },
      { variant_id: "old-b", available: 0, status: "OUT_OF_STOCK" },
      { variant_id: "old-c", available: 7, status: "IN_STOCK" },
      { variant_id: "old-d", available: 13, status: "LOW_STOCK" }
    ])
    // Every reservation line, whatever its reservation's status, is one allocation at default.
    expect(await query(url, "SELECT order_id, variant_id, location_id, quantity FROM reservation_allocations ORDER BY order_id, variant_id")).toEqual(
      rowsOf("reservation_lines")
        .map((l) => ({ order_id: l["order_id"], variant_id: l["variant_id"], location_id: "default", quantity: l["quantity"] }))
        .sort((a, b) => JSON.stringify([a.order_id, a.variant_id]).localeCompare(JSON.stringify([b.order_id, b.variant_id])))
    )
    // History, archive and baseline: all at default.
    for (const table of ["inventory_history", "inventory_history_archive", "inventory_history_baseline"]) {
      expect(await query(url, `SELECT DISTINCT location_id FROM ${table}`), table).toEqual([{ location_id: "default" }])
      expect((await query(url, `SELECT 1 FROM ${table}`)).length, table).toBe(rowsOf(table).length)
    }
    // The database itself now refuses a direct write of the totals.
    await expect(query(url, "UPDATE stock_levels SET on_hand = on_hand + 1 WHERE variant_id = 'old-a'")).rejects.toThrow(
      /totals change only through location_stock/
    )

    const app = await startTestApp({ database })
    try {
      // Reconciliation on the migrated data: clean, every location row checked.
      const report = await app.run(reconcile)
      expect(report).toEqual({ variantsChecked: 4, locationRowsChecked: 4, drifts: [] })
      expect(await app.run(historyDrift)).toEqual([])

      // The v1 answers are what the previous release's rows say.
      const iso = (value: unknown) => new Date(value as string).toISOString()
      for (const level of levels) {
        const res = await app.api.get(`/v1/stock-levels/${level["variant_id"]}`)
        expect(res.status).toBe(200)
        const v1 = {
          variantId: level["variant_id"],
          sku: level["sku"],
          onHand: level["on_hand"],
          reserved: level["reserved"],
          available: (level["on_hand"] as number) - (level["reserved"] as number),
          lowStockThreshold: level["low_stock_threshold"],
          status: level["status"],
          version: level["version"],
          updatedAt: iso(level["updated_at"])
        }
        expect(res.body).toMatchObject(v1)
        expect(res.body.locations).toEqual([
          { locationId: "default", onHand: v1.onHand, reserved: v1.reserved, safetyStock: 0, available: v1.available, version: 1, updatedAt: v1.updatedAt }
        ])
      }
      const entries = rowsOf("inventory_history")
      for (const variantId of ["old-a", "old-c", "old-d"]) {
        const res = await app.api.get(`/v1/stock-levels/${variantId}/history?limit=100`)
        expect(res.status).toBe(200)
        expect(res.body.items).toEqual(
          entries
            .filter((e) => e["variant_id"] === variantId)
            .sort((a, b) => Number(b["id"]) - Number(a["id"]))
            .map((e) => expect.objectContaining({
              id: String(e["id"]), variantId, locationId: "default", type: e["type"],
              onHandChange: e["on_hand_change"], reservedChange: e["reserved_change"],
              onHandAfter: e["on_hand_after"], reservedAfter: e["reserved_after"],
              reason: e["reason"], reference: e["reference"], orderId: e["order_id"], correlationId: e["correlation_id"],
              createdAt: iso(e["created_at"])
            }))
        )
      }
      const reservations = rowsOf("reservations")
      for (const reservation of reservations) {
        const orderId = reservation["order_id"] as string
        const res = await app.api.get(`/v1/reservations/${orderId}`)
        expect(res.status).toBe(200)
        expect(res.body).toMatchObject({
          orderId,
          status: reservation["status"],
          expiresAt: iso(reservation["expires_at"]),
          createdAt: iso(reservation["created_at"]),
          updatedAt: iso(reservation["updated_at"])
        })
        const lines = rowsOf("reservation_lines").filter((l) => l["order_id"] === orderId)
        expect([...res.body.lines].sort((a: { variantId: string }, b: { variantId: string }) => a.variantId.localeCompare(b.variantId))).toEqual(
          lines
            .sort((a, b) => String(a["variant_id"]).localeCompare(String(b["variant_id"])))
            .map((l) => ({ variantId: l["variant_id"], quantity: l["quantity"], allocations: [{ locationId: "default", quantity: l["quantity"] }] }))
        )
      }

      // And the migrated data carries on under the model: release gives back exactly the allocation.
      expect((await app.api.post("/v1/reservations/order-1/release")).status).toBe(200)
      expect((await app.api.get("/v1/stock-levels/old-d")).body).toMatchObject({ onHand: 18, reserved: 0, available: 18 })
      expect((await app.run(reconcile)).drifts).toEqual([])
    } finally {
      await app.close()
    }
  })

  it("an adjustment answer stored under an Idempotency-Key before 0080 is given again after it, with the new fields", async () => {
    const database = await freshDatabase("migidem")
    const url = database.url
    expect(Exit.isSuccess(await runMigrate(url, all.filter((m) => m.id <= PREVIOUS_RELEASE_MIGRATION)))).toBe(true)
    await fillPreviousRelease(url)
    // What the previous release stored for old-c's SALE, sent with a key by the test client (the
    // actor of test tokens): the v1 AdjustmentResult, without the fields 0080 added.
    const [level] = await query<Record<string, unknown>>(url, "SELECT * FROM stock_levels WHERE variant_id = 'old-c'")
    const [sale] = await query<Record<string, unknown>>(url, "SELECT * FROM inventory_history WHERE variant_id = 'old-c' AND type = 'SALE'")
    const stored = {
      stockLevel: {
        variantId: "old-c", sku: "SKU-C", onHand: 7, reserved: 0, available: 7, lowStockThreshold: 5, status: "IN_STOCK",
        version: level!["version"], updatedAt: (level!["updated_at"] as Date).toISOString()
      },
      entry: {
        id: String(sale!["id"]), variantId: "old-c", type: "SALE", onHandChange: -2, reservedChange: 0, onHandAfter: 7, reservedAfter: 0,
        reason: "sold", reference: null, orderId: null, correlationId: null, createdAt: (sale!["created_at"] as Date).toISOString()
      }
    }
    const request = { type: "SALE", quantity: 2, reason: "sold" } as const
    await query(url, `
      INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body)
      VALUES ('adjustments:test-client', 'sale-before-upgrade', $1, 200, $2)`,
      [fingerprint({ variantId: "old-c", adjustment: new Adjustment(request) }), JSON.stringify(stored)])
    expect(Exit.isSuccess(await runMigrate(url, all))).toBe(true)

    const app = await startTestApp({ database })
    try {
      const replay = await app.api.post("/v1/stock-levels/old-c/adjustments", request, { "idempotency-key": "sale-before-upgrade" })
      expect(replay.status, JSON.stringify(replay.body)).toBe(200)
      expect(replay.headers.get("idempotent-replayed")).toBe("true")
      // The stored answer, plus the fields 0080 gave it: its one location, default, as the totals then.
      expect(replay.body).toEqual({
        stockLevel: {
          ...stored.stockLevel,
          locations: [{ locationId: "default", onHand: 7, reserved: 0, safetyStock: 0, available: 7, version: 1, updatedAt: stored.stockLevel.updatedAt }]
        },
        entry: { ...stored.entry, locationId: "default" }
      })
      // Nothing ran twice.
      expect((await app.api.get("/v1/stock-levels/old-c")).body).toMatchObject({ onHand: 7, version: level!["version"] })
    } finally {
      await app.close()
    }
  })
})
