import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { reconcile } from "../../src/services/Reconcile.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { bearer } from "../support/auth.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

const expectProblem = (res: { status: number; headers: Headers; body: any }, status: number, code: string) => {
  expect(res.status).toBe(status)
  expect(res.headers.get("content-type")).toContain("application/problem+json")
  expect(res.body).toMatchObject({ status, code, type: expect.any(String), title: expect.any(String), detail: expect.any(String) })
  expect(JSON.stringify(res.body)).not.toMatch(/\bat .*\.ts:\d+|SELECT|INSERT|UPDATE /)
}

describe("POST /v1/stock-levels/{variantId}/transfers", () => {
  let app: TestApp
  let api: ReturnType<typeof client>
  beforeAll(async () => {
    app = await startTestApp({ label: "transfers" })
    api = app.api
    await api.put("/v1/locations/wh-a", { name: "Warehouse A", priority: 10 })
    await api.put("/v1/locations/wh-b", { name: "Warehouse B", priority: 20 })
  })
  afterAll(() => app?.close())

  const transfer = (variantId: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    api.post(`/v1/stock-levels/${variantId}/transfers`, body, headers)
  const purchase = (variantId: string, quantity: number, locationId = "default") =>
    api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity, locationId })
  /** A variant with `onHand` units at `default`. */
  const variantWith = async (variantId: string, onHand: number) => {
    await api.put(`/v1/stock-levels/${variantId}`, {})
    if (onHand > 0) expect((await purchase(variantId, onHand)).status).toBe(200)
  }
  const rowsOf = (variantId: string) =>
    query(app.database.url, "SELECT location_id, on_hand, reserved FROM location_stock WHERE variant_id = $1 ORDER BY location_id", [variantId])
  const historyOf = (variantId: string) =>
    query(app.database.url, "SELECT location_id, type, on_hand_change, on_hand_after FROM inventory_history WHERE variant_id = $1 ORDER BY id", [
      variantId
    ])
  const eventsOf = (variantId: string) =>
    query(app.database.url, "SELECT event_type, payload FROM outbox WHERE aggregate_id = $1 ORDER BY id", [variantId])
  const totalsOf = async (variantId: string) =>
    (await query(app.database.url, "SELECT on_hand, reserved, available, version FROM stock_levels WHERE variant_id = $1", [variantId]))[0]

  it("moves onHand between two locations in one answer: the stock level and the TRANSFER_OUT and TRANSFER_IN entries", async () => {
    await variantWith("tr-1", 10)
    await purchase("tr-1", 1, "wh-a")
    const res = await transfer("tr-1", { fromLocationId: "default", toLocationId: "wh-a", quantity: 4, reason: "rebalance", reference: "T-1" })
    expect(res.status).toBe(200)
    expect(res.body.stockLevel).toMatchObject({ variantId: "tr-1", onHand: 11, reserved: 0, available: 11, version: 5 })
    expect(res.body.stockLevel.locations.map((l: any) => [l.locationId, l.onHand, l.available])).toEqual([
      ["default", 6, 6],
      ["wh-a", 5, 5]
    ])
    expect(res.body.entries).toEqual([
      expect.objectContaining({
        variantId: "tr-1",
        locationId: "default",
        type: "TRANSFER_OUT",
        onHandChange: -4,
        reservedChange: 0,
        onHandAfter: 6,
        reservedAfter: 0,
        reason: "rebalance",
        reference: "T-1",
        orderId: null
      }),
      expect.objectContaining({ variantId: "tr-1", locationId: "wh-a", type: "TRANSFER_IN", onHandChange: 4, onHandAfter: 5, reason: "rebalance" })
    ])
    expect((await api.get("/v1/stock-levels/tr-1")).body).toEqual(res.body.stockLevel)
    const history = await api.get("/v1/stock-levels/tr-1/history")
    expect(history.body.items.slice(0, 2).map((e: any) => [e.type, e.locationId, e.onHandChange])).toEqual([
      ["TRANSFER_IN", "wh-a", 4],
      ["TRANSFER_OUT", "default", -4]
    ])
  })

  it("writes two StockLevelChangedEvents, each with its location and the variant's totals after its step", async () => {
    await variantWith("tr-2", 8)
    await transfer("tr-2", { fromLocationId: "default", toLocationId: "wh-b", quantity: 3 })
    const changed = (await eventsOf("tr-2")).filter((e) => e.event_type === "StockLevelChangedEvent").slice(-2)
    expect(changed.map((e) => e.payload.data)).toEqual([
      {
        variantId: "tr-2",
        onHand: 5,
        reserved: 0,
        available: 5,
        version: 3,
        changeType: "TRANSFER_OUT",
        onHandChange: -3,
        reservedChange: 0,
        locationId: "default",
        location: { onHand: 5, reserved: 0, safetyStock: 0, available: 5, version: 3 }
      },
      {
        variantId: "tr-2",
        onHand: 8,
        reserved: 0,
        available: 8,
        version: 4,
        changeType: "TRANSFER_IN",
        onHandChange: 3,
        reservedChange: 0,
        locationId: "wh-b",
        location: { onHand: 3, reserved: 0, safetyStock: 0, available: 3, version: 2 }
      }
    ])
    expect(changed.every((e) => e.payload.aggregateType === "StockLevel" && e.payload.aggregateId === "tr-2")).toBe(true)
    // The variant's status did not change: no StockStatusChangedEvent beyond the purchase's.
    expect((await eventsOf("tr-2")).filter((e) => e.event_type === "StockStatusChangedEvent")).toHaveLength(1)
  })

  it("stocks the destination first when the variant is not stocked there", async () => {
    await variantWith("tr-3", 5)
    expect(await rowsOf("tr-3")).toHaveLength(1)
    const res = await transfer("tr-3", { fromLocationId: "default", toLocationId: "wh-b", quantity: 5 })
    expect(res.status).toBe(200)
    expect(await rowsOf("tr-3")).toEqual([
      { location_id: "default", on_hand: 0, reserved: 0 },
      { location_id: "wh-b", on_hand: 5, reserved: 0 }
    ])
    expect(res.body.stockLevel).toMatchObject({ onHand: 5, available: 5, status: "IN_STOCK" })
  })

  it("refuses more than the source's available (reserved units and safety stock stay) with 409, changing nothing", async () => {
    await variantWith("tr-4", 10)
    expect((await api.put("/v1/stock-levels/tr-4/locations/default", { safetyStock: 2 })).status).toBe(200)
    const reserved = await api.post("/v1/reservations", { orderId: "tr-4-order", lines: [{ variantId: "tr-4", quantity: 3 }] })
    expect(reserved.status).toBe(201)
    const before = { totals: await totalsOf("tr-4"), rows: await rowsOf("tr-4"), history: await historyOf("tr-4"), events: await eventsOf("tr-4") }

    // available at default = 10 - 3 - 2 = 5
    const res = await transfer("tr-4", { fromLocationId: "default", toLocationId: "wh-a", quantity: 6 })
    expectProblem(res, 409, "insufficient-stock")
    expect(res.body).toMatchObject({ variantId: "tr-4", requested: 6, available: 5 })
    expect({ totals: await totalsOf("tr-4"), rows: await rowsOf("tr-4"), history: await historyOf("tr-4"), events: await eventsOf("tr-4") }).toEqual(before)

    const ok = await transfer("tr-4", { fromLocationId: "default", toLocationId: "wh-a", quantity: 5 })
    expect(ok.status).toBe(200)
    expect(ok.body.stockLevel.locations.map((l: any) => [l.locationId, l.onHand, l.reserved, l.available])).toEqual([
      ["default", 5, 3, 0],
      ["wh-a", 5, 0, 5]
    ])
  })

  it("refuses a transfer from a location where the variant is not stocked with 409 insufficient-stock", async () => {
    await variantWith("tr-5", 3)
    const res = await transfer("tr-5", { fromLocationId: "wh-a", toLocationId: "default", quantity: 1 })
    expectProblem(res, 409, "insufficient-stock")
    expect(res.body).toMatchObject({ requested: 1, available: 0 })
    expect(await rowsOf("tr-5")).toHaveLength(1)
  })

  it("refuses the same location twice, a quantity that is not a positive integer and a bad body with 400", async () => {
    await variantWith("tr-6", 3)
    const same = await transfer("tr-6", { fromLocationId: "default", toLocationId: "default", quantity: 1 })
    expectProblem(same, 400, "validation-failed")
    expect(same.body.errors.map((e: any) => e.path)).toContain("/toLocationId")
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ fromLocationId: "default", toLocationId: "wh-a", quantity: 0 }, "/quantity"],
      [{ fromLocationId: "default", toLocationId: "wh-a", quantity: -2 }, "/quantity"],
      [{ fromLocationId: "default", toLocationId: "wh-a", quantity: 1.5 }, "/quantity"],
      [{ fromLocationId: "default", toLocationId: "wh-a" }, "/quantity"],
      [{ toLocationId: "wh-a", quantity: 1 }, "/fromLocationId"],
      [{ fromLocationId: "bad id", toLocationId: "wh-a", quantity: 1 }, "/fromLocationId"],
      [{ fromLocationId: "default", toLocationId: "wh-a", quantity: 1, reason: "" }, "/reason"],
      [{ fromLocationId: "default", toLocationId: "wh-a", quantity: 1, reference: "a\u0007b" }, "/reference"],
      [{ fromLocationId: "default", toLocationId: "wh-a", quantity: 1, reason: null }, "/reason"]
    ]
    for (const [body, path] of cases) {
      const res = await transfer("tr-6", body)
      expectProblem(res, 400, "validation-failed")
      expect(res.body.errors.map((e: any) => e.path)).toContain(path)
    }
    expect((await api.raw("POST", "/v1/stock-levels/tr-6/transfers", "{", { "content-type": "application/json" })).status).toBe(400)
    expect(await historyOf("tr-6")).toHaveLength(1)
  })

  it("answers 404 variant-not-found and location-not-found", async () => {
    await variantWith("tr-7", 3)
    expectProblem(await transfer("tr-ghost", { fromLocationId: "default", toLocationId: "wh-a", quantity: 1 }), 404, "variant-not-found")
    const to = await transfer("tr-7", { fromLocationId: "default", toLocationId: "nowhere", quantity: 1 })
    expectProblem(to, 404, "location-not-found")
    expect(to.body.locationId).toBe("nowhere")
    const from = await transfer("tr-7", { fromLocationId: "nowhere", toLocationId: "default", quantity: 1 })
    expectProblem(from, 404, "location-not-found")
    expect(await rowsOf("tr-7")).toEqual([{ location_id: "default", on_hand: 3, reserved: 0 }])
  })

  it("replays an Idempotency-Key retry and refuses the key with another body (422)", async () => {
    await variantWith("tr-8", 10)
    const key = { "idempotency-key": "tr-8-key" }
    const body = { fromLocationId: "default", toLocationId: "wh-a", quantity: 2 }
    const first = await transfer("tr-8", body, key)
    expect(first.status).toBe(200)
    expect(first.headers.get("idempotent-replayed")).toBeNull()
    const retry = await transfer("tr-8", body, key)
    expect(retry.status).toBe(200)
    expect(retry.headers.get("idempotent-replayed")).toBe("true")
    expect(retry.body).toEqual(first.body)
    expectProblem(await transfer("tr-8", { ...body, quantity: 3 }, key), 422, "idempotency-key-reused")
    expect(await rowsOf("tr-8")).toEqual([
      { location_id: "default", on_hand: 8, reserved: 0 },
      { location_id: "wh-a", on_hand: 2, reserved: 0 }
    ])
    expect((await historyOf("tr-8")).filter((h) => h.type.startsWith("TRANSFER"))).toHaveLength(2)
    // The same key on the adjustments endpoint is another scope: it runs.
    const adjusted = await api.post("/v1/stock-levels/tr-8/adjustments", { type: "PURCHASE", quantity: 1 }, key)
    expect(adjusted.status).toBe(200)
  })

  it("runs simultaneous transfers of one variant one after the other, never below the source's available", async () => {
    await variantWith("tr-9", 10)
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        transfer("tr-9", i % 2 === 0 ? { fromLocationId: "default", toLocationId: "wh-a", quantity: 2 } : { fromLocationId: "default", toLocationId: "wh-b", quantity: 2 })
      )
    )
    expect(results.filter((r) => r.status === 200)).toHaveLength(5)
    for (const r of results.filter((r) => r.status !== 200)) expectProblem(r, 409, "insufficient-stock")
    const rows = await rowsOf("tr-9")
    expect(rows.reduce((sum, r) => sum + r.on_hand, 0)).toBe(10)
    expect(rows.find((r) => r.location_id === "default")!.on_hand).toBe(0)
    const totals = await totalsOf("tr-9")
    expect(totals).toMatchObject({ on_hand: 10, reserved: 0, available: 10, version: 2 + 5 * 2 })
    expect((await historyOf("tr-9")).filter((h) => h.type.startsWith("TRANSFER"))).toHaveLength(10)
  })

  it("counts what moves into an inactive location out of the variant's available, and publishes the status change", async () => {
    await api.put("/v1/locations/closed", { name: "Closed store", active: false })
    await api.put("/v1/stock-levels/tr-12", { lowStockThreshold: 3 })
    await purchase("tr-12", 5)
    const res = await transfer("tr-12", { fromLocationId: "default", toLocationId: "closed", quantity: 3 })
    expect(res.status).toBe(200)
    expect(res.body.stockLevel).toMatchObject({ onHand: 5, available: 2, status: "LOW_STOCK" })
    expect(res.body.stockLevel.locations.map((l: any) => [l.locationId, l.onHand, l.available])).toEqual([
      ["default", 2, 2],
      ["closed", 3, 3]
    ])
    const statuses = (await eventsOf("tr-12")).filter((e) => e.event_type === "StockStatusChangedEvent")
    expect(statuses.map((e) => `${e.payload.data.oldStatus}>${e.payload.data.newStatus}`)).toEqual(["OUT_OF_STOCK>IN_STOCK", "IN_STOCK>LOW_STOCK"])
    // Back out of the inactive location: its onHand is still there to move.
    const back = await transfer("tr-12", { fromLocationId: "closed", toLocationId: "default", quantity: 3 })
    expect(back.status).toBe(200)
    expect(back.body.stockLevel).toMatchObject({ onHand: 5, available: 5, status: "IN_STOCK" })
  })

  it("needs the inventory:adjust scope", async () => {
    await variantWith("tr-10", 2)
    const reader = client(app.baseUrl, await bearer("inventory:read"))
    expectProblem(await reader.post("/v1/stock-levels/tr-10/transfers", { fromLocationId: "default", toLocationId: "wh-a", quantity: 1 }), 403, "forbidden")
    expectProblem(
      await client(app.baseUrl).post("/v1/stock-levels/tr-10/transfers", { fromLocationId: "default", toLocationId: "wh-a", quantity: 1 }),
      401,
      "unauthenticated"
    )
  })

  it("never deadlocks with reservations, adjustments and opposite transfers of the same variants running at once", async () => {
    const retries = async (code: string) => {
      const text = await (await fetch(`${app.baseUrl}/metrics`)).text()
      const line = text.split("\n").find((l) => l.startsWith("inventory_db_transaction_retries_total{") && l.includes(`code="${code}"`))
      return line === undefined ? 0 : Number(line.split(" ").pop())
    }
    const deadlocksBefore = await retries("40P01")
    for (const variantId of ["tr-mix-1", "tr-mix-2"]) {
      await variantWith(variantId, 40)
      await purchase(variantId, 40, "wh-a")
      await purchase(variantId, 40, "wh-b")
    }
    const work = Array.from({ length: 40 }, (_, i) => {
      const variantId = i % 2 === 0 ? "tr-mix-1" : "tr-mix-2"
      switch (i % 5) {
        case 0:
          return transfer(variantId, { fromLocationId: "wh-a", toLocationId: "wh-b", quantity: 3 })
        case 1:
          return transfer(variantId, { fromLocationId: "wh-b", toLocationId: "wh-a", quantity: 3 })
        case 2:
          return api.post("/v1/reservations", {
            orderId: `tr-mix-order-${i}`,
            lines: [
              { variantId: "tr-mix-2", quantity: 5 },
              { variantId: "tr-mix-1", quantity: 5 }
            ]
          })
        case 3:
          return api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "SALE", quantity: 2, locationId: "wh-b" })
        default:
          return transfer(variantId, { fromLocationId: "default", toLocationId: "wh-a", quantity: 4 })
      }
    })
    const results = await Promise.all(work)
    for (const r of results) expect([200, 201, 409]).toContain(r.status)
    expect(results.filter((r) => r.status === 200 || r.status === 201).length).toBeGreaterThan(30)
    expect(await retries("40P01")).toBe(deadlocksBefore)
    for (const variantId of ["tr-mix-1", "tr-mix-2"]) {
      const level = (await api.get(`/v1/stock-levels/${variantId}`)).body
      expect(level.onHand).toBe(level.locations.reduce((sum: number, l: any) => sum + l.onHand, 0))
      expect(level.reserved).toBe(level.locations.reduce((sum: number, l: any) => sum + l.reserved, 0))
    }
  })

  it("leaves every location row agreeing with its history and allocations, and every total with its locations", async () => {
    const report = await app.run(reconcile)
    expect(report.drifts).toEqual([])
    expect(report.locationRowsChecked).toBeGreaterThan(10)
  })
})
