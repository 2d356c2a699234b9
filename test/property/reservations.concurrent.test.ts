import * as fc from "fast-check"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startHarness, type Answer, type Harness } from "./harness.js"

/**
 * The concurrent variant: random reservations, releases and commits of overlapping orders and
 * variants fired all at once against the real PostgreSQL; afterwards the invariants hold and the
 * history and outbox tell exactly the story the answers told.
 */
const RUNS = Number(process.env["PROPERTY_RUNS_CONCURRENT"] ?? 12)
const VARIANTS = ["v0", "v1", "v2", "v3"]
const ORDERS = Array.from({ length: 15 }, (_, i) => `o${i}`)
const DOMAIN_ERRORS = new Set(["ReservationRefused", "ReservationConflict", "ReservationNotFound", "ReservationNotActive"])

const line = fc.record({ variantId: fc.constantFrom(...VARIANTS), quantity: fc.integer({ min: 1, max: 3 }) })
const operation = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant("reserve" as const), orderId: fc.constantFrom(...ORDERS), lines: fc.array(line, { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("release" as const), orderId: fc.constantFrom(...ORDERS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("commit" as const), orderId: fc.constantFrom(...ORDERS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("sweep" as const) }) }
)

describe("reservations fired concurrently (fast-check, real PostgreSQL)", () => {
  let harness: Harness
  let db: pg.Client
  beforeAll(async () => {
    harness = await startHarness("resvconcprop")
    db = new pg.Client({ connectionString: harness.database.url })
    await db.connect()
  })
  afterAll(async () => {
    await db?.end()
    await harness?.close()
  })

  it("never oversells, never fails with anything but a domain answer, and the records add up", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(...VARIANTS.map(() => fc.integer({ min: 0, max: 12 }))),
        fc.array(operation, { minLength: 5, maxLength: 40 }),
        fc.array(operation, { minLength: 0, maxLength: 40 }),
        async (stock, before, after) => {
          await harness.ops.truncate()
          for (const [i, id] of VARIANTS.entries()) {
            await harness.ops.configure(id, 2)
            if (stock[i]! > 0) await harness.ops.adjust(id, "PURCHASE", stock[i]!)
          }
          const fire = (operations: ReadonlyArray<typeof operation extends fc.Arbitrary<infer O> ? O : never>) =>
            Promise.all(
              operations.map((o): Promise<Answer> =>
                o.op === "reserve"
                  ? harness.ops.reserve(o.orderId, o.lines, 900)
                  : o.op === "release"
                    ? harness.ops.release(o.orderId)
                    : o.op === "commit"
                      ? harness.ops.commit(o.orderId)
                      : harness.ops.sweep().then(() => ({ ok: null }))
              )
            )
          // A first burst, then time passes its ttl: the second burst races the sweep against lazy
          // expiry (a refused reservation expires due ones), releases and commits of due reservations.
          await harness.clock.set(Date.parse("2030-01-01T00:00:00.000Z"))
          const first = await fire(before)
          await harness.clock.advance(1_000_000)
          const answers = [...first, ...(await fire(after))]
          for (const a of answers) if ("error" in a) expect(DOMAIN_ERRORS).toContain(a.error)

          expect((await harness.ops.reconcile()).drifts).toEqual([])
          const { rows: levels } = await db.query("SELECT variant_id, on_hand, reserved FROM stock_levels ORDER BY variant_id")
          for (const l of levels) expect(0 <= l.reserved && l.reserved <= l.on_hand).toBe(true)

          const { rows: reservations } = await db.query(
            "SELECT r.order_id, r.status, sum(l.quantity)::int AS units, count(*)::int AS lines FROM reservations r JOIN reservation_lines l USING (order_id) GROUP BY r.order_id, r.status"
          )
          const created = answers.filter((a) => "ok" in a && (a.ok as { created?: boolean } | null)?.created === true).length
          expect(created).toBe(reservations.length)
          // onHand went down by exactly the committed units.
          const committedUnits = reservations.filter((r) => r.status === "COMMITTED").reduce((s, r) => s + r.units, 0)
          expect(levels.reduce((s, l) => s + l.on_hand, 0)).toBe(stock.reduce((s, n) => s + n, 0) - committedUnits)

          const { rows: events } = await db.query(
            "SELECT event_type, payload->'data'->>'reason' AS reason, count(*)::int AS n FROM outbox GROUP BY 1, 2"
          )
          const count = (type: string, reason: string | null = null) => events.find((e) => e.event_type === type && e.reason === reason)?.n ?? 0
          const byStatus = (status: string) => reservations.filter((r) => r.status === status)
          expect(count("InventoryReservedEvent")).toBe(reservations.length)
          expect(count("InventoryReservationFailedEvent")).toBe(answers.filter((a) => "error" in a && a.error === "ReservationRefused").length)
          expect(count("InventoryReservationReleasedEvent", "RELEASED")).toBe(byStatus("RELEASED").length)
          expect(count("InventoryReservationReleasedEvent", "EXPIRED")).toBe(byStatus("EXPIRED").length)
          expect(count("InventoryReservationCommittedEvent")).toBe(byStatus("COMMITTED").length)

          // One history entry (and one StockLevelChanged) per variant per change.
          const { rows: history } = await db.query("SELECT type, count(*)::int AS n FROM inventory_history GROUP BY type")
          const entries = (type: string) => history.find((h) => h.type === type)?.n ?? 0
          const linesOf = (rs: ReadonlyArray<{ lines: number }>) => rs.reduce((s, r) => s + r.lines, 0)
          expect(entries("RESERVE")).toBe(linesOf(reservations))
          expect(entries("RELEASE")).toBe(linesOf(byStatus("RELEASED")))
          expect(entries("COMMIT")).toBe(linesOf(byStatus("COMMITTED")))
          expect(entries("EXPIRE")).toBe(linesOf(byStatus("EXPIRED")))
          expect(count("StockLevelChangedEvent")).toBe(history.reduce((s, h) => s + h.n, 0))
        }
      ),
      { numRuns: RUNS }
    )
  })

  it("across 3 locations (40 + 30 + 30), 300 one-unit reservations 60 at a time reserve exactly 100, as allocated", async () => {
    await harness.ops.truncate()
    const stocked = { "conc-a": 40, "conc-b": 30, "conc-c": 30 } as const
    for (const [i, locationId] of Object.keys(stocked).entries()) await harness.ops.location(locationId, { priority: i + 1 })
    await harness.ops.configure("hot", 0)
    for (const [locationId, units] of Object.entries(stocked)) {
      expect(await harness.ops.adjust("hot", "PURCHASE", units, locationId)).toEqual({ ok: null })
    }
    await harness.clock.set(Date.parse("2030-01-01T00:00:00.000Z"))

    // Both strategies: a one-unit line is drawn from the same place by either.
    const orders = Array.from({ length: 300 }, (_, i) => ({ orderId: `hot-${i}`, allocation: i % 2 === 0 ? "PRIORITY" : "SINGLE_LOCATION" } as const))
    const answers: Array<Answer> = []
    let next = 0
    await Promise.all(
      Array.from({ length: 60 }, async () => {
        while (next < orders.length) {
          const { orderId, allocation } = orders[next++]!
          answers.push(await harness.ops.reserve(orderId, [{ variantId: "hot", quantity: 1 }], 900, allocation))
        }
      })
    )
    expect(answers).toHaveLength(300)
    type Created = { ok: { created: boolean; reservation: { lines: Array<{ allocations: Array<{ locationId: string; quantity: number }> }> } } }
    const created = answers.filter((a): a is Created => "ok" in a && (a.ok as { created?: boolean }).created === true)
    expect(created).toHaveLength(100)
    for (const a of answers) if (!("ok" in a)) expect(a.error).toBe("ReservationRefused")

    // Each location's reserved is what the answers allocated there, and what the stored allocations say.
    const answered = new Map<string, number>()
    for (const a of created) {
      for (const { locationId, quantity } of a.ok.reservation.lines[0]!.allocations) answered.set(locationId, (answered.get(locationId) ?? 0) + quantity)
    }
    const { rows } = await db.query(`
      SELECT ls.location_id, ls.on_hand, ls.reserved,
             (SELECT coalesce(sum(a.quantity), 0)::int FROM reservation_allocations a
               WHERE a.variant_id = ls.variant_id AND a.location_id = ls.location_id) AS allocated
        FROM location_stock ls WHERE ls.variant_id = 'hot' ORDER BY ls.location_id`)
    for (const row of rows) {
      expect(row.reserved).toBe(row.allocated)
      expect(row.reserved).toBe(answered.get(row.location_id) ?? 0)
      expect(row.reserved).toBeLessThanOrEqual(row.on_hand)
    }
    expect(Object.fromEntries(rows.map((r) => [r.location_id, r.reserved]))).toEqual({ "conc-a": 40, "conc-b": 30, "conc-c": 30, default: 0 })
    const { rows: [level] } = await db.query("SELECT on_hand, reserved, available FROM stock_levels WHERE variant_id = 'hot'")
    expect(level).toEqual({ on_hand: 100, reserved: 100, available: 0 })
    expect((await harness.ops.reconcile()).drifts).toEqual([])
  })
})
