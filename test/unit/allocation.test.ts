import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  allocateLines,
  type AllocatedLine,
  type AllocationDecision,
  type AllocationFailure,
  type AllocationLineRequest,
  type AllocationStock,
  type AllocationStrategy,
  availableAt,
  byAllocationOrder,
  type LocationStockRow
} from "../../src/domain/Allocation.js"

// ---------------------------------------------------------------------------------------------
// Generators: a few variants and locations, so lines often share a variant and a location; stock
// small enough that lines often do not fit; safety stock sometimes above what is left.

const VARIANTS = ["v-a", "v-b", "v-c"]
const LOCATIONS = ["default", "store-1", "store-2", "wh.east", "wh:west"]
const UNKNOWN_VARIANT = "v-ghost"
const UNKNOWN_LOCATION = "nowhere"

// Mostly active, so allocations happen; sometimes inactive, so the rule about them is exercised.
const locationArb = fc.record({ priority: fc.integer({ min: 0, max: 3 }), active: fc.constantFrom(true, true, true, false) })

const cellArb = fc.option(
  fc.record({
    reserved: fc.integer({ min: 0, max: 5 }),
    free: fc.integer({ min: 0, max: 15 }),
    safetyStock: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 10 }))
  }),
  { freq: 3 } // about one (variant, location) in three is not stocked
)

const stockArb: fc.Arbitrary<AllocationStock> = fc
  .record({
    locations: fc.tuple(...LOCATIONS.map(() => locationArb)),
    cells: fc.tuple(...VARIANTS.flatMap(() => LOCATIONS.map(() => cellArb))),
    extraVariant: fc.boolean()
  })
  .map(({ locations, cells, extraVariant }) => {
    const rows: Array<LocationStockRow> = []
    VARIANTS.forEach((variantId, v) =>
      LOCATIONS.forEach((locationId, l) => {
        const cell = cells[v * LOCATIONS.length + l]
        if (cell === null || cell === undefined) return
        if (variantId === "v-c" && !extraVariant) return // v-c then exists but is stocked nowhere
        rows.push({
          variantId,
          locationId,
          onHand: cell.reserved + cell.free, // the database invariant 0 <= reserved <= onHand
          reserved: cell.reserved,
          safetyStock: cell.safetyStock,
          active: locations[l]!.active,
          priority: locations[l]!.priority
        })
      })
    )
    return { rows, variants: new Set(VARIANTS), locations: new Map(LOCATIONS.map((id, i) => [id, locations[i]!])) }
  })

const lineArb: fc.Arbitrary<AllocationLineRequest> = fc
  .record({
    variantId: fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...VARIANTS) }, fc.constant(UNKNOWN_VARIANT)),
    quantity: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 6 }) }, fc.integer({ min: 1, max: 25 })),
    pin: fc.oneof(
      { weight: 12, arbitrary: fc.constant(undefined) },
      { weight: 3, arbitrary: fc.constantFrom(...LOCATIONS) },
      { weight: 1, arbitrary: fc.constant(UNKNOWN_LOCATION) }
    )
  })
  .map(({ variantId, quantity, pin }) => (pin === undefined ? { variantId, quantity } : { variantId, quantity, locationId: pin }))

const linesArb = fc.oneof(fc.array(lineArb, { minLength: 1, maxLength: 3 }), fc.array(lineArb, { minLength: 1, maxLength: 6 }))
const strategyArb = fc.constantFrom<AllocationStrategy>("PRIORITY", "SINGLE_LOCATION")
const caseArb = fc.record({ lines: linesArb, strategy: strategyArb, stock: stockArb })
const RUNS = { numRuns: 2_000 }

// ---------------------------------------------------------------------------------------------
// Accounting over an answer (bookkeeping only, not a second copy of the rule).

const rowOf = (stock: AllocationStock, variantId: string, locationId: string) =>
  stock.rows.find((r) => r.variantId === variantId && r.locationId === locationId)

const orderedActiveRows = (stock: AllocationStock, variantId: string) =>
  stock.rows.filter((r) => r.variantId === variantId && r.active).sort(byAllocationOrder)

/** What `row` still had when line `index` was decided: its available less what earlier lines took. */
const remainingBefore = (lines: ReadonlyArray<AllocatedLine>, index: number, row: LocationStockRow) =>
  availableAt(row) -
  lines
    .slice(0, index)
    .filter((l) => l.variantId === row.variantId)
    .flatMap((l) => l.allocations)
    .filter((a) => a.locationId === row.locationId)
    .reduce((sum, a) => sum + a.quantity, 0)

const allocatedLines = (decision: AllocationDecision) => (decision._tag === "Allocated" ? decision.lines : [])

/**
 * The reservation replayed one line at a time: a line fails when it cannot be added to the lines
 * that fitted before it (the answer says failing lines take nothing). Uses only `allocateLines`.
 */
const replay = (lines: ReadonlyArray<AllocationLineRequest>, strategy: AllocationStrategy, stock: AllocationStock) => {
  const fitted: Array<AllocationLineRequest> = []
  const failing: Array<{ readonly index: number; readonly before: ReadonlyArray<AllocationLineRequest>; readonly failure: AllocationFailure }> = []
  lines.forEach((line, index) => {
    const decision = allocateLines([...fitted, line], strategy, stock)
    if (decision._tag === "Allocated") fitted.push(line)
    else failing.push({ index, before: [...fitted], failure: decision.failures[decision.failures.length - 1]! })
  })
  return { fitted, failing }
}

const deepFreeze = <A>(value: A): A => {
  if (value instanceof Map || value instanceof Set) return Object.freeze(value)
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

// ---------------------------------------------------------------------------------------------

describe("allocateLines: the rules (properties)", () => {
  it("is all-or-nothing: every line allocated, or only failures and nothing reserved", () => {
    fc.assert(
      fc.property(caseArb, ({ lines, strategy, stock }) => {
        const decision = allocateLines(lines, strategy, stock)
        if (decision._tag === "Allocated") {
          expect(decision.lines.map(({ variantId, quantity, locationId }) => ({ variantId, quantity, locationId }))).toEqual(
            lines.map(({ variantId, quantity, locationId }) => ({ variantId, quantity, locationId }))
          )
        } else {
          expect(decision.failures.length).toBeGreaterThan(0)
          expect(Object.keys(decision)).toEqual(["_tag", "failures"])
        }
      }),
      RUNS
    )
  })

  it("allocates each line exactly its quantity, in positive parts at distinct locations", () => {
    fc.assert(
      fc.property(caseArb, ({ lines, strategy, stock }) => {
        for (const line of allocatedLines(allocateLines(lines, strategy, stock))) {
          expect(line.allocations.reduce((sum, a) => sum + a.quantity, 0)).toBe(line.quantity)
          for (const a of line.allocations) expect(Number.isInteger(a.quantity) && a.quantity > 0).toBe(true)
          expect(new Set(line.allocations.map((a) => a.locationId)).size).toBe(line.allocations.length)
        }
      }),
      RUNS
    )
  })

  it("never takes more than a location's available (onHand - reserved - safetyStock, at least 0), summed over all lines of the variant", () => {
    fc.assert(
      fc.property(caseArb, ({ lines, strategy, stock }) => {
        const taken = new Map<string, number>()
        for (const line of allocatedLines(allocateLines(lines, strategy, stock))) {
          for (const a of line.allocations) {
            const key = `${line.variantId}@${a.locationId}`
            taken.set(key, (taken.get(key) ?? 0) + a.quantity)
          }
        }
        for (const [key, quantity] of taken) {
          const [variantId, locationId] = key.split("@") as [string, string]
          const row = rowOf(stock, variantId, locationId)
          expect(row).toBeDefined()
          expect(quantity).toBeLessThanOrEqual(Math.max(0, row!.onHand - row!.reserved - row!.safetyStock))
        }
      }),
      RUNS
    )
  })

  it("never draws on an inactive location, nor on one where the variant is not stocked", () => {
    fc.assert(
      fc.property(caseArb, ({ lines, strategy, stock }) => {
        for (const line of allocatedLines(allocateLines(lines, strategy, stock))) {
          for (const a of line.allocations) {
            expect(rowOf(stock, line.variantId, a.locationId)?.active).toBe(true)
            expect(stock.locations.get(a.locationId)?.active).toBe(true)
          }
        }
      }),
      RUNS
    )
  })

  it("draws a pinned line only from its location, whole, whatever the strategy", () => {
    fc.assert(
      fc.property(caseArb, ({ lines, strategy, stock }) => {
        for (const line of allocatedLines(allocateLines(lines, strategy, stock))) {
          if (line.locationId !== undefined) expect(line.allocations).toEqual([{ locationId: line.locationId, quantity: line.quantity }])
        }
      }),
      RUNS
    )
  })

  it("PRIORITY takes locations in (priority, locationId) order, each drained before the next", () => {
    fc.assert(
      fc.property(linesArb, stockArb, (lines, stock) => {
        const answer = allocatedLines(allocateLines(lines, "PRIORITY", stock))
        answer.forEach((line, i) => {
          if (line.locationId !== undefined) return
          const ordered = orderedActiveRows(stock, line.variantId)
          const used = line.allocations.map((a) => ordered.findIndex((r) => r.locationId === a.locationId))
          expect(used).toEqual([...used].sort((a, b) => a - b)) // in allocation order
          const last = used[used.length - 1]!
          ordered.slice(0, last).forEach((row) => {
            // every location before the last one used gave all it still had (nothing, if it had nothing)
            const given = line.allocations.find((a) => a.locationId === row.locationId)?.quantity ?? 0
            expect(given).toBe(remainingBefore(answer, i, row))
          })
        })
      }),
      RUNS
    )
  })

  it("SINGLE_LOCATION never splits a line and picks the first location, in order, that can take it whole", () => {
    fc.assert(
      fc.property(linesArb, stockArb, (lines, stock) => {
        const answer = allocatedLines(allocateLines(lines, "SINGLE_LOCATION", stock))
        answer.forEach((line, i) => {
          expect(line.allocations).toHaveLength(1)
          if (line.locationId !== undefined) return
          const ordered = orderedActiveRows(stock, line.variantId)
          const chosen = ordered.findIndex((r) => r.locationId === line.allocations[0]!.locationId)
          expect(chosen).toBeGreaterThanOrEqual(0)
          for (const row of ordered.slice(0, chosen)) expect(remainingBefore(answer, i, row)).toBeLessThan(line.quantity)
        })
      }),
      RUNS
    )
  })

  it("whatever SINGLE_LOCATION can allocate, PRIORITY can too, when no line is pinned", () => {
    const unpinned = fc.array(lineArb.map(({ variantId, quantity }) => ({ variantId, quantity })), { minLength: 1, maxLength: 6 })
    fc.assert(
      fc.property(unpinned, stockArb, (lines, stock) => {
        if (allocateLines(lines, "SINGLE_LOCATION", stock)._tag === "Allocated") {
          expect(allocateLines(lines, "PRIORITY", stock)._tag).toBe("Allocated")
        }
      }),
      RUNS
    )
  })

  it("lists every failing line, and only those, each as it fails against the lines before it that fitted", () => {
    fc.assert(
      fc.property(caseArb, ({ lines, strategy, stock }) => {
        const decision = allocateLines(lines, strategy, stock)
        const { fitted, failing } = replay(lines, strategy, stock)
        if (decision._tag === "Allocated") {
          expect(failing).toEqual([])
        } else {
          expect(decision.failures).toEqual(failing.map((f) => f.failure))
          // each failure is its own line's: same variant, quantity and pinned location
          failing.forEach(({ index, failure }) => {
            expect([failure.variantId, failure.requested, failure.locationId]).toEqual([lines[index]!.variantId, lines[index]!.quantity, lines[index]!.locationId])
          })
          // without the failing lines the reservation would be made
          if (fitted.length > 0) expect(allocateLines(fitted, strategy, stock)._tag).toBe("Allocated")
        }
      }),
      RUNS
    )
  })

  it("reports as available what the failing line could have drawn on: that much would have fitted, one more not", () => {
    fc.assert(
      fc.property(caseArb, ({ lines, strategy, stock }) => {
        for (const { index, before, failure } of replay(lines, strategy, stock).failing) {
          const asking = (quantity: number) => allocateLines([...before, { ...lines[index]!, quantity }], strategy, stock)._tag
          expect(Number.isInteger(failure.available) && failure.available >= 0).toBe(true)
          if (failure.reason === "INSUFFICIENT_STOCK") {
            expect(failure.available).toBeLessThan(failure.requested)
            if (failure.available > 0) expect(asking(failure.available)).toBe("Allocated")
            expect(asking(failure.available + 1)).toBe("Refused")
          } else {
            expect(failure.available).toBe(0)
          }
        }
      }),
      RUNS
    )
  })

  it("names the reason: unknown variant first, then an unknown or inactive pinned location, else insufficient stock", () => {
    fc.assert(
      fc.property(caseArb, ({ lines, strategy, stock }) => {
        const decision = allocateLines(lines, strategy, stock)
        if (decision._tag === "Allocated") return
        for (const f of decision.failures) {
          const known = stock.variants.has(f.variantId) || stock.rows.some((r) => r.variantId === f.variantId)
          const pinnedUsable = f.locationId === undefined || stock.locations.get(f.locationId)?.active === true
          expect(f.reason).toBe(!known ? "UNKNOWN_VARIANT" : !pinnedUsable ? "UNKNOWN_LOCATION" : "INSUFFICIENT_STOCK")
        }
      }),
      RUNS
    )
  })

  it("with only the location `default` and no safety stock, decides exactly as v1 (available = onHand - reserved)", () => {
    const v1Stock = fc.array(
      fc.record({ variantId: fc.constantFrom(...VARIANTS), reserved: fc.integer({ min: 0, max: 6 }), free: fc.integer({ min: 0, max: 8 }) }),
      { maxLength: 3 }
    )
    const mergedLines = fc.uniqueArray(
      fc.record({ variantId: fc.constantFrom(...VARIANTS, UNKNOWN_VARIANT), quantity: fc.integer({ min: 1, max: 12 }) }),
      { minLength: 1, maxLength: 4, selector: (l) => l.variantId }
    )
    fc.assert(
      fc.property(mergedLines, v1Stock, strategyArb, (lines, levels, strategy) => {
        const byVariant = new Map(levels.map((l) => [l.variantId, { onHand: l.reserved + l.free, reserved: l.reserved }]))
        const stock: AllocationStock = {
          rows: [...byVariant].map(([variantId, l]) => ({ variantId, locationId: "default", ...l, safetyStock: 0, active: true, priority: 0 })),
          variants: new Set(byVariant.keys()),
          locations: new Map([["default", { active: true }]])
        }
        // The v1 rule of Reservation.decideLines, restated here so this file needs no `effect`.
        const v1Failures = lines.flatMap((line) => {
          const level = byVariant.get(line.variantId)
          if (level === undefined) return [{ variantId: line.variantId, requested: line.quantity, available: 0, reason: "UNKNOWN_VARIANT" }]
          const available = level.onHand - level.reserved
          return available >= line.quantity ? [] : [{ variantId: line.variantId, requested: line.quantity, available, reason: "INSUFFICIENT_STOCK" }]
        })
        const decision = allocateLines(lines, strategy, stock)
        if (v1Failures.length > 0) expect(decision).toEqual({ _tag: "Refused", failures: v1Failures })
        else expect(decision).toEqual({ _tag: "Allocated", lines: lines.map((l) => ({ ...l, allocations: [{ locationId: "default", quantity: l.quantity }] })) })
      }),
      RUNS
    )
  })

  it("is pure: same answer twice, inputs untouched (frozen), whatever the order of the rows", () => {
    fc.assert(
      fc.property(caseArb, fc.integer(), ({ lines, strategy, stock }, seed) => {
        const first = allocateLines(deepFreeze(lines), strategy, deepFreeze(stock))
        const k = Math.abs(seed) % Math.max(1, stock.rows.length)
        const shuffled = [...stock.rows.slice(k), ...stock.rows.slice(0, k)].reverse() // rotated and reversed
        expect(allocateLines(lines, strategy, { ...stock, rows: shuffled })).toEqual(first)
        expect(allocateLines(lines, strategy, stock)).toEqual(first)
      }),
      { numRuns: 500 }
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Cases from API.md

describe("allocateLines: API.md examples", () => {
  const row = (variantId: string, locationId: string, onHand: number, more: Partial<LocationStockRow> = {}): LocationStockRow => ({
    variantId,
    locationId,
    onHand,
    reserved: 0,
    safetyStock: 0,
    active: true,
    priority: 100,
    ...more
  })
  const stockOf = (rows: Array<LocationStockRow>, inactive: Array<string> = []): AllocationStock => ({
    rows: rows.map((r) => (inactive.includes(r.locationId) ? { ...r, active: false } : r)),
    variants: new Set(rows.map((r) => r.variantId)),
    locations: new Map([...new Set([...rows.map((r) => r.locationId), ...inactive])].map((id) => [id, { active: !inactive.includes(id) }]))
  })
  // default (priority 0) first, then the warehouse (10), then two stores tied at 100 (by id).
  const shop = stockOf([
    row("shirt", "store-b", 4),
    row("shirt", "default", 3, { reserved: 1, priority: 0 }),
    row("shirt", "store-a", 5, { safetyStock: 2 }),
    row("shirt", "wh", 2, { priority: 10 })
  ])

  it("PRIORITY (the default) splits a line over locations by priority, ties by locationId", () => {
    expect(allocateLines([{ variantId: "shirt", quantity: 8 }], "PRIORITY", shop)).toEqual({
      _tag: "Allocated",
      lines: [
        {
          variantId: "shirt",
          quantity: 8,
          allocations: [
            { locationId: "default", quantity: 2 }, // 3 on hand, 1 reserved
            { locationId: "wh", quantity: 2 },
            { locationId: "store-a", quantity: 3 }, // 5 on hand, safety stock 2
            { locationId: "store-b", quantity: 1 }
          ]
        }
      ]
    })
  })

  it("SINGLE_LOCATION takes each line whole from the first location that can hold it, and is refused if none can", () => {
    expect(allocateLines([{ variantId: "shirt", quantity: 3 }], "SINGLE_LOCATION", shop)).toEqual({
      _tag: "Allocated",
      lines: [{ variantId: "shirt", quantity: 3, allocations: [{ locationId: "store-a", quantity: 3 }] }]
    })
    expect(allocateLines([{ variantId: "shirt", quantity: 5 }], "SINGLE_LOCATION", shop)).toEqual({
      _tag: "Refused",
      failures: [{ variantId: "shirt", requested: 5, available: 4, reason: "INSUFFICIENT_STOCK" }]
    })
  })

  it("a line naming locationId reserves only there (click-and-collect)", () => {
    expect(allocateLines([{ variantId: "shirt", quantity: 4, locationId: "store-b" }], "PRIORITY", shop)).toEqual({
      _tag: "Allocated",
      lines: [{ variantId: "shirt", quantity: 4, locationId: "store-b", allocations: [{ locationId: "store-b", quantity: 4 }] }]
    })
    expect(allocateLines([{ variantId: "shirt", quantity: 4, locationId: "store-a" }], "PRIORITY", shop)).toEqual({
      _tag: "Refused",
      failures: [{ variantId: "shirt", requested: 4, available: 3, reason: "INSUFFICIENT_STOCK", locationId: "store-a" }]
    })
  })

  it("two lines of one variant share its stock, decided in order", () => {
    const decision = allocateLines(
      [
        { variantId: "shirt", quantity: 4, locationId: "store-b" },
        { variantId: "shirt", quantity: 7 },
        { variantId: "shirt", quantity: 1 }
      ],
      "PRIORITY",
      shop
    )
    // 11 available in all: the pinned 4 leave 7 for the second line and nothing for the third.
    expect(decision).toEqual({
      _tag: "Refused",
      failures: [{ variantId: "shirt", requested: 1, available: 0, reason: "INSUFFICIENT_STOCK" }]
    })
  })

  it("an inactive location is never drawn on, and naming it is UNKNOWN_LOCATION, as is naming one that does not exist", () => {
    const closed = stockOf([row("mug", "default", 1, { priority: 0 }), row("mug", "store-a", 9)], ["store-a"])
    expect(allocateLines([{ variantId: "mug", quantity: 2 }], "PRIORITY", closed)).toEqual({
      _tag: "Refused",
      failures: [{ variantId: "mug", requested: 2, available: 1, reason: "INSUFFICIENT_STOCK" }]
    })
    expect(
      allocateLines(
        [
          { variantId: "mug", quantity: 1, locationId: "store-a" },
          { variantId: "mug", quantity: 1, locationId: "moon" },
          { variantId: "mug", quantity: 1 }
        ],
        "SINGLE_LOCATION",
        closed
      )
    ).toEqual({
      _tag: "Refused",
      failures: [
        { variantId: "mug", requested: 1, available: 0, reason: "UNKNOWN_LOCATION", locationId: "store-a" },
        { variantId: "mug", requested: 1, available: 0, reason: "UNKNOWN_LOCATION", locationId: "moon" }
      ]
    })
  })

  it("lists every failing line: unknown variant, insufficient stock, and a location where the variant is not stocked", () => {
    const stock: AllocationStock = { ...shop, variants: new Set(["shirt", "socks"]), locations: new Map([...shop.locations, ["store-c", { active: true }]]) }
    expect(
      allocateLines(
        [
          { variantId: "hat", quantity: 1 },
          { variantId: "shirt", quantity: 12 },
          { variantId: "socks", quantity: 1 },
          { variantId: "shirt", quantity: 1, locationId: "store-c" }
        ],
        "PRIORITY",
        stock
      )
    ).toEqual({
      _tag: "Refused",
      failures: [
        { variantId: "hat", requested: 1, available: 0, reason: "UNKNOWN_VARIANT" },
        { variantId: "shirt", requested: 12, available: 11, reason: "INSUFFICIENT_STOCK" },
        { variantId: "socks", requested: 1, available: 0, reason: "INSUFFICIENT_STOCK" },
        { variantId: "shirt", requested: 1, available: 0, reason: "INSUFFICIENT_STOCK", locationId: "store-c" }
      ]
    })
  })

  it("available is onHand - reserved - safetyStock, never below 0", () => {
    expect(availableAt({ onHand: 10, reserved: 3, safetyStock: 2 })).toBe(5)
    expect(availableAt({ onHand: 10, reserved: 9, safetyStock: 2 })).toBe(0)
    expect(availableAt({ onHand: 0, reserved: 0, safetyStock: 0 })).toBe(0)
  })
})
