import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

/** API.md "Reservations across locations": what a client sees of allocations, strategies and pins. */
describe("reservations across locations over HTTP", () => {
  let app: TestApp
  let api: ReturnType<typeof client>

  beforeAll(async () => {
    app = await startTestApp({ label: "resvloc", env: { RATE_LIMIT_RPS: "0" } })
    api = app.api
    // Shared by every test: lower priority is used first.
    for (const [locationId, priority] of [["wh-a", 10], ["wh-b", 20], ["wh-c", 30]] as const) {
      expect((await api.put(`/v1/locations/${locationId}`, { name: locationId, priority })).status).toBe(201)
    }
  })
  afterAll(() => app?.close())

  /** Creates the variant and stocks it at each location given (a PURCHASE there), with an optional safety stock. */
  const stock = async (variantId: string, at: Record<string, number>, safetyStock: Record<string, number> = {}) => {
    expect((await api.put(`/v1/stock-levels/${variantId}`, { lowStockThreshold: 0 })).status).toBe(201)
    for (const [locationId, onHand] of Object.entries(at)) {
      const stocked = await api.put(`/v1/stock-levels/${variantId}/locations/${locationId}`, { safetyStock: safetyStock[locationId] ?? 0 })
      expect([200, 201]).toContain(stocked.status)
      const purchase = await api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: onHand, locationId })
      expect(purchase.status).toBe(200)
    }
    expect(await at_(variantId)).toMatchObject(Object.fromEntries(Object.entries(at).map(([l, onHand]) => [l, { onHand, reserved: 0 }])))
  }
  /** The variant's locations as a client reads them: locationId → { onHand, reserved, available }. */
  const at_ = async (variantId: string): Promise<Record<string, { onHand: number; reserved: number; available: number }>> => {
    const level = await api.get(`/v1/stock-levels/${variantId}`)
    expect(level.status).toBe(200)
    return Object.fromEntries(
      (level.body.locations as Array<{ locationId: string; onHand: number; reserved: number; available: number }>).map((l) => [
        l.locationId,
        { onHand: l.onHand, reserved: l.reserved, available: l.available }
      ])
    )
  }
  const reserve = (orderId: string, lines: ReadonlyArray<Record<string, unknown>>, allocation?: string) =>
    api.post("/v1/reservations", { orderId, lines, ...(allocation === undefined ? {} : { allocation }) })
  const historyOf = (variantId: string) =>
    query<{ type: string; location_id: string; on_hand_change: number; reserved_change: number; order_id: string | null }>(
      app.database.url,
      "SELECT type, location_id, on_hand_change, reserved_change, order_id FROM inventory_history WHERE variant_id = $1 AND order_id IS NOT NULL ORDER BY id",
      [variantId]
    )
  const reserveEventsOf = (variantId: string) =>
    query<{ payload: { data: { locationId: string; reserved: number; location: { reserved: number } } } }>(
      app.database.url,
      "SELECT payload FROM outbox WHERE aggregate_id = $1 AND event_type = 'StockLevelChangedEvent' AND payload->'data'->>'changeType' = 'RESERVE' ORDER BY id",
      [variantId]
    )

  it("splits a line across locations by priority (PRIORITY is the default), one history entry and event per location", async () => {
    await stock("split-1", { "wh-c": 5, "wh-a": 3, "wh-b": 4 })
    const res = await reserve("split-order-1", [{ variantId: "split-1", quantity: 9 }])
    expect(res.status).toBe(201)
    expect(res.body.lines).toEqual([
      {
        variantId: "split-1",
        quantity: 9,
        allocations: [
          { locationId: "wh-a", quantity: 3 },
          { locationId: "wh-b", quantity: 4 },
          { locationId: "wh-c", quantity: 2 }
        ]
      }
    ])
    expect(await at_("split-1")).toMatchObject({
      "wh-a": { onHand: 3, reserved: 3, available: 0 },
      "wh-b": { onHand: 4, reserved: 4, available: 0 },
      "wh-c": { onHand: 5, reserved: 2, available: 3 }
    })
    expect((await api.get("/v1/stock-levels/split-1")).body).toMatchObject({ onHand: 12, reserved: 9, available: 3 })
    expect((await historyOf("split-1")).map((h) => [h.type, h.location_id, h.reserved_change])).toEqual([
      ["RESERVE", "wh-a", 3],
      ["RESERVE", "wh-b", 4],
      ["RESERVE", "wh-c", 2]
    ])
    expect((await reserveEventsOf("split-1")).map((e) => [e.payload.data.locationId, e.payload.data.location.reserved])).toEqual([
      ["wh-a", 3],
      ["wh-b", 4],
      ["wh-c", 2]
    ])
    expect((await api.get("/v1/reservations/split-order-1")).body.lines).toEqual(res.body.lines)
    const [reserved] = await query<{ payload: { data: { lines: unknown } } }>(
      app.database.url,
      "SELECT payload FROM outbox WHERE aggregate_id = 'split-order-1' AND event_type = 'InventoryReservedEvent'"
    )
    expect(reserved!.payload.data.lines).toEqual(res.body.lines)
  })

  it("SINGLE_LOCATION takes each line whole from the first location that can hold it, and refuses when none can", async () => {
    await stock("single-1", { "wh-a": 3, "wh-b": 6, "wh-c": 5 })
    const whole = await reserve("single-order-1", [{ variantId: "single-1", quantity: 5 }], "SINGLE_LOCATION")
    expect(whole.status).toBe(201)
    expect(whole.body.lines[0].allocations).toEqual([{ locationId: "wh-b", quantity: 5 }])

    // 3 + 1 + 5 left: PRIORITY could split 7, no single location holds it.
    const refused = await reserve("single-order-2", [{ variantId: "single-1", quantity: 7 }], "SINGLE_LOCATION")
    expect(refused.status).toBe(409)
    expect(refused.headers.get("content-type")).toContain("application/problem+json")
    expect(refused.body).toMatchObject({ status: 409, code: "insufficient-stock" })
    expect(refused.body.failures).toEqual([{ variantId: "single-1", requested: 7, available: 5, reason: "INSUFFICIENT_STOCK" }])
    expect((await api.get("/v1/reservations/single-order-2")).status).toBe(404)
    expect(await at_("single-1")).toMatchObject({ "wh-a": { reserved: 0 }, "wh-b": { reserved: 5 }, "wh-c": { reserved: 0 } })

    const split = await reserve("single-order-3", [{ variantId: "single-1", quantity: 7 }])
    expect(split.status).toBe(201)
    expect(split.body.lines[0].allocations).toEqual([
      { locationId: "wh-a", quantity: 3 },
      { locationId: "wh-b", quantity: 1 },
      { locationId: "wh-c", quantity: 3 }
    ])
  })

  it("a line naming a location draws only there; pinned and free lines of one variant become one line", async () => {
    await stock("pin-1", { "wh-a": 5, "wh-c": 5 })
    const pinned = await reserve("pin-order-1", [{ variantId: "pin-1", quantity: 3, locationId: "wh-c" }])
    expect(pinned.status).toBe(201)
    expect(pinned.body.lines).toEqual([{ variantId: "pin-1", quantity: 3, allocations: [{ locationId: "wh-c", quantity: 3 }] }])
    expect(await at_("pin-1")).toMatchObject({ "wh-a": { reserved: 0 }, "wh-c": { reserved: 3 } })

    // Not enough there, although wh-a has plenty: refused, naming the location.
    const short = await reserve("pin-order-2", [{ variantId: "pin-1", quantity: 3, locationId: "wh-c" }])
    expect(short.status).toBe(409)
    expect(short.body.failures).toEqual([{ variantId: "pin-1", requested: 3, available: 2, reason: "INSUFFICIENT_STOCK", locationId: "wh-c" }])
    // Stocked nowhere there: nothing to draw on.
    const notStocked = await reserve("pin-order-3", [{ variantId: "pin-1", quantity: 1, locationId: "wh-b" }])
    expect(notStocked.body.failures).toEqual([{ variantId: "pin-1", requested: 1, available: 0, reason: "INSUFFICIENT_STOCK", locationId: "wh-b" }])

    // The pinned lines are decided first, so the free line leaves wh-c's last 2 units to them.
    const mixed = [
      { variantId: "pin-1", quantity: 4 },
      { variantId: "pin-1", quantity: 1, locationId: "wh-c" },
      { variantId: "pin-1", quantity: 1, locationId: "wh-c" }
    ]
    const res = await reserve("pin-order-4", mixed)
    expect(res.status).toBe(201)
    expect(res.body.lines).toEqual([
      { variantId: "pin-1", quantity: 6, allocations: [{ locationId: "wh-a", quantity: 4 }, { locationId: "wh-c", quantity: 2 }] }
    ])
    // A repeat answers the stored reservation; the same quantities pinned elsewhere are another request.
    const again = await reserve("pin-order-4", [...mixed].reverse())
    expect(again.status).toBe(200)
    expect(again.body).toEqual(res.body)
    const elsewhere = await reserve("pin-order-4", [{ variantId: "pin-1", quantity: 2, locationId: "wh-b" }, { variantId: "pin-1", quantity: 4 }])
    expect(elsewhere.status).toBe(409)
    expect(elsewhere.body.code).toBe("reservation-conflict")
    expect(await at_("pin-1")).toMatchObject({ "wh-a": { onHand: 5, reserved: 4 }, "wh-c": { onHand: 5, reserved: 5 } })
  })

  it("never draws on an inactive location, and a line naming one fails with UNKNOWN_LOCATION", async () => {
    expect((await api.put("/v1/locations/wh-off", { name: "Off", priority: 1 })).status).toBe(201)
    await stock("off-1", { "wh-off": 10, "wh-b": 2 })
    expect((await api.put("/v1/locations/wh-off", { name: "Off", active: false })).status).toBe(200)

    const tooMuch = await reserve("off-order-1", [{ variantId: "off-1", quantity: 3 }])
    expect(tooMuch.status).toBe(409)
    expect(tooMuch.body.failures).toEqual([{ variantId: "off-1", requested: 3, available: 2, reason: "INSUFFICIENT_STOCK" }])
    const single = await reserve("off-order-2", [{ variantId: "off-1", quantity: 3 }], "SINGLE_LOCATION")
    expect(single.body.failures).toEqual([{ variantId: "off-1", requested: 3, available: 2, reason: "INSUFFICIENT_STOCK" }])
    const pinnedOff = await reserve("off-order-3", [{ variantId: "off-1", quantity: 1, locationId: "wh-off" }])
    expect(pinnedOff.status).toBe(409)
    expect(pinnedOff.body.failures).toEqual([{ variantId: "off-1", requested: 1, available: 0, reason: "UNKNOWN_LOCATION", locationId: "wh-off" }])

    const ok = await reserve("off-order-4", [{ variantId: "off-1", quantity: 2 }])
    expect(ok.status).toBe(201)
    expect(ok.body.lines[0].allocations).toEqual([{ locationId: "wh-b", quantity: 2 }])
    expect(await at_("off-1")).toMatchObject({ "wh-off": { onHand: 10, reserved: 0 }, "wh-b": { onHand: 2, reserved: 2 } })
  })

  it("never reserves a location's safety stock", async () => {
    await stock("safety-1", { "wh-a": 5, "wh-b": 4 }, { "wh-a": 3 })
    const res = await reserve("safety-order-1", [{ variantId: "safety-1", quantity: 6 }])
    expect(res.status).toBe(201)
    expect(res.body.lines[0].allocations).toEqual([{ locationId: "wh-a", quantity: 2 }, { locationId: "wh-b", quantity: 4 }])
    const more = await reserve("safety-order-2", [{ variantId: "safety-1", quantity: 1, locationId: "wh-a" }])
    expect(more.status).toBe(409)
    expect(more.body.failures).toEqual([{ variantId: "safety-1", requested: 1, available: 0, reason: "INSUFFICIENT_STOCK", locationId: "wh-a" }])
    expect(await at_("safety-1")).toMatchObject({ "wh-a": { onHand: 5, reserved: 2, available: 0 }, "wh-b": { onHand: 4, reserved: 4 } })
  })

  it("lists every failing line (UNKNOWN_LOCATION with its locationId) and reserves nothing; 400 for a bad locationId or allocation", async () => {
    await stock("fail-1", { "wh-a": 2 })
    const res = await reserve("fail-order-1", [
      { variantId: "fail-1", quantity: 1 },
      { variantId: "fail-1", quantity: 1, locationId: "nowhere" },
      { variantId: "fail-unknown", quantity: 1 },
      { variantId: "fail-1", quantity: 1, locationId: "wh-a" }
    ])
    expect(res.status).toBe(409)
    expect(res.headers.get("content-type")).toContain("application/problem+json")
    expect(res.body).toMatchObject({ status: 409, code: "insufficient-stock", type: expect.any(String), title: expect.any(String) })
    expect(res.body.failures).toEqual([
      { variantId: "fail-1", requested: 1, available: 0, reason: "UNKNOWN_LOCATION", locationId: "nowhere" },
      { variantId: "fail-unknown", requested: 1, available: 0, reason: "UNKNOWN_VARIANT" }
    ])
    expect(await at_("fail-1")).toMatchObject({ "wh-a": { reserved: 0 } })
    const [failed] = await query<{ payload: { data: { failures: unknown } } }>(
      app.database.url,
      "SELECT payload FROM outbox WHERE aggregate_id = 'fail-order-1' AND event_type = 'InventoryReservationFailedEvent'"
    )
    expect(failed!.payload.data.failures).toEqual(res.body.failures)

    for (const body of [
      { orderId: "fail-order-2", lines: [{ variantId: "fail-1", quantity: 1, locationId: "bad id" }] },
      { orderId: "fail-order-2", lines: [{ variantId: "fail-1", quantity: 1, locationId: "" }] },
      { orderId: "fail-order-2", lines: [{ variantId: "fail-1", quantity: 1 }], allocation: "NEAREST" },
      { orderId: "fail-order-2", lines: [{ variantId: "fail-1", quantity: 1 }], allocation: null }
    ]) {
      const bad = await api.post("/v1/reservations", body)
      expect(bad.status).toBe(400)
      expect(bad.body).toMatchObject({ status: 400, code: "validation-failed" })
    }
    expect((await api.get("/v1/reservations/fail-order-2")).status).toBe(404)
  })

  it("commit and release give back exactly the allocations, per location", async () => {
    await stock("back-1", { "wh-a": 2, "wh-b": 3, "wh-c": 4 })
    const first = await reserve("back-order-1", [{ variantId: "back-1", quantity: 6 }])
    expect(first.body.lines[0].allocations).toEqual([
      { locationId: "wh-a", quantity: 2 },
      { locationId: "wh-b", quantity: 3 },
      { locationId: "wh-c", quantity: 1 }
    ])
    const second = await reserve("back-order-2", [{ variantId: "back-1", quantity: 2, locationId: "wh-c" }])
    expect(second.status).toBe(201)

    const committed = await api.post("/v1/reservations/back-order-1/commit")
    expect(committed.status).toBe(200)
    expect(committed.body.lines).toEqual(first.body.lines)
    expect(await at_("back-1")).toMatchObject({
      "wh-a": { onHand: 0, reserved: 0 },
      "wh-b": { onHand: 0, reserved: 0 },
      "wh-c": { onHand: 3, reserved: 2 }
    })
    const released = await api.post("/v1/reservations/back-order-2/release")
    expect(released.status).toBe(200)
    expect(await at_("back-1")).toMatchObject({ "wh-c": { onHand: 3, reserved: 0, available: 3 } })
    expect((await api.get("/v1/stock-levels/back-1")).body).toMatchObject({ onHand: 3, reserved: 0, available: 3 })

    expect((await historyOf("back-1")).map((h) => [h.type, h.location_id, h.on_hand_change, h.reserved_change])).toEqual([
      ["RESERVE", "wh-a", 0, 2],
      ["RESERVE", "wh-b", 0, 3],
      ["RESERVE", "wh-c", 0, 1],
      ["RESERVE", "wh-c", 0, 2],
      ["COMMIT", "wh-a", -2, -2],
      ["COMMIT", "wh-b", -3, -3],
      ["COMMIT", "wh-c", -1, -1],
      ["RELEASE", "wh-c", 0, -2]
    ])
  })
})
