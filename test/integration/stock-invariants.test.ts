import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { deriveStatus } from "../../src/domain/StockLevel.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

describe("stock invariants in PostgreSQL", () => {
  let app: TestApp
  let api: ReturnType<typeof client>
  beforeAll(async () => {
    app = await startTestApp({ label: "invariants" })
    api = app.api
  })
  afterAll(() => app?.close())

  it("never oversells: 100 concurrent SALEs of 1 against stock 30 sell exactly 30, the rest get 409", async () => {
    await api.put("/v1/stock-levels/race-1", {})
    await api.post("/v1/stock-levels/race-1/adjustments", { type: "PURCHASE", quantity: 30 })
    const sales = await Promise.all(
      Array.from({ length: 100 }, () => api.post("/v1/stock-levels/race-1/adjustments", { type: "SALE", quantity: 1 }))
    )
    const statuses = sales.map((s) => s.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(30)
    expect(statuses.filter((s) => s === 409)).toHaveLength(70)
    const [row] = await query(app.database.url, "SELECT on_hand, reserved, version FROM stock_levels WHERE variant_id = 'race-1'")
    expect(row).toMatchObject({ on_hand: 0, reserved: 0, version: 32 })
    const [sum] = await query(app.database.url, "SELECT sum(on_hand_change)::int AS total, count(*)::int AS entries FROM inventory_history WHERE variant_id = 'race-1'")
    expect(sum).toMatchObject({ total: 0, entries: 31 })
    // Each accepted sale saw a distinct stock level: the history's running totals are 29..0.
    const afters = await query(app.database.url, "SELECT on_hand_after FROM inventory_history WHERE variant_id = 'race-1' AND type = 'SALE' ORDER BY id")
    expect(afters.map((r) => r.on_hand_after)).toEqual(Array.from({ length: 30 }, (_, i) => 29 - i))
  })

  it("keeps onHand equal to the sum of its history under mixed concurrent adjustments", async () => {
    await api.put("/v1/stock-levels/race-2", {})
    const kinds = ["PURCHASE", "SALE", "RETURN", "ADJUSTMENT", "RECOUNT"] as const
    const results = await Promise.all(
      Array.from({ length: 80 }, (_, i) => {
        const type = kinds[i % kinds.length]!
        const quantity = type === "ADJUSTMENT" ? (i % 2 === 0 ? 3 : -4) : type === "RECOUNT" ? i % 7 : (i % 5) + 1
        return api.post("/v1/stock-levels/race-2/adjustments", { type, quantity })
      })
    )
    expect(results.every((r) => r.status === 200 || r.status === 409)).toBe(true)
    const [level] = await query(app.database.url, "SELECT on_hand, version FROM stock_levels WHERE variant_id = 'race-2'")
    const [history] = await query(app.database.url, "SELECT coalesce(sum(on_hand_change), 0)::int AS total, count(*)::int AS entries FROM inventory_history WHERE variant_id = 'race-2'")
    expect(history!.total).toBe(level!.on_hand)
    expect(history!.entries).toBe(results.filter((r) => r.status === 200).length)
    expect(level!.version).toBe(1 + history!.entries)
  })

  it("refuses any write that would break 0 <= reserved <= onHand at a location, whatever the caller", async () => {
    await api.put("/v1/stock-levels/guard-1", {})
    const attempts = [
      "UPDATE location_stock SET on_hand = -1 WHERE variant_id = 'guard-1' AND location_id = 'default'",
      "UPDATE location_stock SET reserved = 1 WHERE variant_id = 'guard-1' AND location_id = 'default'",
      "UPDATE location_stock SET reserved = -1 WHERE variant_id = 'guard-1' AND location_id = 'default'",
      "UPDATE location_stock SET on_hand = 1000000001 WHERE variant_id = 'guard-1' AND location_id = 'default'"
    ]
    for (const sql of attempts) await expect(query(app.database.url, sql)).rejects.toThrow(/check constraint/)
  })

  it("refuses a direct write of a variant's totals: they are only ever the sums of its locations", async () => {
    await api.put("/v1/stock-levels/guard-2", {})
    for (const sql of [
      "UPDATE stock_levels SET on_hand = 5 WHERE variant_id = 'guard-2'",
      "UPDATE stock_levels SET reserved = 0, available = 3 WHERE variant_id = 'guard-2'",
      "INSERT INTO stock_levels (variant_id, on_hand) VALUES ('guard-3', 5)"
    ]) {
      await expect(query(app.database.url, sql)).rejects.toThrow(/location_stock|starts at 0/)
    }
    const [row] = await query(app.database.url, "SELECT on_hand, reserved, available FROM stock_levels WHERE variant_id = 'guard-2'")
    expect(row).toMatchObject({ on_hand: 0, reserved: 0, available: 0 })
  })

  it("derives the stored status by the same rule as the domain", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 50 }).chain((onHand) =>
          fc.record({ onHand: fc.constant(onHand), reserved: fc.integer({ min: 0, max: onHand }), threshold: fc.integer({ min: 0, max: 60 }) })
        ),
        async ({ onHand, reserved, threshold }) => {
          const variantId = `status-${Math.random().toString(36).slice(2)}`
          await query(app.database.url, "INSERT INTO stock_levels (variant_id, low_stock_threshold) VALUES ($1, $2)", [variantId, threshold])
          // The location row is where stock lives; the triggers roll it up into the variant's totals.
          await query(
            app.database.url,
            "INSERT INTO location_stock (variant_id, location_id, on_hand, reserved) VALUES ($1, 'default', $2, $3)",
            [variantId, onHand, reserved]
          )
          const [row] = await query(app.database.url, "SELECT status, on_hand, reserved FROM stock_levels WHERE variant_id = $1", [variantId])
          expect(row).toMatchObject({ on_hand: onHand, reserved })
          expect(row!.status).toBe(deriveStatus(onHand - reserved, threshold))
        }
      ),
      { numRuns: 60 }
    )
  })
})
