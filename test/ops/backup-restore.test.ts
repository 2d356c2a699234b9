// The whole data path of a restore: a database filled through the API (stock levels, history, some
// of it archived by the retention sweep), backed up with scripts/backup, restored with scripts/restore
// into a fresh database, and a second service started on it must answer exactly the same.
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { historyDrift, Retention } from "../../src/services/Retention.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"
import { bearer } from "../support/auth.js"
import { client } from "../support/http.js"
import { reconcile } from "../../src/services/Reconcile.js"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const VARIANTS = 40
const workDir = mkdtempSync(path.join(tmpdir(), "inventory-api-backup-"))

const script = (name: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(path.join(root, "scripts", name), args, {
    encoding: "utf8",
    cwd: workDir,
    env: { ...process.env, DATABASE_URL: "", TARGET_DATABASE_URL: "" }
  })
  expect(result.status, result.stderr).toBe(0)
  return result.stdout
}

const ORDERS = Array.from({ length: 24 }, (_, i) => `order-${String(i).padStart(3, "0")}`)

/** Everything a client can read: every stock level page, every variant's full history, every reservation. */
const readAll = async (baseUrl: string) => {
  const api = client(baseUrl, await bearer())
  const levels: Array<{ variantId: string }> = []
  for (let cursor: string | null = null, first = true; first || cursor !== null; first = false) {
    const page: { status: number; body: any } = await api.get(`/v1/stock-levels?limit=7${cursor ? `&cursor=${cursor}` : ""}`)
    expect(page.status).toBe(200)
    levels.push(...page.body.items)
    cursor = page.body.nextCursor
  }
  const history: Record<string, Array<unknown>> = {}
  for (const { variantId } of levels) {
    history[variantId] = []
    for (let cursor: string | null = null, first = true; first || cursor !== null; first = false) {
      const page: { status: number; body: any } = await api.get(`/v1/stock-levels/${variantId}/history?limit=4${cursor ? `&cursor=${cursor}` : ""}`)
      expect(page.status).toBe(200)
      history[variantId].push(...page.body.items)
      cursor = page.body.nextCursor
    }
  }
  const batch = await api.get(`/v1/stock-levels?${levels.slice(0, 20).map((l) => `variantId=${l.variantId}`).join("&")}`)
  const reservations = await Promise.all(ORDERS.map(async (orderId) => (await api.get(`/v1/reservations/${orderId}`)).body))
  return { levels, history, batch: batch.body, reservations }
}

/** The tables the API does not show, row for row. */
const hiddenTables = async (url: string) => ({
  locations: await query(url, "SELECT * FROM locations ORDER BY location_id"),
  locationStock: await query(url, "SELECT * FROM location_stock ORDER BY variant_id, location_id"),
  allocations: await query(url, "SELECT * FROM reservation_allocations ORDER BY order_id, variant_id, location_id"),
  totals: await query(url, "SELECT variant_id, on_hand, reserved, available, version, updated_at FROM stock_levels ORDER BY variant_id"),
  baseline: await query(url, "SELECT * FROM inventory_history_baseline ORDER BY variant_id, location_id"),
  archive: await query(url, "SELECT * FROM inventory_history_archive ORDER BY id"),
  outbox: await query(url, "SELECT * FROM outbox ORDER BY id"),
  idempotency: await query(url, "SELECT * FROM idempotency_keys ORDER BY scope, key"),
  migrations: await query(url, "SELECT id, name FROM schema_migrations ORDER BY id")
})

describe("backup and restore through the API", () => {
  let source: TestApp
  let restoredDb: TestDatabase
  let restored: TestApp | undefined

  beforeAll(async () => {
    source = await startTestApp({ label: "bkpsrc", env: { HISTORY_RETENTION_DAYS: "30", RETENTION_SWEEP_INTERVAL_MS: "86400000" } })
    restoredDb = await createTestDatabase("bkpdst")
  })
  afterAll(async () => {
    await restored?.close()
    await restoredDb?.drop()
    await source?.close()
    rmSync(workDir, { recursive: true, force: true })
  })

  it("restores every stock level, reservation and history entry identically, and reconciliation is clean", async () => {
    const api = client(source.baseUrl, await bearer())
    for (let v = 0; v < VARIANTS; v++) {
      const id = `bkp-${String(v).padStart(3, "0")}`
      expect((await api.put(`/v1/stock-levels/${id}`, { sku: `SKU-${v}`, lowStockThreshold: v % 5 })).status).toBe(201)
      await api.post(`/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: 10 + v, reference: `po-${v}` })
      await api.post(`/v1/stock-levels/${id}/adjustments`, { type: "SALE", quantity: v % 7 + 1, reason: "sold" }, { "idempotency-key": `sale-${v}` })
      if (v % 3 === 0) await api.post(`/v1/stock-levels/${id}/adjustments`, { type: "RECOUNT", quantity: v })
      if (v % 4 === 0) await api.post(`/v1/stock-levels/${id}/adjustments`, { type: "RETURN", quantity: 2 })
      if (v % 5 === 0) await api.post(`/v1/stock-levels/${id}/adjustments`, { type: "ADJUSTMENT", quantity: -1, reason: "damaged" })
    }
    // Reservations in every state: active (long ttl), released, committed, over one or two variants.
    for (const [i, orderId] of ORDERS.entries()) {
      const lines = [{ variantId: `bkp-${String(i + 10).padStart(3, "0")}`, quantity: 1 + (i % 3) }]
      if (i % 2 === 0) lines.push({ variantId: `bkp-${String(i + 11).padStart(3, "0")}`, quantity: 1 })
      expect((await api.post("/v1/reservations", { orderId, lines, ttlSeconds: 86_400 })).status).toBe(201)
      if (i % 3 === 1) expect((await api.post(`/v1/reservations/${orderId}/release`)).status).toBe(200)
      if (i % 3 === 2) expect((await api.post(`/v1/reservations/${orderId}/commit`)).status).toBe(200)
    }
    // A second location (no endpoint yet), where some variants are stocked too, as the service writes
    // it (variant row locked first, history at that location): the dump must carry every location row.
    await query(source.database.url, "INSERT INTO locations (location_id, name, priority) VALUES ('bkp-store', 'Store', 10)")
    for (let v = 0; v < VARIANTS; v += 4) {
      const id = `bkp-${String(v).padStart(3, "0")}`
      await query(source.database.url, "INSERT INTO location_stock (variant_id, location_id, safety_stock) VALUES ($1, 'bkp-store', $2)", [id, v % 3])
      await query(source.database.url, `
        WITH v AS (SELECT 1 FROM stock_levels WHERE variant_id = $1 FOR UPDATE),
             s AS (UPDATE location_stock SET on_hand = on_hand + $2
                    WHERE variant_id = $1 AND location_id = 'bkp-store' AND EXISTS (SELECT 1 FROM v)
                   RETURNING on_hand, reserved)
        INSERT INTO inventory_history (variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after)
        SELECT $1, 'bkp-store', 'PURCHASE', $2, 0, on_hand, reserved FROM s`, [id, 3 + v])
    }
    // Part of the history is old enough to be archived: the backup must carry the baseline with it.
    await query(source.database.url, "UPDATE inventory_history SET created_at = created_at - interval '90 days' WHERE id % 3 = 0")
    const swept = await source.run(Effect.flatMap(Retention, (r) => r.sweepOnce()))
    expect(swept.inventory_history).toBeGreaterThan(0)
    expect(await source.run(historyDrift)).toEqual([])

    const before = await readAll(source.baseUrl)
    expect(before.levels).toHaveLength(VARIANTS)
    expect(new Set(before.reservations.map((r: any) => r.status))).toEqual(new Set(["ACTIVE", "RELEASED", "COMMITTED"]))
    const hiddenBefore = await hiddenTables(source.database.url)
    expect(new Set(hiddenBefore.locationStock.map((r) => r["location_id"]))).toEqual(new Set(["default", "bkp-store"]))
    expect(hiddenBefore.allocations.length).toBeGreaterThan(0)

    const dump = path.join(workDir, "inventory.dump")
    console.log(script("backup", ["--database-url", source.database.url, dump]).trim())
    const restoreOut = script("restore", [dump, restoredDb.url])
    expect(restoreOut).toContain(`stock levels equal the sums of their locations (${hiddenBefore.locationStock.length} location rows)`)
    const elapsed = /elapsed ([\d.]+) s/.exec(restoreOut)?.[1]
    const entries = Object.values(before.history).reduce((n, h) => n + h.length, 0)
    console.log(
      `restore through the API test: ${VARIANTS} stock levels, ${entries} history entries, ` +
        `${hiddenBefore.archive.length} archived: restore elapsed ${elapsed} s`
    )

    restored = await startTestApp({ database: restoredDb })
    expect((await client(restored.baseUrl, await bearer()).get("/health/ready")).status).toBe(200)
    const after = await readAll(restored.baseUrl)
    expect(after).toEqual(before)
    expect(await hiddenTables(restoredDb.url)).toEqual(hiddenBefore)
    expect(await restored.run(historyDrift)).toEqual([])
    expect((await restored.run(reconcile)).drifts).toEqual([])

    // The restored service carries on: same idempotent answer, new entries after the restored ids.
    const replay = await client(restored.baseUrl, await bearer()).post(
      "/v1/stock-levels/bkp-001/adjustments",
      { type: "SALE", quantity: 2, reason: "sold" },
      { "idempotency-key": "sale-1" }
    )
    expect(replay.status).toBe(200)
    expect(replay.body.stockLevel).toEqual(after.levels[1])
    const next = await client(restored.baseUrl, await bearer()).post("/v1/stock-levels/bkp-001/adjustments", { type: "PURCHASE", quantity: 1 })
    expect(next.status).toBe(200)
    const maxId = Math.max(...Object.values(before.history).flat().map((e) => Number((e as { id: string }).id)))
    expect(Number(next.body.entry.id)).toBeGreaterThan(maxId)
    expect(await restored.run(historyDrift)).toEqual([])
  })
})
