import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { reconcile } from "../../src/services/Reconcile.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

const expectProblem = (res: { status: number; headers: Headers; body: any }, status: number, code: string) => {
  expect(res.status).toBe(status)
  expect(res.headers.get("content-type")).toContain("application/problem+json")
  expect(res.body).toMatchObject({ status, code, type: expect.any(String), title: expect.any(String), detail: expect.any(String) })
  expect(JSON.stringify(res.body)).not.toMatch(/\bat .*\.ts:\d+|SELECT|INSERT|UPDATE /)
}

describe("adjustments at a location over HTTP", () => {
  let app: TestApp
  let api: ReturnType<typeof client>
  beforeAll(async () => {
    app = await startTestApp({ label: "adjloc" })
    api = app.api
    await api.put("/v1/locations/wh-a", { name: "Warehouse A", priority: 10 })
    await api.put("/v1/locations/wh-b", { name: "Warehouse B", priority: 20 })
  })
  afterAll(() => app?.close())

  const adjust = (variantId: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    api.post(`/v1/stock-levels/${variantId}/adjustments`, body, headers)
  const rowsOf = (variantId: string) =>
    query(app.database.url, "SELECT location_id, on_hand, reserved FROM location_stock WHERE variant_id = $1 ORDER BY location_id", [variantId])
  const historyOf = (variantId: string) =>
    query(app.database.url, "SELECT location_id, type, on_hand_change, on_hand_after FROM inventory_history WHERE variant_id = $1 ORDER BY id", [
      variantId
    ])
  const levelEvents = (variantId: string) =>
    query(
      app.database.url,
      "SELECT payload FROM outbox WHERE aggregate_id = $1 AND event_type = 'StockLevelChangedEvent' ORDER BY id",
      [variantId]
    )
  /** The variant's totals are the sums of its locations (onHand, reserved) as the client reads them. */
  const expectTotalsAreSums = (level: any) => {
    expect(level.onHand).toBe(level.locations.reduce((sum: number, l: any) => sum + l.onHand, 0))
    expect(level.reserved).toBe(level.locations.reduce((sum: number, l: any) => sum + l.reserved, 0))
  }

  it("stocks the variant at the named location on a PURCHASE, with one history entry and event there", async () => {
    await api.put("/v1/stock-levels/al-1", {})
    await adjust("al-1", { type: "PURCHASE", quantity: 4 })
    const res = await adjust("al-1", { type: "PURCHASE", quantity: 6, locationId: "wh-a", reason: "delivery" })
    expect(res.status).toBe(200)
    expect(res.body.stockLevel).toMatchObject({ variantId: "al-1", onHand: 10, reserved: 0, available: 10, version: 3 })
    expect(res.body.stockLevel.locations.map((l: any) => [l.locationId, l.onHand, l.available])).toEqual([
      ["default", 4, 4],
      ["wh-a", 6, 6]
    ])
    expectTotalsAreSums(res.body.stockLevel)
    expect(res.body.entry).toMatchObject({
      variantId: "al-1",
      locationId: "wh-a",
      type: "PURCHASE",
      onHandChange: 6,
      reservedChange: 0,
      onHandAfter: 6,
      reservedAfter: 0,
      reason: "delivery"
    })
    expect(await historyOf("al-1")).toEqual([
      { location_id: "default", type: "PURCHASE", on_hand_change: 4, on_hand_after: 4 },
      { location_id: "wh-a", type: "PURCHASE", on_hand_change: 6, on_hand_after: 6 }
    ])
    const events = await levelEvents("al-1")
    expect(events).toHaveLength(2)
    expect(events[1]!.payload.data).toMatchObject({
      variantId: "al-1",
      onHand: 10,
      available: 10,
      version: 3,
      changeType: "PURCHASE",
      onHandChange: 6,
      locationId: "wh-a",
      location: { onHand: 6, reserved: 0, safetyStock: 0, available: 6 }
    })
    expect((await api.get("/v1/stock-levels/al-1")).body).toEqual(res.body.stockLevel)
  })

  it("applies SALE, RETURN, ADJUSTMENT and RECOUNT to the named location only", async () => {
    await api.put("/v1/stock-levels/al-2", {})
    await adjust("al-2", { type: "PURCHASE", quantity: 5 })
    await adjust("al-2", { type: "PURCHASE", quantity: 10, locationId: "wh-b" })
    const steps = [
      [{ type: "SALE", quantity: 3 }, 7],
      [{ type: "RETURN", quantity: 1 }, 8],
      [{ type: "ADJUSTMENT", quantity: -2 }, 6],
      [{ type: "RECOUNT", quantity: 9 }, 9]
    ] as const
    for (const [adjustment, onHand] of steps) {
      const res = await adjust("al-2", { ...adjustment, locationId: "wh-b" })
      expect(res.status).toBe(200)
      expect(res.body.entry).toMatchObject({ locationId: "wh-b", type: adjustment.type, onHandAfter: onHand })
      expect(res.body.stockLevel.onHand).toBe(5 + onHand)
      expectTotalsAreSums(res.body.stockLevel)
    }
    expect(await rowsOf("al-2")).toEqual([
      { location_id: "default", on_hand: 5, reserved: 0 },
      { location_id: "wh-b", on_hand: 9, reserved: 0 }
    ])
  })

  it("stocks the variant at the location on a RETURN and on a RECOUNT (also to 0)", async () => {
    await api.put("/v1/stock-levels/al-3", {})
    const returned = await adjust("al-3", { type: "RETURN", quantity: 2, locationId: "wh-a" })
    expect(returned.status).toBe(200)
    expect(returned.body.entry).toMatchObject({ locationId: "wh-a", onHandAfter: 2 })
    const counted = await adjust("al-3", { type: "RECOUNT", quantity: 0, locationId: "wh-b" })
    expect(counted.status).toBe(200)
    expect(counted.body.entry).toMatchObject({ locationId: "wh-b", type: "RECOUNT", onHandChange: 0, onHandAfter: 0 })
    // Every accepted adjustment is a new version of the variant, as in v1.
    expect(counted.body.stockLevel).toMatchObject({ onHand: 2, version: returned.body.stockLevel.version + 1 })
    expect(counted.body.stockLevel.locations.map((l: any) => l.locationId)).toEqual(["default", "wh-a", "wh-b"])
  })

  it("refuses a SALE or a negative ADJUSTMENT where the variant is not stocked with 409, stocking nothing", async () => {
    await api.put("/v1/stock-levels/al-4", {})
    await adjust("al-4", { type: "PURCHASE", quantity: 5 })
    const sale = await adjust("al-4", { type: "SALE", quantity: 1, locationId: "wh-a" })
    expectProblem(sale, 409, "insufficient-stock")
    expect(sale.body).toMatchObject({ variantId: "al-4", requested: 1, available: 0 })
    expectProblem(await adjust("al-4", { type: "ADJUSTMENT", quantity: -1, locationId: "wh-a" }), 409, "insufficient-stock")
    expect(await rowsOf("al-4")).toEqual([{ location_id: "default", on_hand: 5, reserved: 0 }])
    expect(await historyOf("al-4")).toHaveLength(1)
    expect(await levelEvents("al-4")).toHaveLength(1)
    expect((await api.get("/v1/stock-levels/al-4")).body).toMatchObject({ onHand: 5, version: 2 })
  })

  it("refuses a sale beyond the location's own stock even when other locations hold enough", async () => {
    await api.put("/v1/stock-levels/al-5", {})
    await adjust("al-5", { type: "PURCHASE", quantity: 50 })
    await adjust("al-5", { type: "PURCHASE", quantity: 2, locationId: "wh-a" })
    const res = await adjust("al-5", { type: "SALE", quantity: 3, locationId: "wh-a" })
    expectProblem(res, 409, "insufficient-stock")
    expect(res.body).toMatchObject({ requested: 3, available: 2 })
    expect(await rowsOf("al-5")).toEqual([
      { location_id: "default", on_hand: 50, reserved: 0 },
      { location_id: "wh-a", on_hand: 2, reserved: 0 }
    ])
  })

  it("answers 404 location-not-found for an unknown location, and variant-not-found first for an unknown variant", async () => {
    await api.put("/v1/stock-levels/al-6", {})
    const res = await adjust("al-6", { type: "PURCHASE", quantity: 1, locationId: "nowhere" })
    expectProblem(res, 404, "location-not-found")
    expect(res.body.locationId).toBe("nowhere")
    expect(await rowsOf("al-6")).toEqual([{ location_id: "default", on_hand: 0, reserved: 0 }])
    expectProblem(await adjust("al-ghost", { type: "PURCHASE", quantity: 1, locationId: "nowhere" }), 404, "variant-not-found")
  })

  it("compares expectedVersion with the variant's version, whatever the location", async () => {
    await api.put("/v1/stock-levels/al-7", {})
    await adjust("al-7", { type: "PURCHASE", quantity: 3 })
    // The variant is at version 2; wh-a has no row yet (and default's own version is 2 as well).
    const stale = await adjust("al-7", { type: "PURCHASE", quantity: 1, locationId: "wh-a", expectedVersion: 1 })
    expectProblem(stale, 409, "version-conflict")
    expect(stale.body).toMatchObject({ expectedVersion: 1, currentVersion: 2 })
    expect(await rowsOf("al-7")).toHaveLength(1)
    const ok = await adjust("al-7", { type: "PURCHASE", quantity: 1, locationId: "wh-a", expectedVersion: 2 })
    expect(ok.status).toBe(200)
    const next = await adjust("al-7", { type: "SALE", quantity: 1, locationId: "default", expectedVersion: 3 })
    expect(next.status).toBe(200)
    expect(next.body.stockLevel).toMatchObject({ onHand: 3, version: 4 })
  })

  it("refuses a malformed locationId with 400 validation-failed at /locationId", async () => {
    await api.put("/v1/stock-levels/al-8", {})
    for (const locationId of ["bad id", "", "x".repeat(129), 7, null]) {
      const res = await adjust("al-8", { type: "PURCHASE", quantity: 1, locationId })
      expectProblem(res, 400, "validation-failed")
      expect(res.body.errors.map((e: any) => e.path)).toContain("/locationId")
    }
    expect(await historyOf("al-8")).toHaveLength(0)
  })

  it("replays an Idempotency-Key retry at a location and refuses the key with another location (422)", async () => {
    await api.put("/v1/stock-levels/al-9", {})
    const key = { "idempotency-key": "al-9-key" }
    const first = await adjust("al-9", { type: "PURCHASE", quantity: 5, locationId: "wh-a" }, key)
    expect(first.status).toBe(200)
    const retry = await adjust("al-9", { type: "PURCHASE", quantity: 5, locationId: "wh-a" }, key)
    expect(retry.status).toBe(200)
    expect(retry.headers.get("idempotent-replayed")).toBe("true")
    expect(retry.body).toEqual(first.body)
    expectProblem(await adjust("al-9", { type: "PURCHASE", quantity: 5, locationId: "wh-b" }, key), 422, "idempotency-key-reused")
    expect(await rowsOf("al-9")).toEqual([
      { location_id: "default", on_hand: 0, reserved: 0 },
      { location_id: "wh-a", on_hand: 5, reserved: 0 }
    ])
    expect(await historyOf("al-9")).toHaveLength(1)
  })

  it("keeps the location's reserved units: an adjustment there cannot take onHand below them", async () => {
    await api.put("/v1/stock-levels/al-10", {})
    await adjust("al-10", { type: "PURCHASE", quantity: 4, locationId: "wh-a" })
    const reserved = await api.post("/v1/reservations", { orderId: "al-10-order", lines: [{ variantId: "al-10", quantity: 3 }] })
    expect(reserved.status).toBe(201)
    expectProblem(await adjust("al-10", { type: "RECOUNT", quantity: 2, locationId: "wh-a" }), 409, "insufficient-stock")
    const sale = await adjust("al-10", { type: "SALE", quantity: 1, locationId: "wh-a" })
    expect(sale.status).toBe(200)
    expect(sale.body.stockLevel).toMatchObject({ onHand: 3, reserved: 3, available: 0 })
    expectTotalsAreSums(sale.body.stockLevel)
  })
  it("refuses with 409 stock-limit-exceeded an adjustment taking the variant's total past 1,000,000,000", async () => {
    await api.put("/v1/stock-levels/al-11", {})
    expect((await adjust("al-11", { type: "PURCHASE", quantity: 1_000_000_000, locationId: "wh-a" })).status).toBe(200)
    const res = await adjust("al-11", { type: "PURCHASE", quantity: 1, locationId: "wh-b" })
    expectProblem(res, 409, "stock-limit-exceeded")
    expect(res.body).toMatchObject({ variantId: "al-11", limit: 1_000_000_000 })
    expect(await rowsOf("al-11")).toEqual([
      { location_id: "default", on_hand: 0, reserved: 0 },
      { location_id: "wh-a", on_hand: 1_000_000_000, reserved: 0 }
    ])
    // Within the limit again once stock left elsewhere.
    expect((await adjust("al-11", { type: "SALE", quantity: 1, locationId: "wh-a" })).status).toBe(200)
    expect((await adjust("al-11", { type: "PURCHASE", quantity: 1, locationId: "wh-b" })).status).toBe(200)
  })

  it("leaves every location row agreeing with its history and allocations, and every total with its locations", async () => {
    const report = await app.run(reconcile)
    expect(report.drifts).toEqual([])
    expect(report.locationRowsChecked).toBeGreaterThan(10)
  })
})
