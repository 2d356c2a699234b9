/**
 * The allocation rule of API.md "Reservations across locations", stated once: which locations each
 * line of a reservation draws on, or every line that cannot be reserved. Plain TypeScript, no
 * `effect` import, so the same rule serves the Effect 3 and Effect 4 lines of the service.
 */

/** `allocation` of `POST /v1/reservations`. */
export const ALLOCATION_STRATEGIES = ["PRIORITY", "SINGLE_LOCATION"] as const
export type AllocationStrategy = (typeof ALLOCATION_STRATEGIES)[number]
export const DEFAULT_ALLOCATION: AllocationStrategy = "PRIORITY"

export type AllocationFailureReason = "INSUFFICIENT_STOCK" | "UNKNOWN_VARIANT" | "UNKNOWN_LOCATION"

/** A line as requested: `locationId` pins it to that location (click-and-collect). */
export interface AllocationLineRequest {
  readonly variantId: string
  readonly quantity: number
  readonly locationId?: string | undefined
}

/** The locked row of a variant at a location, with its location's flags. */
export interface LocationStockRow {
  readonly variantId: string
  readonly locationId: string
  readonly onHand: number
  readonly reserved: number
  readonly safetyStock: number
  readonly active: boolean
  readonly priority: number
}

/** What the decision knows: the rows of the lines' variants, and which variants and locations exist. */
export interface AllocationStock {
  /** One per (variant, location) where a line's variant is stocked. */
  readonly rows: ReadonlyArray<LocationStockRow>
  /** Variants that exist, stocked anywhere or not (a variant with a row exists too). */
  readonly variants: ReadonlySet<string>
  /** Locations that exist, at least those the lines name (a location with a row exists too). */
  readonly locations: ReadonlyMap<string, { readonly active: boolean }>
}

export interface LocationAllocation {
  readonly locationId: string
  readonly quantity: number
}

/** The requested line with where it is drawn from: quantities sum to `quantity`, in allocation order. */
export interface AllocatedLine extends AllocationLineRequest {
  readonly allocations: ReadonlyArray<LocationAllocation>
}

/**
 * A line that cannot be reserved. `available` is what the line could have drawn on (see
 * `allocateLines`); `locationId` is the line's pinned location, when it names one.
 */
export interface AllocationFailure {
  readonly variantId: string
  readonly requested: number
  readonly available: number
  readonly reason: AllocationFailureReason
  readonly locationId?: string
}

export type AllocationDecision =
  | { readonly _tag: "Allocated"; readonly lines: ReadonlyArray<AllocatedLine> }
  | { readonly _tag: "Refused"; readonly failures: ReadonlyArray<AllocationFailure> }

/** `available` of a `LocationStock`: what new reservations may take there. */
export const availableAt = (row: { readonly onHand: number; readonly reserved: number; readonly safetyStock: number }): number =>
  Math.max(0, row.onHand - row.reserved - row.safetyStock)

/**
 * Lower priority first, ties by locationId (code-unit order, as `mergeLines` orders variant ids: SQL
 * that must agree orders by `location_id COLLATE "C"`).
 */
export const byAllocationOrder = (
  a: { readonly priority: number; readonly locationId: string },
  b: { readonly priority: number; readonly locationId: string }
): number => a.priority - b.priority || (a.locationId < b.locationId ? -1 : a.locationId > b.locationId ? 1 : 0)

/**
 * The all-or-nothing rule of API.md. Lines are decided in the given order, and each allocated line
 * takes its quantities out of what the next lines of the same variant can draw on; a failing line
 * takes nothing. Per line:
 *
 * - unknown variant: `UNKNOWN_VARIANT` (before any location check), `available` 0;
 * - pinned to a location that does not exist or is inactive: `UNKNOWN_LOCATION`, `available` 0
 *   (a line pinned there could draw on nothing);
 * - pinned to an active location: all of it from there, else `INSUFFICIENT_STOCK` with that location's
 *   `available` (0 where the variant is not stocked), whatever the strategy;
 * - `PRIORITY`: from the variant's active locations in `byAllocationOrder`, each drained before the
 *   next, else `INSUFFICIENT_STOCK` with their summed `available`;
 * - `SINGLE_LOCATION`: whole from the first of them that can take it, else `INSUFFICIENT_STOCK` with
 *   the largest single `available` (the most one location could have given it).
 *
 * The reservation is made only when no line fails; otherwise the answer lists every failing line, in
 * line order.
 */
export const allocateLines = (
  lines: ReadonlyArray<AllocationLineRequest>,
  strategy: AllocationStrategy,
  stock: AllocationStock
): AllocationDecision => {
  const ledger = new Ledger(stock.rows)
  const allocated: Array<AllocatedLine> = []
  const failures: Array<AllocationFailure> = []
  for (const line of lines) {
    const outcome = decideLine(line, strategy, stock, ledger)
    if ("reason" in outcome) {
      failures.push(outcome)
    } else {
      ledger.take(line.variantId, outcome)
      allocated.push({ ...line, allocations: outcome })
    }
  }
  return failures.length === 0 ? { _tag: "Allocated", lines: allocated } : { _tag: "Refused", failures }
}

const decideLine = (
  line: AllocationLineRequest,
  strategy: AllocationStrategy,
  stock: AllocationStock,
  ledger: Ledger
): ReadonlyArray<LocationAllocation> | AllocationFailure => {
  const fail = (reason: AllocationFailureReason, available: number): AllocationFailure => ({
    variantId: line.variantId,
    requested: line.quantity,
    available,
    reason,
    ...(line.locationId === undefined ? {} : { locationId: line.locationId })
  })
  const rows = ledger.rowsOf(line.variantId)
  if (rows.length === 0 && !stock.variants.has(line.variantId)) return fail("UNKNOWN_VARIANT", 0)

  if (line.locationId !== undefined) {
    const locationId = line.locationId
    const row = rows.find((r) => r.locationId === locationId)
    const active = stock.locations.get(locationId)?.active ?? row?.active
    if (active !== true) return fail("UNKNOWN_LOCATION", 0)
    const available = row === undefined ? 0 : ledger.remaining(row)
    return available >= line.quantity ? [{ locationId, quantity: line.quantity }] : fail("INSUFFICIENT_STOCK", available)
  }

  const candidates = rows.filter((r) => r.active).map((r) => ({ locationId: r.locationId, available: ledger.remaining(r) }))
  if (strategy === "SINGLE_LOCATION") {
    const whole = candidates.find((c) => c.available >= line.quantity)
    return whole !== undefined
      ? [{ locationId: whole.locationId, quantity: line.quantity }]
      : fail("INSUFFICIENT_STOCK", Math.max(0, ...candidates.map((c) => c.available)))
  }
  const total = candidates.reduce((sum, c) => sum + c.available, 0)
  if (total < line.quantity) return fail("INSUFFICIENT_STOCK", total)
  const allocations: Array<LocationAllocation> = []
  let left = line.quantity
  for (const c of candidates) {
    if (left === 0) break
    const quantity = Math.min(left, c.available)
    if (quantity > 0) allocations.push({ locationId: c.locationId, quantity })
    left -= quantity
  }
  return allocations
}

/** What each row still has for this reservation: its `available` less what earlier lines took. */
class Ledger {
  private readonly byVariant = new Map<string, Array<LocationStockRow>>()
  private readonly taken = new Map<LocationStockRow, number>()

  constructor(rows: ReadonlyArray<LocationStockRow>) {
    for (const row of rows) {
      const list = this.byVariant.get(row.variantId)
      if (list === undefined) this.byVariant.set(row.variantId, [row])
      else list.push(row)
    }
    for (const list of this.byVariant.values()) list.sort(byAllocationOrder)
  }

  /** The variant's rows in allocation order. */
  rowsOf(variantId: string): ReadonlyArray<LocationStockRow> {
    return this.byVariant.get(variantId) ?? []
  }

  remaining(row: LocationStockRow): number {
    return availableAt(row) - (this.taken.get(row) ?? 0)
  }

  take(variantId: string, allocations: ReadonlyArray<LocationAllocation>): void {
    for (const { locationId, quantity } of allocations) {
      const row = this.rowsOf(variantId).find((r) => r.locationId === locationId)
      if (row !== undefined) this.taken.set(row, (this.taken.get(row) ?? 0) + quantity)
    }
  }
}
