import * as fc from "fast-check"

type ValueOf<T> = T extends fc.Arbitrary<infer V> ? V : never
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startHarness, type Answer, type Harness } from "./harness.js"

/**
 * Group commit under fire (issue 13): bursts of creates (pinned, PRIORITY, SINGLE_LOCATION, several
 * for one orderId with the same or other lines), releases and commits over two variants stocked at
 * three locations with safety stock, sent all at once to small batches (RESERVATION_BATCH_MAX 8) run
 * by two workers, so batches hold mixed outcomes and run concurrently on overlapping rows. Whatever
 * the batching, the answers and the records are what one-at-a-time requests would give.
 */
const RUNS = Number(process.env["PROPERTY_RUNS_BATCHED"] ?? 10)
const VARIANTS = ["bv0", "bv1"]
const LOCATIONS = ["bl-east", "bl-west"] // after `default` in priority
const ORDERS = Array.from({ length: 12 }, (_, i) => `bo${i}`)
const DOMAIN_ERRORS = new Set(["ReservationRefused", "ReservationConflict", "ReservationNotFound", "ReservationNotActive"])

const lineArb = fc.record({
  variantId: fc.constantFrom(...VARIANTS),
  quantity: fc.integer({ min: 1, max: 3 }),
  locationId: fc.option(fc.constantFrom("default", ...LOCATIONS), { freq: 3, nil: undefined })
})
const createArb = fc.record({
  op: fc.constant("reserve" as const),
  orderId: fc.constantFrom(...ORDERS),
  // An unpinned line has no locationId key at all, as a client sends it.
  lines: fc.array(lineArb, { minLength: 1, maxLength: 3 }).map((lines) =>
    lines.map(({ locationId, ...line }) => (locationId === undefined ? line : { ...line, locationId }))
  ),
  allocation: fc.constantFrom("PRIORITY" as const, "SINGLE_LOCATION" as const)
})
const operationArb = fc.oneof(
  { weight: 4, arbitrary: createArb },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom("release" as const, "commit" as const), orderId: fc.constantFrom(...ORDERS) }) }
)
type Operation = ValueOf<typeof operationArb>

type Created = { ok: { created: boolean; reservation: { orderId: string; lines: ReadonlyArray<{ variantId: string; quantity: number; allocations: ReadonlyArray<{ locationId: string; quantity: number }> }> } } }
const isCreated = (a: Answer): a is Created => "ok" in a && (a.ok as { created?: boolean } | null)?.created === true

describe("group commit: concurrent batches of mixed requests (fast-check, real PostgreSQL)", () => {
  let harness: Harness
  let db: pg.Client
  // Evidence over all runs that the batches really were batches: several requests in one
  // transaction, and refusals committed beside creations.
  let largestBatch = 0
  let mixedBatches = 0
  beforeAll(async () => {
    harness = await startHarness("resvbatched", { config: { RESERVATION_BATCH_MAX: "8", RESERVATION_BATCH_WORKERS: "2" } })
    db = new pg.Client({ connectionString: harness.database.url })
    await db.connect()
    for (const [i, locationId] of LOCATIONS.entries()) await harness.ops.location(locationId, { priority: 10 * (i + 1) })
  })
  afterAll(async () => {
    await db?.end()
    await harness?.close()
  })

  it("answers each request as alone, never oversells or dips into safety stock, and the records add up", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ onHand: fc.integer({ min: 0, max: 6 }), safetyStock: fc.constantFrom(0, 0, 1) }), {
          minLength: VARIANTS.length * 3,
          maxLength: VARIANTS.length * 3
        }),
        fc.array(createArb, { minLength: 0, maxLength: 6 }),
        fc.array(operationArb, { minLength: 10, maxLength: 48 }),
        async (cells, earlier, burst) => {
          await harness.ops.truncate()
          await harness.clock.set(Date.parse("2030-01-01T00:00:00.000Z"))
          for (const [v, variantId] of VARIANTS.entries()) {
            await harness.ops.configure(variantId, 1)
            for (const [l, locationId] of ["default", ...LOCATIONS].entries()) {
              const cell = cells[v * 3 + l]!
              if (cell.onHand > 0) await harness.ops.adjust(variantId, "PURCHASE", cell.onHand, locationId)
              if (cell.safetyStock > 0 && cell.onHand > 0) {
                await db.query("UPDATE location_stock SET safety_stock = $3 WHERE variant_id = $1 AND location_id = $2", [variantId, locationId, cell.safetyStock])
              }
            }
          }
          // Some reservations before the burst, for its releases and commits to act on.
          for (const c of earlier) await harness.ops.reserve(c.orderId, c.lines, 900, c.allocation)
          const { rows: before } = await db.query("SELECT order_id FROM reservations")
          const existedBefore = new Set(before.map((r) => r.order_id as string))

          const send = (o: Operation): Promise<Answer> =>
            o.op === "reserve" ? harness.ops.reserve(o.orderId, o.lines, 900, o.allocation) : o.op === "release" ? harness.ops.release(o.orderId) : harness.ops.commit(o.orderId)
          const answers = await Promise.all(burst.map(send))
          for (const a of answers) if ("error" in a) expect(DOMAIN_ERRORS).toContain(a.error)

          // Per orderId: at most one 201 in all, none for one that existed before the burst; a 200
          // repeats the stored reservation exactly.
          const { rows: stored } = await db.query(`
            SELECT r.order_id, r.status,
                   json_agg(json_build_object('variantId', l.variant_id, 'quantity', l.quantity) ORDER BY l.variant_id) AS lines
              FROM reservations r JOIN reservation_lines l USING (order_id) GROUP BY r.order_id, r.status`)
          const storedBy = new Map(stored.map((r) => [r.order_id as string, r]))
          for (const orderId of ORDERS) {
            const created = burst.flatMap((o, i) => (o.op === "reserve" && o.orderId === orderId && isCreated(answers[i]!) ? [answers[i] as Created] : []))
            expect(created.length).toBeLessThanOrEqual(existedBefore.has(orderId) ? 0 : 1)
            if (created.length === 1) expect(storedBy.has(orderId)).toBe(true)
            burst.forEach((o, i) => {
              const a = answers[i]!
              if (o.op === "reserve" && o.orderId === orderId && "ok" in a && !isCreated(a)) {
                const repeated = (a.ok as Created["ok"]).reservation
                expect(repeated.lines.map((l) => ({ variantId: l.variantId, quantity: l.quantity }))).toEqual(storedBy.get(orderId)!.lines)
              }
            })
          }

          // Each location: reserved is the sum of the ACTIVE allocations there, within onHand less safety stock.
          const { rows: locations } = await db.query(`
            SELECT ls.variant_id, ls.location_id, ls.on_hand, ls.reserved, ls.safety_stock,
                   (SELECT coalesce(sum(a.quantity), 0)::int FROM reservation_allocations a JOIN reservations r USING (order_id)
                     WHERE r.status = 'ACTIVE' AND a.variant_id = ls.variant_id AND a.location_id = ls.location_id) AS allocated
              FROM location_stock ls`)
          for (const row of locations) {
            expect(row.reserved).toBe(row.allocated)
            if (row.reserved > 0) expect(row.reserved + row.safety_stock).toBeLessThanOrEqual(row.on_hand)
          }
          expect((await harness.ops.reconcile()).drifts).toEqual([])
          // Exactly one InventoryReserved per stored reservation, one Failed per refusal of the burst and before.
          const { rows: [events] } = await db.query(`
            SELECT count(*) FILTER (WHERE event_type = 'InventoryReservedEvent')::int AS reserved,
                   count(*) FILTER (WHERE event_type = 'InventoryReservationFailedEvent')::int AS failed FROM outbox`)
          expect(events.reserved).toBe(stored.length)
          const refusedInBurst = answers.filter((a) => "error" in a && a.error === "ReservationRefused").length
          expect(events.failed).toBeGreaterThanOrEqual(refusedInBurst)

          // Which requests shared a transaction: the outbox rows of one transaction share its xmin.
          const { rows: transactions } = await db.query(`
            SELECT xmin::text, count(*) FILTER (WHERE event_type IN ('InventoryReservedEvent', 'InventoryReservationFailedEvent',
                     'InventoryReservationReleasedEvent', 'InventoryReservationCommittedEvent'))::int AS requests,
                   bool_or(event_type = 'InventoryReservedEvent') AND bool_or(event_type = 'InventoryReservationFailedEvent') AS mixed
              FROM outbox GROUP BY xmin`)
          for (const t of transactions) {
            largestBatch = Math.max(largestBatch, t.requests)
            if (t.mixed) mixedBatches++
          }
        }
      ),
      { numRuns: RUNS }
    )
    expect(largestBatch).toBeGreaterThan(1)
    expect(largestBatch).toBeLessThanOrEqual(8)
    expect(mixedBatches).toBeGreaterThan(0)
  })
})

