import * as fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { reconcile } from "../../src/services/Reconcile.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { client, type JsonResponse } from "../support/http.js"

/**
 * Concurrency against the real PostgreSQL, over HTTP, as peers would hit the service during a sale,
 * with group-commit batches of one request (as before group commit), of a few and of the default size.
 */
describe.each(["1", "7", "256"])("reservations under concurrency (RESERVATION_BATCH_MAX %s)", (batchMax) => {
  let app: TestApp
  let api: ReturnType<typeof client>
  const stock = async (variantId: string, onHand: number) => {
    expect((await api.put(`/v1/stock-levels/${variantId}`, {})).status).toBe(201)
    expect((await api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: onHand })).status).toBe(200)
  }
  const level = async (variantId: string) => (await api.get(`/v1/stock-levels/${variantId}`)).body
  const statuses = (responses: ReadonlyArray<JsonResponse>) =>
    responses.reduce<Record<number, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {})
  const expectNoDrift = async () => expect((await app.run(reconcile)).drifts).toEqual([])

  beforeAll(async () => {
    // Correctness under concurrency, not latency: on a loaded CI machine a 500-request burst may wait
    // longer than the default pool / request deadlines, whose 503 (overload) is tested elsewhere.
    app = await startTestApp({
      label: "resvconc",
      env: { RESERVATION_BATCH_MAX: batchMax, RATE_LIMIT_RPS: "0", DB_CONNECT_TIMEOUT_MS: "60000", REQUEST_TIMEOUT_MS: "60000", DB_STATEMENT_TIMEOUT_MS: "60000" }
    })
    api = app.api
  })
  afterAll(() => app?.close())

  it("500 simultaneous single-unit reservations of a variant with 100 units: exactly 100 created, 400 refused, no 5xx", async () => {
    await stock("hot", 100)
    const responses = await Promise.all(
      Array.from({ length: 500 }, (_, i) => api.post("/v1/reservations", { orderId: `hot-${i}`, lines: [{ variantId: "hot", quantity: 1 }] }))
    )
    expect(statuses(responses)).toEqual({ 201: 100, 409: 400 })
    expect(responses.filter((r) => r.status === 409).every((r) => r.body.code === "insufficient-stock")).toBe(true)
    expect(await level("hot")).toMatchObject({ onHand: 100, reserved: 100, available: 0, status: "OUT_OF_STOCK" })
    const [counts] = await query<{ reserves: number; reserved_events: number; failed_events: number }>(
      app.database.url,
      `SELECT (SELECT count(*)::int FROM inventory_history WHERE variant_id = 'hot' AND type = 'RESERVE') AS reserves,
              (SELECT count(*)::int FROM outbox WHERE event_type = 'InventoryReservedEvent' AND aggregate_id LIKE 'hot-%') AS reserved_events,
              (SELECT count(*)::int FROM outbox WHERE event_type = 'InventoryReservationFailedEvent' AND aggregate_id LIKE 'hot-%') AS failed_events`
    )
    expect(counts).toEqual({ reserves: 100, reserved_events: 100, failed_events: 400 })
    await expectNoDrift()
  })

  it("the same orderId sent 50 times at once reserves once: one 201, 49 × 200 with the same reservation", async () => {
    await stock("dup", 10)
    const body = { orderId: "dup-order", lines: [{ variantId: "dup", quantity: 3 }] }
    const responses = await Promise.all(Array.from({ length: 50 }, () => api.post("/v1/reservations", body)))
    expect(statuses(responses)).toEqual({ 200: 49, 201: 1 })
    expect(new Set(responses.map((r) => JSON.stringify(r.body))).size).toBe(1)
    expect(await level("dup")).toMatchObject({ reserved: 3 })
  })

  it("multi-line reservations over overlapping variants in random orders never deadlock into errors or oversell", async () => {
    const variants = Array.from({ length: 8 }, (_, i) => `multi-${i}`)
    for (const v of variants) await stock(v, 40)
    const line = fc.record({ variantId: fc.constantFrom(...variants), quantity: fc.integer({ min: 1, max: 4 }) })
    const orders = fc.sample(fc.array(line, { minLength: 2, maxLength: 6 }), { numRuns: 300, seed: 42 })
    const responses = await Promise.all(orders.map((lines, i) => api.post("/v1/reservations", { orderId: `multi-${i}`, lines })))
    const counts = statuses(responses)
    expect(Object.keys(counts).every((s) => s === "201" || s === "409")).toBe(true)
    expect(counts[201]).toBeGreaterThan(0)
    // What the 201s reserved is exactly what the stock levels hold, and never more than onHand.
    const reservedBy = new Map<string, number>()
    for (const r of responses.filter((r) => r.status === 201)) {
      for (const l of r.body.lines) reservedBy.set(l.variantId, (reservedBy.get(l.variantId) ?? 0) + l.quantity)
    }
    for (const v of variants) {
      const l = await level(v)
      expect(l.reserved).toBe(reservedBy.get(v) ?? 0)
      expect(l.reserved).toBeLessThanOrEqual(l.onHand)
    }
    await expectNoDrift()

    // Then releases, commits and their repeats at once, in random order: still no 5xx, no drift.
    const created = responses.flatMap((r) => (r.status === 201 ? [r.body.orderId as string] : []))
    const all = created.flatMap((id, i) => (i % 2 === 0 ? [`${id}/release`, `${id}/release`] : [`${id}/commit`, `${id}/commit`, `${id}/release`]))
    const actions = fc.sample(fc.shuffledSubarray(all, { minLength: all.length }), { numRuns: 1, seed: 7 })[0]!
    const second = await Promise.all(actions.map((a) => api.post(`/v1/reservations/${a}`)))
    expect(second.every((r) => r.status === 200 || (r.status === 409 && r.body.code === "reservation-not-active"))).toBe(true)
    for (const v of variants) expect((await level(v)).reserved).toBe(0)
    await expectNoDrift()
  })
})
