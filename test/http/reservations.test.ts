import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { reconcile } from "../../src/services/Reconcile.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

describe("reservations over HTTP (API.md)", () => {
  let app: TestApp
  let api: ReturnType<typeof client>
  const stock = async (variantId: string, onHand: number, lowStockThreshold = 0) => {
    expect((await api.put(`/v1/stock-levels/${variantId}`, { lowStockThreshold })).status).toBe(201)
    if (onHand > 0) expect((await api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: onHand })).status).toBe(200)
  }
  const level = async (variantId: string) => (await api.get(`/v1/stock-levels/${variantId}`)).body
  const eventsOf = (aggregateId: string) =>
    query<{ event_type: string; payload: { data: Record<string, unknown> } }>(
      app.database.url,
      "SELECT event_type, payload FROM outbox WHERE aggregate_id = $1 ORDER BY id",
      [aggregateId]
    )
  const historyOf = (variantId: string) =>
    query<{ type: string; on_hand_change: number; reserved_change: number; order_id: string | null }>(
      app.database.url,
      "SELECT type, on_hand_change, reserved_change, order_id FROM inventory_history WHERE variant_id = $1 ORDER BY id",
      [variantId]
    )

  beforeAll(async () => {
    app = await startTestApp({ label: "resv", env: { RESERVATION_SWEEP_INTERVAL_MS: "100", RATE_LIMIT_RPS: "0" } })
    api = app.api
  })
  afterAll(() => app?.close())

  it("reserves every line in one go (201), merging duplicate variants, and publishes the events", async () => {
    await stock("a-1", 10, 3)
    await stock("a-2", 5)
    const res = await api.post("/v1/reservations", {
      orderId: "order-a",
      lines: [
        { variantId: "a-2", quantity: 1 },
        { variantId: "a-1", quantity: 4 },
        { variantId: "a-1", quantity: 3 }
      ]
    })
    expect(res.status).toBe(201)
    expect(res.body).toMatchObject({
      orderId: "order-a",
      status: "ACTIVE",
      lines: [
        { variantId: "a-1", quantity: 7 },
        { variantId: "a-2", quantity: 1 }
      ]
    })
    const ttl = Date.parse(res.body.expiresAt) - Date.parse(res.body.createdAt)
    expect(ttl).toBe(900_000)
    expect(await level("a-1")).toMatchObject({ onHand: 10, reserved: 7, available: 3, status: "LOW_STOCK" })
    expect((await eventsOf("order-a")).map((e) => e.event_type)).toEqual(["InventoryReservedEvent"])
    expect((await eventsOf("order-a"))[0]!.payload.data).toMatchObject({ orderId: "order-a", lines: res.body.lines, expiresAt: res.body.expiresAt })
    const a1 = await eventsOf("a-1")
    expect(a1.map((e) => e.event_type).slice(-2)).toEqual(["StockLevelChangedEvent", "StockStatusChangedEvent"])
    expect(a1.at(-2)!.payload.data).toMatchObject({ changeType: "RESERVE", reserved: 7, available: 3, reservedChange: 7 })
    expect(a1.at(-1)!.payload.data).toMatchObject({ oldStatus: "IN_STOCK", newStatus: "LOW_STOCK", available: 3 })
    expect((await historyOf("a-1")).at(-1)).toMatchObject({ type: "RESERVE", on_hand_change: 0, reserved_change: 7, order_id: "order-a" })
    expect((await api.get("/v1/reservations/order-a")).body).toEqual(res.body)
  })

  it("answers the same orderId with the same lines 200 and the stored reservation, reserving nothing twice", async () => {
    await stock("b-1", 3)
    const first = await api.post("/v1/reservations", { orderId: "order-b", lines: [{ variantId: "b-1", quantity: 2 }] })
    const again = await api.post("/v1/reservations", {
      orderId: "order-b",
      lines: [
        { variantId: "b-1", quantity: 1 },
        { variantId: "b-1", quantity: 1 }
      ],
      ttlSeconds: 60
    })
    expect(again.status).toBe(200)
    expect(again.body).toEqual(first.body)
    expect(await level("b-1")).toMatchObject({ reserved: 2 })
    expect((await historyOf("b-1")).filter((h) => h.type === "RESERVE")).toHaveLength(1)
  })

  it("answers the same orderId with other lines 409 reservation-conflict", async () => {
    const res = await api.post("/v1/reservations", { orderId: "order-b", lines: [{ variantId: "b-1", quantity: 1 }] })
    expect(res.status).toBe(409)
    expect(res.headers.get("content-type")).toContain("application/problem+json")
    expect(res.body).toMatchObject({ code: "reservation-conflict", status: 409, orderId: "order-b" })
  })

  it("refuses all-or-nothing with 409 insufficient-stock listing every failing line, storing no reservation", async () => {
    await stock("c-1", 2)
    await stock("c-2", 1)
    const res = await api.post("/v1/reservations", {
      orderId: "order-c",
      lines: [
        { variantId: "c-1", quantity: 1 },
        { variantId: "c-2", quantity: 2 },
        { variantId: "c-unknown", quantity: 1 }
      ]
    })
    expect(res.status).toBe(409)
    expect(res.body).toMatchObject({
      code: "insufficient-stock",
      status: 409,
      failures: [
        { variantId: "c-2", requested: 2, available: 1, reason: "INSUFFICIENT_STOCK" },
        { variantId: "c-unknown", requested: 1, available: 0, reason: "UNKNOWN_VARIANT" }
      ]
    })
    expect(await level("c-1")).toMatchObject({ reserved: 0, version: 2 })
    expect((await api.get("/v1/reservations/order-c")).status).toBe(404)
    const events = await eventsOf("order-c")
    expect(events.map((e) => e.event_type)).toEqual(["InventoryReservationFailedEvent"])
    expect(events[0]!.payload.data).toMatchObject({ orderId: "order-c", failures: res.body.failures })
    // Nothing was stored, so a retry with what is there succeeds.
    const retry = await api.post("/v1/reservations", { orderId: "order-c", lines: [{ variantId: "c-1", quantity: 2 }] })
    expect(retry.status).toBe(201)
  })

  it("releases (200 RELEASED), idempotently, and refuses to commit a released reservation", async () => {
    await stock("d-1", 4)
    await api.post("/v1/reservations", { orderId: "order-d", lines: [{ variantId: "d-1", quantity: 3 }] })
    const released = await api.post("/v1/reservations/order-d/release")
    expect(released.status).toBe(200)
    expect(released.body).toMatchObject({ status: "RELEASED", lines: [{ variantId: "d-1", quantity: 3 }] })
    expect(await level("d-1")).toMatchObject({ onHand: 4, reserved: 0 })
    const again = await api.post("/v1/reservations/order-d/release")
    expect(again.status).toBe(200)
    expect(again.body).toEqual(released.body)
    expect((await historyOf("d-1")).map((h) => h.type)).toEqual(["PURCHASE", "RESERVE", "RELEASE"])
    const events = await eventsOf("order-d")
    expect(events.map((e) => e.event_type)).toEqual(["InventoryReservedEvent", "InventoryReservationReleasedEvent"])
    expect(events[1]!.payload.data).toMatchObject({ reason: "RELEASED" })
    const commit = await api.post("/v1/reservations/order-d/commit")
    expect(commit.status).toBe(409)
    expect(commit.body).toMatchObject({ code: "reservation-not-active", status: 409, reservationStatus: "RELEASED" })
  })

  it("commits (200 COMMITTED): units leave reserved and onHand; again the same answer; release is then refused", async () => {
    await stock("e-1", 5)
    await api.post("/v1/reservations", { orderId: "order-e", lines: [{ variantId: "e-1", quantity: 2 }] })
    const committed = await api.post("/v1/reservations/order-e/commit")
    expect(committed.status).toBe(200)
    expect(committed.body.status).toBe("COMMITTED")
    expect(await level("e-1")).toMatchObject({ onHand: 3, reserved: 0, available: 3 })
    expect((await api.post("/v1/reservations/order-e/commit")).body).toEqual(committed.body)
    expect((await historyOf("e-1")).at(-1)).toMatchObject({ type: "COMMIT", on_hand_change: -2, reserved_change: -2 })
    expect((await eventsOf("order-e")).map((e) => e.event_type)).toEqual(["InventoryReservedEvent", "InventoryReservationCommittedEvent"])
    const release = await api.post("/v1/reservations/order-e/release")
    expect(release.status).toBe(409)
    expect(release.body.code).toBe("reservation-not-active")
  })

  it("expires an ACTIVE reservation past its ttl by itself (EXPIRED, EXPIRE history, released event)", async () => {
    await stock("f-1", 1)
    await api.post("/v1/reservations", { orderId: "order-f", lines: [{ variantId: "f-1", quantity: 1 }], ttlSeconds: 1 }, { "x-correlation-id": "corr-order-f" })
    let status = "ACTIVE"
    for (let i = 0; i < 100 && status === "ACTIVE"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      status = (await api.get("/v1/reservations/order-f")).body.status
    }
    expect(status).toBe("EXPIRED")
    // The answer says EXPIRED from expiresAt on; the sweeper's stock change follows within its interval.
    let held = 1
    for (let i = 0; i < 100 && held !== 0; i++) {
      held = (await level("f-1")).reserved
      if (held !== 0) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(await level("f-1")).toMatchObject({ onHand: 1, reserved: 0 })
    expect((await historyOf("f-1")).at(-1)).toMatchObject({ type: "EXPIRE", reserved_change: -1, order_id: "order-f" })
    expect((await eventsOf("order-f")).at(-1)!.payload.data).toMatchObject({ reason: "EXPIRED" })
    // The sweeper's changes keep the correlation id of the request that made the reservation.
    const expiry = await query<{ correlation_id: string | null; event_type: string }>(
      app.database.url,
      `SELECT correlation_id, event_type FROM outbox WHERE (aggregate_id = 'order-f' AND payload->'data'->>'reason' = 'EXPIRED')
          OR (aggregate_id = 'f-1' AND payload->'data'->>'changeType' = 'EXPIRE')`
    )
    expect(expiry.map((e) => e.event_type).sort()).toEqual(["InventoryReservationReleasedEvent", "StockLevelChangedEvent"])
    expect(expiry.map((e) => e.correlation_id)).toEqual(["corr-order-f", "corr-order-f"])
    const [entry] = await query(app.database.url, "SELECT correlation_id FROM inventory_history WHERE variant_id = 'f-1' AND type = 'EXPIRE'")
    expect(entry!.correlation_id).toBe("corr-order-f")
    // Released again: 200 as is. Committed: not active.
    const release = await api.post("/v1/reservations/order-f/release")
    expect(release.status).toBe(200)
    expect(release.body.status).toBe("EXPIRED")
    expect((await api.post("/v1/reservations/order-f/commit")).body).toMatchObject({ code: "reservation-not-active", reservationStatus: "EXPIRED" })
  })

  it("answers 404 reservation-not-found for an unknown order", async () => {
    for (const res of [
      await api.get("/v1/reservations/nope"),
      await api.post("/v1/reservations/nope/release"),
      await api.post("/v1/reservations/nope/commit")
    ]) {
      expect(res.status).toBe(404)
      expect(res.body.code).toBe("reservation-not-found")
    }
  })

  it.each([
    ["no lines", { orderId: "o-v", lines: [] }, "/lines"],
    ["101 lines", { orderId: "o-v", lines: Array.from({ length: 101 }, (_, i) => ({ variantId: `v${i}`, quantity: 1 })) }, "/lines"],
    ["a quantity of 0", { orderId: "o-v", lines: [{ variantId: "v", quantity: 0 }] }, "/lines/0/quantity"],
    ["merged quantities over 1,000,000", { orderId: "o-v", lines: [{ variantId: "v", quantity: 999_999 }, { variantId: "v", quantity: 2 }] }, "/lines"],
    ["ttlSeconds 0", { orderId: "o-v", lines: [{ variantId: "v", quantity: 1 }], ttlSeconds: 0 }, "/ttlSeconds"],
    ["a malformed orderId", { orderId: "has space", lines: [{ variantId: "v", quantity: 1 }] }, "/orderId"]
  ])("answers 400 validation-failed for %s", async (_, body, path) => {
    const res = await api.post("/v1/reservations", body)
    expect(res.status).toBe(400)
    expect(res.body.code).toBe("validation-failed")
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path)
  })

  const allocationsOf = (orderId: string) =>
    query<{ variant_id: string; location_id: string; quantity: number }>(
      app.database.url,
      "SELECT variant_id, location_id, quantity FROM reservation_allocations WHERE order_id = $1 ORDER BY variant_id, location_id",
      [orderId]
    )
  const locationRow = async (variantId: string) =>
    (await query<{ location_id: string; on_hand: number; reserved: number; version: number }>(
      app.database.url,
      "SELECT location_id, on_hand, reserved, version FROM location_stock WHERE variant_id = $1 ORDER BY location_id",
      [variantId]
    ))

  it("answers each line with its allocations at the location default, stored in reservation_allocations and published", async () => {
    await stock("g-1", 6)
    await stock("g-2", 2)
    const res = await api.post("/v1/reservations", {
      orderId: "order-g",
      lines: [
        { variantId: "g-2", quantity: 2 },
        { variantId: "g-1", quantity: 4 }
      ]
    })
    expect(res.status).toBe(201)
    expect(res.body.lines).toEqual([
      { variantId: "g-1", quantity: 4, allocations: [{ locationId: "default", quantity: 4 }] },
      { variantId: "g-2", quantity: 2, allocations: [{ locationId: "default", quantity: 2 }] }
    ])
    expect(await allocationsOf("order-g")).toEqual([
      { variant_id: "g-1", location_id: "default", quantity: 4 },
      { variant_id: "g-2", location_id: "default", quantity: 2 }
    ])
    expect(await locationRow("g-1")).toMatchObject([{ location_id: "default", on_hand: 6, reserved: 4 }])
    expect((await api.get("/v1/reservations/order-g")).body).toEqual(res.body)
    const [reserved] = await eventsOf("order-g")
    expect(reserved!.payload.data["lines"]).toEqual(res.body.lines)
    const [entry] = await query<{ location_id: string; reserved_after: number }>(
      app.database.url,
      "SELECT location_id, reserved_after FROM inventory_history WHERE variant_id = 'g-1' AND type = 'RESERVE'"
    )
    expect(entry).toEqual({ location_id: "default", reserved_after: 4 })
    // The repeat answers the stored allocations too.
    const again = await api.post("/v1/reservations", { orderId: "order-g", lines: [{ variantId: "g-1", quantity: 4 }, { variantId: "g-2", quantity: 2 }] })
    expect(again.status).toBe(200)
    expect(again.body).toEqual(res.body)
  })

  it("releases exactly the recorded allocations: the location row gets its units back, with a RELEASE entry there", async () => {
    await stock("h-1", 5)
    await api.post("/v1/reservations", { orderId: "order-h", lines: [{ variantId: "h-1", quantity: 3 }] })
    const [held] = await locationRow("h-1")
    expect(held).toMatchObject({ on_hand: 5, reserved: 3 })
    const released = await api.post("/v1/reservations/order-h/release")
    expect(released.status).toBe(200)
    expect(released.body.lines).toEqual([{ variantId: "h-1", quantity: 3, allocations: [{ locationId: "default", quantity: 3 }] }])
    expect(await locationRow("h-1")).toEqual([{ location_id: "default", on_hand: 5, reserved: 0, version: held!.version + 1 }])
    expect(await level("h-1")).toMatchObject({ onHand: 5, reserved: 0, available: 5 })
    const entries = await query<{ type: string; location_id: string; reserved_change: number; reserved_after: number }>(
      app.database.url,
      "SELECT type, location_id, reserved_change, reserved_after FROM inventory_history WHERE variant_id = 'h-1' AND type = 'RELEASE'"
    )
    expect(entries).toEqual([{ type: "RELEASE", location_id: "default", reserved_change: -3, reserved_after: 0 }])
    const events = await eventsOf("order-h")
    expect(events.at(-1)!.payload.data).toMatchObject({ reason: "RELEASED", lines: released.body.lines })
    // The allocations stay recorded: they are the reservation's story.
    expect(await allocationsOf("order-h")).toEqual([{ variant_id: "h-1", location_id: "default", quantity: 3 }])
  })

  it("commits exactly the recorded allocations: the units leave the location row's reserved and onHand", async () => {
    await stock("i-1", 4)
    await api.post("/v1/reservations", { orderId: "order-i", lines: [{ variantId: "i-1", quantity: 3 }] })
    const committed = await api.post("/v1/reservations/order-i/commit")
    expect(committed.status).toBe(200)
    expect(await locationRow("i-1")).toMatchObject([{ location_id: "default", on_hand: 1, reserved: 0 }])
    expect(await level("i-1")).toMatchObject({ onHand: 1, reserved: 0, available: 1 })
    const changed = (await eventsOf("i-1")).at(-1)!.payload.data
    expect(changed).toMatchObject({ changeType: "COMMIT", locationId: "default", onHand: 1, location: { onHand: 1, reserved: 0, available: 1 } })
  })

  it("leaves every counter agreeing with its reservations and history", async () => {
    const report = await app.run(reconcile)
    expect(report.drifts).toEqual([])
    expect(report.variantsChecked).toBeGreaterThan(5)
  })
})
