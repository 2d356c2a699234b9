import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { StockLevels } from "../../src/services/StockLevels.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

const expectProblem = (res: { status: number; headers: Headers; body: any }, status: number, code: string) => {
  expect(res.status).toBe(status)
  expect(res.headers.get("content-type")).toContain("application/problem+json")
  expect(res.body).toMatchObject({ status, code, type: expect.any(String), title: expect.any(String), detail: expect.any(String) })
  expect(res.body.correlationId).toBe(res.headers.get("x-correlation-id"))
  expect(JSON.stringify(res.body)).not.toMatch(/\bat .*\.ts:\d+|SELECT|INSERT|UPDATE /)
}

describe("stock levels over HTTP", () => {
  let app: TestApp
  let api: ReturnType<typeof client>
  beforeAll(async () => {
    app = await startTestApp({ label: "stockhttp" })
    api = app.api
  })
  afterAll(() => app?.close())

  const purchase = (id: string, quantity: number) => api.post(`/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity })

  describe("PUT /v1/stock-levels/{variantId}", () => {
    it("creates a variant with onHand 0 (201), then updates it (200) bumping the version", async () => {
      const created = await api.put("/v1/stock-levels/put-1", { sku: "SKU-1", lowStockThreshold: 3 })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({
        variantId: "put-1", sku: "SKU-1", onHand: 0, reserved: 0, available: 0, lowStockThreshold: 3, status: "OUT_OF_STOCK", version: 1
      })
      expect(Date.parse(created.body.updatedAt)).not.toBeNaN()
      const updated = await api.put("/v1/stock-levels/put-1", { lowStockThreshold: 10 })
      expect(updated.status).toBe(200)
      expect(updated.body).toMatchObject({ sku: "SKU-1", lowStockThreshold: 10, version: 2 })
    })

    it("changes nothing when the same settings are sent again", async () => {
      await api.put("/v1/stock-levels/put-2", { sku: "A" })
      const again = await api.put("/v1/stock-levels/put-2", { sku: "A" })
      expect(again.status).toBe(200)
      expect(again.body.version).toBe(1)
    })

    it("publishes a status change when the threshold moves the status", async () => {
      await api.put("/v1/stock-levels/put-3", {})
      await purchase("put-3", 5)
      const res = await api.put("/v1/stock-levels/put-3", { lowStockThreshold: 5 })
      expect(res.body.status).toBe("LOW_STOCK")
      const events = await query(app.database.url, "SELECT event_type, payload FROM outbox WHERE aggregate_id = 'put-3' ORDER BY id")
      expect(events.map((e) => e.event_type)).toEqual(["StockLevelChangedEvent", "StockStatusChangedEvent", "StockStatusChangedEvent"])
      expect(events[2]!.payload.data).toEqual({ variantId: "put-3", oldStatus: "IN_STOCK", newStatus: "LOW_STOCK", available: 5 })
    })

    it("refuses bad ids and bad settings with 400 validation-failed listing each problem", async () => {
      const badId = await api.put("/v1/stock-levels/bad%20id", {})
      expectProblem(badId, 400, "validation-failed")
      expect(badId.body.errors[0].path).toBe("/variantId")
      const tooLong = await api.put(`/v1/stock-levels/${"x".repeat(129)}`, {})
      expectProblem(tooLong, 400, "validation-failed")
      const badBody = await api.put("/v1/stock-levels/put-4", { sku: 5, lowStockThreshold: -1 })
      expectProblem(badBody, 400, "validation-failed")
      expect(new Set(badBody.body.errors.map((e: any) => e.path))).toEqual(new Set(["/lowStockThreshold", "/sku"]))
      expect((await api.get("/v1/stock-levels/put-4")).status).toBe(404)
    })
  })

  describe("GET /v1/stock-levels/{variantId}", () => {
    it("returns the level with available = onHand - reserved", async () => {
      await api.put("/v1/stock-levels/get-1", {})
      await purchase("get-1", 7)
      const res = await api.get("/v1/stock-levels/get-1")
      expect(res.status).toBe(200)
      expect(res.body).toMatchObject({ onHand: 7, reserved: 0, available: 7, status: "IN_STOCK", version: 2 })
    })

    it("answers 404 variant-not-found for an unknown variant", async () => {
      expectProblem(await api.get("/v1/stock-levels/nope"), 404, "variant-not-found")
    })
  })

  describe("GET /v1/stock-levels", () => {
    it("reads a batch by ids in request order, listing the missing ones", async () => {
      await api.put("/v1/stock-levels/batch-b", {})
      await api.put("/v1/stock-levels/batch-a", {})
      const res = await api.get("/v1/stock-levels?variantId=batch-b&variantId=nope&variantId=batch-a&variantId=batch-b")
      expect(res.status).toBe(200)
      expect(res.body.items.map((i: any) => i.variantId)).toEqual(["batch-b", "batch-a"])
      expect(res.body.missing).toEqual(["nope"])
    })

    it("refuses more than 100 ids, and ids combined with a listing filter", async () => {
      const ids = Array.from({ length: 101 }, (_, i) => `variantId=v${i}`).join("&")
      expectProblem(await api.get(`/v1/stock-levels?${ids}`), 400, "validation-failed")
      expectProblem(await api.get("/v1/stock-levels?variantId=a&status=LOW_STOCK"), 400, "validation-failed")
    })

    it("lists by status with stable keyset pagination", async () => {
      for (const id of ["low-3", "low-1", "low-2", "low-5", "low-4"]) {
        await api.put(`/v1/stock-levels/${id}`, { lowStockThreshold: 10 })
        await purchase(id, 2)
      }
      const seen: Array<string> = []
      let cursor: string | null = null
      let pages = 0
      do {
        const page: any = await api.get(`/v1/stock-levels?status=LOW_STOCK&limit=2${cursor ? `&cursor=${cursor}` : ""}`)
        expect(page.status).toBe(200)
        expect(page.body.items.length).toBeLessThanOrEqual(2)
        seen.push(...page.body.items.map((i: any) => i.variantId).filter((id: string) => id.startsWith("low-")))
        cursor = page.body.nextCursor
        pages++
      } while (cursor !== null)
      expect(seen).toEqual(["low-1", "low-2", "low-3", "low-4", "low-5"])
      expect(pages).toBeGreaterThanOrEqual(3)
    })

    it("refuses an unknown status, a bad limit and a forged cursor", async () => {
      expectProblem(await api.get("/v1/stock-levels?status=SOLD_OUT"), 400, "validation-failed")
      expectProblem(await api.get("/v1/stock-levels?limit=0"), 400, "validation-failed")
      expectProblem(await api.get("/v1/stock-levels?limit=abc"), 400, "validation-failed")
      expectProblem(await api.get("/v1/stock-levels?cursor=%%%"), 400, "validation-failed")
    })
  })

  describe("POST /v1/stock-levels/{variantId}/adjustments", () => {
    it("applies each type and writes exactly one history entry and its events per change", async () => {
      await api.put("/v1/stock-levels/adj-1", { lowStockThreshold: 2 })
      const steps = [
        [{ type: "PURCHASE", quantity: 10 }, 10],
        [{ type: "SALE", quantity: 3 }, 7],
        [{ type: "RETURN", quantity: 1 }, 8],
        [{ type: "ADJUSTMENT", quantity: -6 }, 2],
        [{ type: "RECOUNT", quantity: 9 }, 9]
      ] as const
      for (const [adjustment, onHand] of steps) {
        const res = await api.post("/v1/stock-levels/adj-1/adjustments", { ...adjustment, reason: "test", reference: "ref-1" })
        expect(res.status).toBe(200)
        expect(res.body.stockLevel.onHand).toBe(onHand)
        expect(res.body.entry).toMatchObject({ variantId: "adj-1", type: adjustment.type, onHandAfter: onHand, reservedAfter: 0, reason: "test", reference: "ref-1", orderId: null })
      }
      const history = await query(app.database.url, "SELECT type, on_hand_change FROM inventory_history WHERE variant_id = 'adj-1' ORDER BY id")
      expect(history.map((h) => [h.type, h.on_hand_change])).toEqual([["PURCHASE", 10], ["SALE", -3], ["RETURN", 1], ["ADJUSTMENT", -6], ["RECOUNT", 7]])
      const changed = await query(app.database.url, "SELECT payload FROM outbox WHERE aggregate_id = 'adj-1' AND event_type = 'StockLevelChangedEvent' ORDER BY id")
      expect(changed.map((e) => e.payload.data.changeType)).toEqual(["PURCHASE", "SALE", "RETURN", "ADJUSTMENT", "RECOUNT"])
      expect(changed[4]!.payload).toMatchObject({ eventType: "StockLevelChangedEvent", eventVersion: 1, aggregateType: "StockLevel", aggregateId: "adj-1", data: { onHand: 9, reserved: 0, available: 9, version: 6, onHandChange: 7, reservedChange: 0 } })
      const statuses = await query(app.database.url, "SELECT payload FROM outbox WHERE aggregate_id = 'adj-1' AND event_type = 'StockStatusChangedEvent' ORDER BY id")
      expect(statuses.map((e) => `${e.payload.data.oldStatus}>${e.payload.data.newStatus}`)).toEqual(["OUT_OF_STOCK>IN_STOCK", "IN_STOCK>LOW_STOCK", "LOW_STOCK>IN_STOCK"])
    })

    it("refuses a sale beyond available stock with 409 insufficient-stock and changes nothing", async () => {
      await api.put("/v1/stock-levels/adj-2", {})
      await purchase("adj-2", 3)
      const res = await api.post("/v1/stock-levels/adj-2/adjustments", { type: "SALE", quantity: 4 })
      expectProblem(res, 409, "insufficient-stock")
      expect(res.body).toMatchObject({ variantId: "adj-2", requested: 4, available: 3 })
      expect((await api.get("/v1/stock-levels/adj-2")).body).toMatchObject({ onHand: 3, version: 2 })
      expect(await query(app.database.url, "SELECT 1 FROM inventory_history WHERE variant_id = 'adj-2'")).toHaveLength(1)
    })

    it("refuses an ADJUSTMENT or RECOUNT below zero with 409", async () => {
      await api.put("/v1/stock-levels/adj-3", {})
      expectProblem(await api.post("/v1/stock-levels/adj-3/adjustments", { type: "ADJUSTMENT", quantity: -1 }), 409, "insufficient-stock")
    })

    it("compares and sets with expectedVersion (409 version-conflict on a stale version)", async () => {
      await api.put("/v1/stock-levels/adj-4", {})
      const ok = await api.post("/v1/stock-levels/adj-4/adjustments", { type: "PURCHASE", quantity: 1, expectedVersion: 1 })
      expect(ok.status).toBe(200)
      const stale = await api.post("/v1/stock-levels/adj-4/adjustments", { type: "PURCHASE", quantity: 1, expectedVersion: 1 })
      expectProblem(stale, 409, "version-conflict")
      expect(stale.body).toMatchObject({ expectedVersion: 1, currentVersion: 2 })
    })

    it("answers 404 for an unknown variant", async () => {
      expectProblem(await api.post("/v1/stock-levels/ghost/adjustments", { type: "PURCHASE", quantity: 1 }), 404, "variant-not-found")
    })

    it("replays an Idempotency-Key retry (marked Idempotent-Replayed: true) and refuses the key with another body (422)", async () => {
      await api.put("/v1/stock-levels/adj-5", {})
      const key = { "idempotency-key": "key-123" }
      const first = await api.post("/v1/stock-levels/adj-5/adjustments", { type: "PURCHASE", quantity: 5 }, key)
      expect(first.headers.get("idempotent-replayed")).toBeNull()
      const retry = await api.post("/v1/stock-levels/adj-5/adjustments", { type: "PURCHASE", quantity: 5 }, key)
      expect(retry.status).toBe(200)
      expect(retry.body).toEqual(first.body)
      expect(retry.headers.get("idempotent-replayed")).toBe("true")
      expect((await api.get("/v1/stock-levels/adj-5")).body.onHand).toBe(5)
      expectProblem(await api.post("/v1/stock-levels/adj-5/adjustments", { type: "PURCHASE", quantity: 6 }, key), 422, "idempotency-key-reused")
      expectProblem(await api.post("/v1/stock-levels/adj-5/adjustments", { type: "PURCHASE", quantity: 5 }, { "idempotency-key": "x".repeat(256) }), 400, "validation-failed")
    })

    it("runs two simultaneous first attempts with one key once", async () => {
      await api.put("/v1/stock-levels/adj-6", {})
      const key = { "idempotency-key": "same-time" }
      const results = await Promise.all(Array.from({ length: 5 }, () => api.post("/v1/stock-levels/adj-6/adjustments", { type: "PURCHASE", quantity: 2 }, key)))
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
      expect((await api.get("/v1/stock-levels/adj-6")).body.onHand).toBe(2)
    })

    it("refuses invalid adjustments with 400 and the failing field", async () => {
      await api.put("/v1/stock-levels/adj-7", {})
      const cases: Array<[unknown, string]> = [
        [{ type: "SALE", quantity: 0 }, "/quantity"],
        [{ type: "PURCHASE", quantity: 1.5 }, "/quantity"],
        [{ type: "PURCHASE", quantity: "3" }, "/quantity"],
        [{ type: "STEAL", quantity: 1 }, "/type"],
        [{ quantity: 1 }, "/type"],
        [{ type: "RECOUNT", quantity: -1 }, "/quantity"],
        [{ type: "PURCHASE", quantity: 1e12 }, "/quantity"],
        [{ type: "PURCHASE", quantity: 1, expectedVersion: -1 }, "/expectedVersion"]
      ]
      for (const [body, path] of cases) {
        const res = await api.post("/v1/stock-levels/adj-7/adjustments", body)
        expectProblem(res, 400, "validation-failed")
        expect(res.body.errors.map((e: any) => e.path)).toContain(path)
      }
    })

    it("answers malformed JSON with 400, a non-JSON body with 415 and an oversized body with 413", async () => {
      await api.put("/v1/stock-levels/adj-8", {})
      const malformed = await api.raw("POST", "/v1/stock-levels/adj-8/adjustments", '{"type":', { "content-type": "application/json" })
      expectProblem(malformed, 400, "validation-failed")
      const text = await api.raw("POST", "/v1/stock-levels/adj-8/adjustments", "type=SALE", { "content-type": "text/plain" })
      expectProblem(text, 415, "unsupported-media-type")
      const huge = JSON.stringify({ type: "PURCHASE", quantity: 1, reason: "x".repeat(70 * 1024) })
      expectProblem(await api.raw("POST", "/v1/stock-levels/adj-8/adjustments", huge, { "content-type": "application/json" }), 413, "payload-too-large")
      expect((await api.get("/v1/stock-levels/adj-8")).body.version).toBe(1)
    })
  })

  describe("GET /v1/stock-levels/{variantId}/history", () => {
    it("pages newest first", async () => {
      await api.put("/v1/stock-levels/hist-1", {})
      for (const q of [1, 2, 3, 4, 5]) await purchase("hist-1", q)
      const first = await api.get("/v1/stock-levels/hist-1/history?limit=2")
      expect(first.body.items.map((e: any) => e.onHandChange)).toEqual([5, 4])
      const second = await api.get(`/v1/stock-levels/hist-1/history?limit=2&cursor=${first.body.nextCursor}`)
      expect(second.body.items.map((e: any) => e.onHandChange)).toEqual([3, 2])
      const third = await api.get(`/v1/stock-levels/hist-1/history?limit=2&cursor=${second.body.nextCursor}`)
      expect(third.body.items.map((e: any) => e.onHandChange)).toEqual([1])
      expect(third.body.nextCursor).toBeNull()
    })

    it("answers 404 for an unknown variant", async () => {
      expectProblem(await api.get("/v1/stock-levels/ghost/history"), 404, "variant-not-found")
    })
  })

  describe("conventions", () => {
    it("echoes a given X-Correlation-Id and stores it with history and events", async () => {
      await api.put("/v1/stock-levels/corr-1", {})
      const res = await api.post("/v1/stock-levels/corr-1/adjustments", { type: "PURCHASE", quantity: 1 }, { "x-correlation-id": "corr-abc-1" })
      expect(res.headers.get("x-correlation-id")).toBe("corr-abc-1")
      expect(res.body.entry.correlationId).toBe("corr-abc-1")
      const [event] = await query(app.database.url, "SELECT payload, correlation_id FROM outbox WHERE aggregate_id = 'corr-1' ORDER BY id DESC LIMIT 1")
      expect(event!.correlation_id).toBe("corr-abc-1")
      expect(event!.payload.correlationId).toBe("corr-abc-1")
    })

    it("generates a correlation id when none (or a malformed one) is given", async () => {
      const res = await api.get("/v1/stock-levels/nothing-here", { "x-correlation-id": "bad id with spaces" })
      expect(res.headers.get("x-correlation-id")).toMatch(/^[0-9a-f-]{36}$/)
    })

    it("answers unknown routes with 404 problem+json", async () => {
      expectProblem(await api.get("/v1/nothing"), 404, "not-found")
    })

    it("serves the OpenAPI document and Swagger UI", async () => {
      const doc = await api.get("/openapi.json")
      expect(doc.status).toBe(200)
      expect(doc.body.openapi).toMatch(/^3\.1/)
      expect(Object.keys(doc.body.paths)).toContain("/v1/stock-levels/{variantId}/adjustments")
      const docs = await fetch(app.baseUrl + "/docs")
      expect(docs.status).toBe(200)
      expect(await docs.text()).toContain("swagger")
    })

    it("reports liveness and readiness", async () => {
      expect((await api.get("/health/live")).body).toEqual({ status: "ok" })
      const ready = await api.get("/health/ready")
      expect(ready.status).toBe(200)
      expect(ready.body).toMatchObject({ status: "ready", checks: { database: { status: "up" }, shutdown: { status: "up" } } })
    })
  })

  describe("locations (v1 calls act on `default`)", () => {
    it("stocks a v1-created variant at exactly `default`, with the same numbers as its totals", async () => {
      const created = await api.put("/v1/stock-levels/loc-1", { lowStockThreshold: 2 })
      expect(created.body.locations).toEqual([
        { locationId: "default", onHand: 0, reserved: 0, safetyStock: 0, available: 0, version: 1, updatedAt: expect.any(String) }
      ])
      await purchase("loc-1", 7)
      const sold = await api.post("/v1/stock-levels/loc-1/adjustments", { type: "SALE", quantity: 2 })
      expect(sold.body.stockLevel).toMatchObject({ onHand: 5, reserved: 0, available: 5, version: 3 })
      expect(sold.body.stockLevel.locations).toEqual([
        { locationId: "default", onHand: 5, reserved: 0, safetyStock: 0, available: 5, version: 3, updatedAt: expect.any(String) }
      ])
      expect(sold.body.entry).toMatchObject({ locationId: "default", onHandChange: -2, onHandAfter: 5, reservedAfter: 0 })
      const level = (await api.get("/v1/stock-levels/loc-1")).body
      const batch = (await api.get("/v1/stock-levels?variantId=loc-1")).body.items[0]
      for (const read of [level, batch]) {
        expect(read.locations).toHaveLength(1)
        const [location] = read.locations
        expect(location).toMatchObject({ locationId: "default", onHand: read.onHand, reserved: read.reserved, available: read.available })
        expect(Date.parse(location.updatedAt)).not.toBeNaN()
      }
      const history = (await api.get("/v1/stock-levels/loc-1/history")).body.items
      expect(history.map((e: any) => [e.locationId, e.type, e.onHandAfter])).toEqual([["default", "SALE", 5], ["default", "PURCHASE", 7]])
      const rows = await query(app.database.url, "SELECT location_id, on_hand, reserved FROM location_stock WHERE variant_id = 'loc-1'")
      expect(rows).toEqual([{ location_id: "default", on_hand: 5, reserved: 0 }])
    })

    it("stocks a variant created from a ProductVariantCreatedEvent at `default` too, once", async () => {
      const create = () => app.run(Effect.flatMap(StockLevels, (levels) => levels.createIfAbsent("loc-product", "SKU-P")))
      expect(await create()).toBe(true)
      expect(await create()).toBe(false)
      const level = (await api.get("/v1/stock-levels/loc-product")).body
      expect(level).toMatchObject({ sku: "SKU-P", onHand: 0, version: 1 })
      expect(level.locations.map((l: any) => [l.locationId, l.onHand, l.version])).toEqual([["default", 0, 1]])
    })

    it("has the database refuse a direct write of a variant's totals (they change only through location_stock)", async () => {
      await api.put("/v1/stock-levels/loc-guard", {})
      await purchase("loc-guard", 4)
      for (const statement of [
        "UPDATE stock_levels SET on_hand = 10 WHERE variant_id = 'loc-guard'",
        "UPDATE stock_levels SET reserved = 1 WHERE variant_id = 'loc-guard'",
        "UPDATE stock_levels SET available = 9 WHERE variant_id = 'loc-guard'",
        "INSERT INTO stock_levels (variant_id, on_hand) VALUES ('loc-guard-2', 5)"
      ]) {
        await expect(query(app.database.url, statement)).rejects.toThrow(/stock_levels totals change only through location_stock|starts at 0/)
      }
      expect((await api.get("/v1/stock-levels/loc-guard")).body).toMatchObject({ onHand: 4, reserved: 0, available: 4, version: 2 })
      expect((await api.get("/v1/stock-levels/loc-guard-2")).status).toBe(404)
    })

    it("publishes StockLevelChangedEvent with the location's id and values beside the variant's totals", async () => {
      await api.put("/v1/stock-levels/loc-event", {})
      await purchase("loc-event", 6)
      const [event] = await query(
        app.database.url,
        "SELECT payload FROM outbox WHERE aggregate_id = 'loc-event' AND event_type = 'StockLevelChangedEvent' ORDER BY id DESC LIMIT 1"
      )
      expect(event!.payload.data).toEqual({
        variantId: "loc-event",
        onHand: 6,
        reserved: 0,
        available: 6,
        version: 2,
        changeType: "PURCHASE",
        onHandChange: 6,
        reservedChange: 0,
        locationId: "default",
        location: { onHand: 6, reserved: 0, safetyStock: 0, available: 6, version: 2 }
      })
    })

    it("keeps making every accepted adjustment a new version, also a RECOUNT to the current count", async () => {
      await api.put("/v1/stock-levels/loc-recount", {})
      await purchase("loc-recount", 3)
      const recount = await api.post("/v1/stock-levels/loc-recount/adjustments", { type: "RECOUNT", quantity: 3 })
      expect(recount.status).toBe(200)
      expect(recount.body.stockLevel).toMatchObject({ onHand: 3, version: 3 })
      expect(recount.body.entry).toMatchObject({ locationId: "default", onHandChange: 0, onHandAfter: 3 })
      // Nothing changed at the location: its own version stays.
      expect(recount.body.stockLevel.locations[0]).toMatchObject({ onHand: 3, version: 2 })
    })
  })
})
