import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { bearer } from "../support/auth.js"
import { client } from "../support/http.js"

const expectProblem = (res: { status: number; headers: Headers; body: any }, status: number, code: string) => {
  expect(res.status).toBe(status)
  expect(res.headers.get("content-type")).toContain("application/problem+json")
  expect(res.body).toMatchObject({ status, code, type: expect.any(String), title: expect.any(String), detail: expect.any(String) })
  expect(JSON.stringify(res.body)).not.toMatch(/\bat .*\.ts:\d+|SELECT|INSERT|UPDATE /)
}

describe("POST /v1/adjustments (bulk adjustments)", () => {
  let app: TestApp
  let api: ReturnType<typeof client>
  beforeAll(async () => {
    app = await startTestApp({ label: "bulk-adjustments" })
    api = app.api
    expect((await api.put("/v1/locations/bulk-wh", { name: "Bulk warehouse" })).status).toBe(201)
  })
  afterAll(() => app?.close())

  /** A variant with `onHand` units at `default`. */
  const stocked = async (variantId: string, onHand: number) => {
    expect((await api.put(`/v1/stock-levels/${variantId}`, {})).status).toBe(201)
    if (onHand > 0) expect((await api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: onHand })).status).toBe(200)
  }
  const level = async (variantId: string) => (await api.get(`/v1/stock-levels/${variantId}`)).body
  const history = async (variantId: string) => (await api.get(`/v1/stock-levels/${variantId}/history`)).body.items as Array<any>
  const stockEvents = (variantIds: ReadonlyArray<string>) =>
    query(
      app.database.url,
      "SELECT aggregate_id, payload FROM outbox WHERE aggregate_id = ANY($1) AND event_type = 'StockLevelChangedEvent' ORDER BY id",
      [variantIds]
    )

  describe("atomic (default)", () => {
    it("applies every item in request order on the running values, one history entry and event per item", async () => {
      await stocked("ba-1", 5)
      await stocked("ba-2", 0)
      const res = await api.post("/v1/adjustments", {
        items: [
          { variantId: "ba-2", type: "PURCHASE", quantity: 10, reference: "po-1" },
          { variantId: "ba-1", type: "PURCHASE", quantity: 4 },
          // Decided after the item before it: 9 on hand, the variant at version 3.
          { variantId: "ba-1", type: "SALE", quantity: 8, expectedVersion: 3 },
          { variantId: "ba-1", type: "PURCHASE", quantity: 2, locationId: "bulk-wh" },
          { variantId: "ba-2", type: "RECOUNT", quantity: 7 }
        ]
      })
      expect(res.status).toBe(200)
      expect(res.body.results.map((r: any) => [r.index, r.status])).toEqual([[0, 200], [1, 200], [2, 200], [3, 200], [4, 200]])
      // Each item answers the variant as it left it.
      expect(res.body.results.map((r: any) => [r.stockLevel.variantId, r.stockLevel.onHand, r.stockLevel.version])).toEqual([
        ["ba-2", 10, 2],
        ["ba-1", 9, 3],
        ["ba-1", 1, 4],
        ["ba-1", 3, 5],
        ["ba-2", 7, 3]
      ])
      expect(res.body.results[3].stockLevel.locations.map((l: any) => [l.locationId, l.onHand])).toEqual([["default", 1], ["bulk-wh", 2]])
      expect(await level("ba-1")).toMatchObject({ onHand: 3, available: 3, version: 5 })
      expect(await level("ba-2")).toMatchObject({ onHand: 7, version: 3 })

      const entries = await history("ba-1")
      expect(entries.slice(0, 3).map((e) => [e.type, e.locationId, e.onHandChange, e.onHandAfter])).toEqual([
        ["PURCHASE", "bulk-wh", 2, 2],
        ["SALE", "default", -8, 1],
        ["PURCHASE", "default", 4, 9]
      ])
      expect((await history("ba-2")).map((e) => [e.type, e.onHandChange, e.reference])).toEqual([["RECOUNT", -3, null], ["PURCHASE", 10, "po-1"]])

      const events = await stockEvents(["ba-1", "ba-2"])
      const bulkEvents = events.filter((e) => !(e.aggregate_id === "ba-1" && e.payload.data.version === 2))
      expect(bulkEvents.map((e) => [e.aggregate_id, e.payload.data.changeType, e.payload.data.locationId, e.payload.data.version])).toEqual([
        ["ba-2", "PURCHASE", "default", 2],
        ["ba-1", "PURCHASE", "default", 3],
        ["ba-1", "SALE", "default", 4],
        ["ba-1", "PURCHASE", "bulk-wh", 5],
        ["ba-2", "RECOUNT", "default", 3]
      ])
      expect(bulkEvents[3]!.payload.data.location).toMatchObject({ onHand: 2, reserved: 0, available: 2 })
    })

    it("refuses the whole batch with 409 batch-refused listing every refused item, and applies nothing", async () => {
      await stocked("bb-1", 5)
      await stocked("bb-2", 1_000_000_000 - 1)
      const before = [await level("bb-1"), await level("bb-2")]
      const eventsBefore = await stockEvents(["bb-1", "bb-2"])
      const res = await api.post("/v1/adjustments", {
        items: [
          { variantId: "bb-1", type: "PURCHASE", quantity: 1 },
          { variantId: "bb-1", type: "SALE", quantity: 7 },
          { variantId: "bb-missing", type: "PURCHASE", quantity: 1 },
          { variantId: "bb-1", type: "PURCHASE", quantity: 1, locationId: "nowhere" },
          { variantId: "bb-1", type: "PURCHASE", quantity: 1, expectedVersion: 2 },
          { variantId: "bb-2", type: "PURCHASE", quantity: 2 },
          { variantId: "bb-1", type: "SALE", quantity: 1, locationId: "bulk-wh" },
          { variantId: "bb-1", type: "SALE", quantity: 6 },
          // The variant's total is bounded too, whichever location takes it past the limit.
          { variantId: "bb-2", type: "PURCHASE", quantity: 2, locationId: "bulk-wh" }
        ]
      })
      expectProblem(res, 409, "batch-refused")
      expect(res.body.failures.map((f: any) => [f.index, f.code])).toEqual([
        [1, "insufficient-stock"],
        [2, "variant-not-found"],
        [3, "location-not-found"],
        [4, "version-conflict"],
        [5, "stock-limit-exceeded"],
        [6, "insufficient-stock"],
        [8, "stock-limit-exceeded"]
      ])
      expect(res.body.failures.every((f: any) => typeof f.detail === "string" && f.detail.length > 0)).toBe(true)
      expect([await level("bb-1"), await level("bb-2")]).toEqual(before)
      expect(await stockEvents(["bb-1", "bb-2"])).toEqual(eventsBefore)
      expect((await history("bb-1")).length).toBe(1)
      const stockedAt = await query(app.database.url, "SELECT variant_id, location_id FROM location_stock WHERE variant_id LIKE 'bb-%' ORDER BY 1, 2")
      expect(stockedAt.map((r) => `${r.variant_id}@${r.location_id}`)).toEqual(["bb-1@default", "bb-2@default"])
    })
  })

  describe("atomic: false", () => {
    it("applies or refuses each item on its own, answering what the single adjustment would have, in request order", async () => {
      await stocked("bn-1", 3)
      const res = await api.post("/v1/adjustments", {
        atomic: false,
        items: [
          { variantId: "bn-1", type: "SALE", quantity: 5 },
          { variantId: "bn-1", type: "PURCHASE", quantity: 2 },
          { variantId: "bn-1", type: "SALE", quantity: 5 },
          { variantId: "bn-nope", type: "SALE", quantity: 1 },
          { variantId: "bn-1", type: "PURCHASE", quantity: 1, locationId: "nowhere" },
          { variantId: "bn-1", type: "RETURN", quantity: 4, locationId: "bulk-wh", expectedVersion: 4 }
        ]
      })
      expect(res.status).toBe(200)
      expect(res.body.results.map((r: any) => [r.index, r.status, r.problem?.code ?? null, r.stockLevel?.onHand ?? null])).toEqual([
        [0, 409, "insufficient-stock", null],
        [1, 200, null, 5],
        [2, 200, null, 0],
        [3, 404, "variant-not-found", null],
        [4, 404, "location-not-found", null],
        [5, 200, null, 4]
      ])
      expect(res.body.results[0].problem).toEqual({
        type: expect.stringContaining("insufficient-stock"),
        title: expect.any(String),
        status: 409,
        detail: expect.any(String),
        code: "insufficient-stock"
      })
      expect(res.body.results[0].stockLevel).toBeUndefined()
      expect(await level("bn-1")).toMatchObject({ onHand: 4, version: 5 })
      expect((await history("bn-1")).map((e) => [e.type, e.locationId])).toEqual([
        ["RETURN", "bulk-wh"],
        ["SALE", "default"],
        ["PURCHASE", "default"],
        ["PURCHASE", "default"]
      ])
      expect((await stockEvents(["bn-1"])).length).toBe(4)
    })
  })

  describe("limits and input", () => {
    it("needs a token with inventory:adjust (401 without, 403 with read only), applying nothing", async () => {
      await stocked("bs-1", 0)
      const body = { items: [{ variantId: "bs-1", type: "PURCHASE", quantity: 1 }] }
      expectProblem(await client(app.baseUrl).post("/v1/adjustments", body), 401, "unauthenticated")
      expectProblem(await client(app.baseUrl, await bearer("inventory:read")).post("/v1/adjustments", body), 403, "forbidden")
      expect(await level("bs-1")).toMatchObject({ onHand: 0, version: 1 })
    })

    it("refuses no items, more than 1,000 and a malformed item with 400 for the whole call", async () => {
      await stocked("bl-1", 0)
      expectProblem(await api.post("/v1/adjustments", { items: [] }), 400, "validation-failed")
      const many = Array.from({ length: 1001 }, () => ({ variantId: "bl-1", type: "PURCHASE", quantity: 1 }))
      expectProblem(await api.post("/v1/adjustments", { items: many }), 400, "validation-failed")
      const malformed = await api.post("/v1/adjustments", {
        atomic: false,
        items: [{ variantId: "bl-1", type: "PURCHASE", quantity: 1 }, { variantId: "bl-1", type: "SALE", quantity: 0 }]
      })
      expectProblem(malformed, 400, "validation-failed")
      expect(malformed.body.errors).toContainEqual({ path: "/items/1/quantity", message: expect.any(String) })
      expectProblem(await api.post("/v1/adjustments", { items: [{ variantId: "bl-1", type: "PURCHASE", quantity: 1 }], atomic: null }), 400, "validation-failed")
      expect(await level("bl-1")).toMatchObject({ onHand: 0, version: 1 })
    })

    it("applies 1,000 items in one call", async () => {
      await stocked("bk-1", 0)
      const items = Array.from({ length: 1000 }, () => ({ variantId: "bk-1", type: "PURCHASE", quantity: 1 }))
      const res = await api.post("/v1/adjustments", { items })
      expect(res.status).toBe(200)
      expect(res.body.results).toHaveLength(1000)
      expect(res.body.results[999]).toMatchObject({ index: 999, status: 200, stockLevel: { onHand: 1000, version: 1001 } })
      expect(await level("bk-1")).toMatchObject({ onHand: 1000, version: 1001 })
      expect((await stockEvents(["bk-1"])).length).toBe(1000)
    }, 30_000)

    it("takes 1,000 items with long ids and reasons (over the 64 KiB limit of other bodies), and answers 413 past its own limit", async () => {
      await stocked("bk-long-" + "x".repeat(100), 0)
      const item = { variantId: "bk-long-" + "x".repeat(100), type: "PURCHASE", quantity: 1, reason: "r".repeat(200) }
      const items = Array.from({ length: 1000 }, () => item)
      expect(JSON.stringify({ items }).length).toBeGreaterThan(256 * 1024)
      const res = await api.post("/v1/adjustments", { items })
      expect(res.status).toBe(200)
      expect(res.body.results).toHaveLength(1000)
      const huge = Array.from({ length: 1000 }, () => ({ ...item, reason: "r".repeat(512), reference: "f".repeat(512) }))
      expectProblem(await api.post("/v1/adjustments", { items: [...huge, ...huge].slice(0, 1000), padding: "p".repeat(1024 * 1024) }), 413, "payload-too-large")
      // Every other route keeps BODY_LIMIT_BYTES.
      expectProblem(await api.post("/v1/reservations", { orderId: "o-big", lines: [{ variantId: "v", quantity: 1 }], padding: "p".repeat(70 * 1024) }), 413, "payload-too-large")
    }, 30_000)
  })

  describe("Idempotency-Key", () => {
    it("replays the stored answer for the same body and refuses the key with another body (422)", async () => {
      await stocked("bi-1", 0)
      const key = { "idempotency-key": "bulk-key-1" }
      const body = { items: [{ variantId: "bi-1", type: "PURCHASE", quantity: 3 }] }
      const first = await api.post("/v1/adjustments", body, key)
      expect(first.status).toBe(200)
      expect(first.headers.get("idempotent-replayed")).toBeNull()
      const retry = await api.post("/v1/adjustments", body, key)
      expect(retry.status).toBe(200)
      expect(retry.headers.get("idempotent-replayed")).toBe("true")
      expect(retry.body).toEqual(first.body)
      expect(await level("bi-1")).toMatchObject({ onHand: 3, version: 2 })
      expectProblem(await api.post("/v1/adjustments", { items: [{ variantId: "bi-1", type: "PURCHASE", quantity: 4 }] }, key), 422, "idempotency-key-reused")
      expect((await stockEvents(["bi-1"])).length).toBe(1)
    })

    it("keeps keys per caller: another caller's same key is a new request", async () => {
      await stocked("bi-3", 0)
      const key = { "idempotency-key": "bulk-key-3" }
      expect((await api.post("/v1/adjustments", { items: [{ variantId: "bi-3", type: "PURCHASE", quantity: 1 }] }, key)).status).toBe(200)
      const other = client(app.baseUrl, await bearer("inventory:adjust", "other-client"))
      const res = await other.post("/v1/adjustments", { items: [{ variantId: "bi-3", type: "PURCHASE", quantity: 2 }] }, key)
      expect(res.status).toBe(200)
      expect(res.headers.get("idempotent-replayed")).toBeNull()
      expect(await level("bi-3")).toMatchObject({ onHand: 3 })
    })

    it("does not store a refusal: a retry after the situation changed can succeed", async () => {
      await stocked("bi-2", 0)
      const key = { "idempotency-key": "bulk-key-2" }
      const body = { items: [{ variantId: "bi-2", type: "SALE", quantity: 2 }] }
      expectProblem(await api.post("/v1/adjustments", body, key), 409, "batch-refused")
      await api.post("/v1/stock-levels/bi-2/adjustments", { type: "PURCHASE", quantity: 2 })
      const retry = await api.post("/v1/adjustments", body, key)
      expect(retry.status).toBe(200)
      expect(retry.body.results[0].stockLevel).toMatchObject({ onHand: 0 })
    })
  })

  describe("concurrency", () => {
    /** Deadlocks retried so far: the transaction retry hides them from clients, the metric does not. */
    const deadlocks = async () => {
      const text = await (await fetch(`${app.baseUrl}/metrics`)).text()
      const line = text.split("\n").find((l) => l.startsWith("inventory_db_transaction_retries_total{") && l.includes('code="40P01"'))
      return line === undefined ? 0 : Number(line.split(" ").pop())
    }

    it("runs two bulk adjustments over the same variants in opposite orders at once: both succeed", async () => {
      const ids = ["bc-1", "bc-2", "bc-3", "bc-4"]
      for (const id of ids) await stocked(id, 100)
      const forward = ids.flatMap((variantId) => [
        { variantId, type: "SALE", quantity: 1 },
        { variantId, type: "PURCHASE", quantity: 1, locationId: "bulk-wh" }
      ])
      const backward = [...forward].reverse()
      const deadlocksBefore = await deadlocks()
      const runs = await Promise.all(
        Array.from({ length: 6 }, (_, i) => api.post("/v1/adjustments", { items: i % 2 === 0 ? forward : backward }))
      )
      expect(runs.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200])
      expect(await deadlocks()).toBe(deadlocksBefore)
      for (const id of ids) {
        const after = await level(id)
        expect(after).toMatchObject({ onHand: 100, version: 2 + 12 })
        expect(after.locations.map((l: any) => [l.locationId, l.onHand])).toEqual([["default", 94], ["bulk-wh", 6]])
      }
    }, 30_000)

    it("does not deadlock with reservations over the same variants", async () => {
      const ids = ["bd-1", "bd-2", "bd-3", "bd-4"]
      for (const id of ids) await stocked(id, 50)
      const bulk = [...ids].reverse().map((variantId) => ({ variantId, type: "PURCHASE", quantity: 1 }))
      const lines = ids.map((variantId) => ({ variantId, quantity: 1 }))
      const deadlocksBefore = await deadlocks()
      for (let round = 0; round < 5; round++) {
        const runs = await Promise.all([
          api.post("/v1/adjustments", { items: bulk }),
          api.post("/v1/reservations", { orderId: `bd-order-${round}-a`, lines }),
          api.post("/v1/adjustments", { items: bulk }),
          api.post("/v1/reservations", { orderId: `bd-order-${round}-b`, lines })
        ])
        expect(runs.map((r) => r.status)).toEqual([200, 201, 200, 201])
      }
      expect(await deadlocks()).toBe(deadlocksBefore)
      for (const id of ids) expect(await level(id)).toMatchObject({ onHand: 60, reserved: 10 })
    }, 60_000)
  })
})
