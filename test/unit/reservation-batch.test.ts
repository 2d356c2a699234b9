import fc from "fast-check"

type ValueOf<T> = T extends fc.Arbitrary<infer V> ? V : never
import { describe, expect, it } from "vitest"
import { availableAt } from "../../src/domain/Allocation.js"
import { LineAllocation, mergeLines, ReservedLine, type ReservationStatus } from "../../src/domain/Reservation.js"
import {
  decideBatch,
  rowKey,
  type BatchOutcome,
  type BatchRequest,
  type BatchStock,
  type LockedRow,
  type VariantTotals
} from "../../src/domain/ReservationBatch.js"
import { deriveStatus } from "../../src/domain/StockLevel.js"

// A few variants and locations, so requests of one batch often compete for the same rows.
const VARIANTS = ["v-a", "v-b"]
const LOCATIONS = [
  { locationId: "default", priority: 0 },
  { locationId: "east", priority: 10 },
  { locationId: "west", priority: 20 }
]
const NOW = Date.parse("2030-01-01T00:00:00Z")

const stockArb = fc
  .record({
    cells: fc.array(fc.record({ onHand: fc.integer({ min: 0, max: 8 }), safetyStock: fc.constantFrom(0, 0, 1) }), {
      minLength: VARIANTS.length * LOCATIONS.length,
      maxLength: VARIANTS.length * LOCATIONS.length
    }),
    westActive: fc.boolean()
  })
  .map(({ cells, westActive }): BatchStock<VariantTotals, LockedRow> => {
    const rows: Array<LockedRow> = VARIANTS.flatMap((variantId, v) =>
      LOCATIONS.map(({ locationId, priority }, l) => ({
        variantId,
        locationId,
        onHand: cells[v * LOCATIONS.length + l]!.onHand,
        reserved: 0,
        safetyStock: cells[v * LOCATIONS.length + l]!.safetyStock,
        active: locationId !== "west" || westActive,
        priority,
        version: 1
      }))
    )
    const totals = new Map(
      VARIANTS.map((variantId) => {
        const own = rows.filter((r) => r.variantId === variantId)
        const available = own.reduce((sum, r) => sum + (r.active ? availableAt(r) : 0), 0)
        const onHand = own.reduce((sum, r) => sum + r.onHand, 0)
        return [variantId, { variantId, onHand, reserved: 0, available, version: 3, lowStockThreshold: 2, status: deriveStatus(available, 2) }] as const
      })
    )
    return { totals, rows, pinned: new Map(LOCATIONS.map((l) => [l.locationId, { active: l.locationId !== "west" || westActive }])) }
  })

const lineArb = fc.record({
  variantId: fc.constantFrom(...VARIANTS, "v-ghost"),
  quantity: fc.integer({ min: 1, max: 6 }),
  locationId: fc.option(fc.constantFrom("default", "east", "west", "nowhere"), { freq: 4, nil: undefined })
})

/** A create (new orderId) or a release / commit of an earlier create of the same batch (held stock). */
type Step = { readonly kind: "create"; readonly lines: ReadonlyArray<ValueOf<typeof lineArb>>; readonly single: boolean } | { readonly kind: "release" | "commit"; readonly of: number }
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("create" as const), lines: fc.array(lineArb, { minLength: 1, maxLength: 3 }), single: fc.boolean() }) },
  fc.record({ kind: fc.constantFrom("release" as const, "commit" as const), of: fc.nat(20) })
)

/**
 * Requests with the stored reservations they act on. A release or commit names a reservation made
 * before the batch with the lines of an earlier create step, held as allocated on top of the stock.
 */
const batchArb = fc.tuple(stockArb, fc.array(stepArb, { minLength: 1, maxLength: 20 })).map(([stock, steps]) => {
  const requests: Array<BatchRequest> = []
  steps.forEach((step, i) => {
    if (step.kind === "create") {
      requests.push({ _tag: "Create", orderId: `o-${i}`, lines: mergeLines(step.lines), strategy: step.single ? "SINGLE_LOCATION" : "PRIORITY" })
    } else {
      // A stored reservation of one unit at `default` of v-a, already reserved in the rows.
      requests.push({
        _tag: step.kind === "release" ? "Release" : "Commit",
        orderId: `stored-${i}`,
        stored: {
          status: (step.of % 4 === 0 ? "COMMITTED" : "ACTIVE") as ReservationStatus,
          expiresAt: new Date(NOW + (step.of % 5 === 0 ? -1000 : 60_000)),
          lines: [new ReservedLine({ variantId: "v-a", quantity: 1, allocations: [new LineAllocation({ locationId: "default", quantity: 1 })] })]
        }
      })
    }
  })
  // The stored reservations hold their unit: put it on top of the rows (and their totals).
  const held = requests.filter((r) => r._tag !== "Create" && r.stored?.status === "ACTIVE").length
  const rows = stock.rows.map((r) => (r.variantId === "v-a" && r.locationId === "default" ? { ...r, onHand: r.onHand + held, reserved: held } : r))
  const va = stock.totals.get("v-a")!
  const totals = new Map(stock.totals).set("v-a", { ...va, onHand: va.onHand + held, reserved: held })
  return { stock: { ...stock, rows, totals }, requests }
})

/** The rows after a batch (the locked rows with every change applied). */
const rowsAfter = (stock: BatchStock<VariantTotals, LockedRow>, outcome: BatchOutcome<VariantTotals, LockedRow>) =>
  stock.rows.map((row) => outcome.finalRows.get(rowKey(row.variantId, row.locationId))?.row ?? row)

const totalsAfter = (stock: BatchStock<VariantTotals, LockedRow>, outcome: BatchOutcome<VariantTotals, LockedRow>) =>
  new Map([...stock.totals].map(([id, t]) => [id, outcome.finalTotals.get(id) ?? t] as const))

describe("deciding a batch of reservation requests (group commit)", () => {
  it("decides each request as if the requests had run one after another, each alone", () => {
    fc.assert(
      fc.property(batchArb, ({ stock, requests }) => {
        const batch = decideBatch(requests, stock, NOW)
        // One by one: each request its own batch, on the rows the previous ones left.
        let current = stock
        const oneByOne = requests.map((request) => {
          const alone = decideBatch([request], current, NOW)
          current = { ...current, rows: rowsAfter(current, alone), totals: totalsAfter(current, alone) }
          return alone.decisions[0]
        })
        expect(batch.decisions).toEqual(oneByOne)
        expect(rowsAfter(stock, batch)).toEqual(current.rows)
        expect(totalsAfter(stock, batch)).toEqual(current.totals)
      }),
      { numRuns: 500 }
    )
  })

  it("never takes more than a location's available, keeps 0 <= reserved <= onHand, and a refused request changes nothing", () => {
    fc.assert(
      fc.property(batchArb, ({ stock, requests }) => {
        const outcome = decideBatch(requests, stock, NOW)
        for (const row of rowsAfter(stock, outcome)) {
          expect(row.reserved).toBeGreaterThanOrEqual(0)
          expect(row.reserved).toBeLessThanOrEqual(row.onHand)
        }
        outcome.decisions.forEach((decision, i) => {
          const own = outcome.changes.filter((c) => c.request === i)
          if (decision._tag === "Refused" || decision._tag === "NotFound" || decision._tag === "NotActive" || decision._tag === "Unchanged") {
            expect(own).toEqual([])
          }
          if (decision._tag === "Reserved") {
            // Every change of a create took at most what its row had free (safety stock held back).
            for (const c of own) expect(c.reservedChange).toBeLessThanOrEqual(availableAt(c.rowBefore))
            expect(own.every((c) => c.rowBefore.active)).toBe(true)
          }
        })
      }),
      { numRuns: 500 }
    )
  })

  it("moves the versions by one per change, and each change states the totals right after it", () => {
    fc.assert(
      fc.property(batchArb, ({ stock, requests }) => {
        const outcome = decideBatch(requests, stock, NOW)
        for (const [key, { row, changes }] of outcome.finalRows) {
          const before = stock.rows.find((r) => rowKey(r.variantId, r.locationId) === key)!
          expect(row.version).toBe(before.version + changes)
        }
        for (const variantId of VARIANTS) {
          const mine = outcome.changes.filter((c) => c.variantId === variantId)
          mine.forEach((c, k) => expect(c.totalsAfter.version).toBe(stock.totals.get(variantId)!.version + k + 1))
        }
      }),
      { numRuns: 300 }
    )
  })
})
