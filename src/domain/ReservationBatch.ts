import { Result } from "effect"
import { availableAt, type AllocationStock, type AllocationStrategy, type LocationStockRow } from "./Allocation.js"
import type { ReservationFailure, ReservationNotActive } from "./Errors.js"
import {
  commitTransition,
  decideReservation,
  lineChange,
  releaseTransition,
  type ReservationLine,
  type ReservationStatus,
  type ReservedLine,
  type Transition
} from "./Reservation.js"
import type { HistoryType } from "./History.js"
import { deriveStatus, type StockStatus } from "./StockLevel.js"

/**
 * The decision of one batch of reservation requests (group commit, ADR 0009), stated once: every
 * request is decided in arrival order on the rows the batch locked, as if the requests had run one
 * after another, each seeing what the earlier ones did. A refused request changes nothing and
 * never affects the others. Plain functions: the service locks, decides here, then applies the
 * changes in a fixed number of statements.
 */

/** What a batch changes on a row: `reserve` (a new reservation) or a stored reservation's transition. */
export type AppliedChange = Exclude<Transition, "unchanged"> | "reserve"

/** The variant's totals as locked; `S` keeps the caller's other columns (sku, updatedAt...). */
export interface VariantTotals {
  readonly variantId: string
  readonly onHand: number
  readonly reserved: number
  readonly available: number
  readonly version: number
  readonly lowStockThreshold: number
  readonly status: StockStatus
}

/** A location row as locked, with its own version. */
export interface LockedRow extends LocationStockRow {
  readonly version: number
}

/** A stored reservation as a release, commit or expiry finds it. */
export interface StoredReservation {
  readonly status: ReservationStatus
  readonly expiresAt: Date
  readonly lines: ReadonlyArray<ReservedLine>
}

/** One request of a batch, in arrival order; orderIds are unique within a batch. */
export type BatchRequest =
  | { readonly _tag: "Create"; readonly orderId: string; readonly lines: ReadonlyArray<ReservationLine>; readonly strategy: AllocationStrategy }
  | { readonly _tag: "Release" | "Commit"; readonly orderId: string; readonly stored: StoredReservation | undefined }
  /** A due reservation the batch expires on the way (it held stock a create of the batch lacks). */
  | { readonly _tag: "Expire"; readonly orderId: string; readonly stored: StoredReservation }

export type BatchDecision =
  | { readonly _tag: "Reserved"; readonly lines: ReadonlyArray<ReservedLine> }
  | { readonly _tag: "Refused"; readonly failures: ReadonlyArray<ReservationFailure> }
  | { readonly _tag: "Applied"; readonly change: Exclude<AppliedChange, "reserve"> }
  | { readonly _tag: "Unchanged" }
  | { readonly _tag: "NotActive"; readonly error: ReservationNotActive }
  | { readonly _tag: "NotFound" }

/** One change of one allocation: the row and the variant's totals right after it. */
export interface RowChange<S extends VariantTotals, R extends LockedRow> {
  /** Index of the request in the batch. */
  readonly request: number
  readonly change: AppliedChange
  readonly type: HistoryType
  readonly variantId: string
  readonly locationId: string
  readonly onHandChange: number
  readonly reservedChange: number
  readonly rowBefore: R
  readonly rowAfter: R
  readonly totalsAfter: S
}

/** The rows a batch locked, and the locations its pinned lines name (as read). */
export interface BatchStock<S extends VariantTotals, R extends LockedRow> {
  readonly totals: ReadonlyMap<string, S>
  readonly rows: ReadonlyArray<R>
  readonly pinned: ReadonlyMap<string, { readonly active: boolean }>
}

export interface BatchOutcome<S extends VariantTotals, R extends LockedRow> {
  readonly decisions: ReadonlyArray<BatchDecision>
  /** In the order they happen: history entries and events follow it. */
  readonly changes: ReadonlyArray<RowChange<S, R>>
  /** Each changed row as it ends, with how many changes it took (its version moves by that many). */
  readonly finalRows: ReadonlyMap<string, { readonly row: R; readonly changes: number }>
  readonly finalTotals: ReadonlyMap<string, S>
}

/** A row's key: ids never contain a space. */
export const rowKey = (variantId: string, locationId: string): string => `${variantId} ${locationId}`

/**
 * Decides a batch at `nowMillis` (the database's clock, one for the whole batch). Per request:
 * - Create: the allocation rule (`decideReservation`) on the rows as the earlier requests left them;
 * - Release / Commit: the v1 transitions on the stored reservation (missing: NotFound; due: it
 *   expires, and a commit answers NotActive EXPIRED after the expiry is applied);
 * - Expire: the due reservation's allocations go back.
 */
export const decideBatch = <S extends VariantTotals, R extends LockedRow>(
  requests: ReadonlyArray<BatchRequest>,
  stock: BatchStock<S, R>,
  nowMillis: number
): BatchOutcome<S, R> => {
  const rows = new Map(stock.rows.map((row) => [rowKey(row.variantId, row.locationId), row]))
  const totals = new Map(stock.totals)
  const counts = new Map<string, number>()
  const changes: Array<RowChange<S, R>> = []

  const apply = (request: number, change: AppliedChange, lines: ReadonlyArray<ReservedLine>) => {
    for (const line of lines) {
      for (const { locationId, quantity } of line.allocations) {
        const key = rowKey(line.variantId, locationId)
        const before = rows.get(key)!
        const level = totals.get(line.variantId)!
        const { type, onHandChange, reservedChange } = lineChange(change, quantity)
        const after: R = { ...before, onHand: before.onHand + onHandChange, reserved: before.reserved + reservedChange, version: before.version + 1 }
        // An inactive location's row adds nothing to its variant's available.
        const available = level.available + (before.active ? availableAt(after) - availableAt(before) : 0)
        const totalsAfter: S = {
          ...level,
          onHand: level.onHand + onHandChange,
          reserved: level.reserved + reservedChange,
          available,
          version: level.version + 1,
          status: deriveStatus(available, level.lowStockThreshold)
        }
        rows.set(key, after)
        totals.set(line.variantId, totalsAfter)
        counts.set(key, (counts.get(key) ?? 0) + 1)
        changes.push({ request, change, type, variantId: line.variantId, locationId, onHandChange, reservedChange, rowBefore: before, rowAfter: after, totalsAfter })
      }
    }
  }

  const allocationStock = (): AllocationStock => {
    const locations = new Map(stock.pinned)
    const current = [...rows.values()]
    for (const row of current) if (locations.has(row.locationId)) locations.set(row.locationId, { active: row.active })
    return { rows: current, variants: new Set(totals.keys()), locations }
  }

  const decisions = requests.map((request, index): BatchDecision => {
    switch (request._tag) {
      case "Create": {
        const decided = decideReservation(request.lines, allocationStock(), request.strategy)
        if (Result.isFailure(decided)) return { _tag: "Refused", failures: decided.failure }
        apply(index, "reserve", decided.success)
        return { _tag: "Reserved", lines: decided.success }
      }
      case "Expire":
        apply(index, "expire", request.stored.lines)
        return { _tag: "Applied", change: "expire" }
      case "Release":
      case "Commit": {
        if (request.stored === undefined) return { _tag: "NotFound" }
        const rule = request._tag === "Release" ? releaseTransition : commitTransition
        const decided = rule(request.orderId, request.stored, nowMillis)
        if (Result.isFailure(decided)) return { _tag: "NotActive", error: decided.failure }
        if (decided.success === "unchanged") return { _tag: "Unchanged" }
        apply(index, decided.success, request.stored.lines)
        return { _tag: "Applied", change: decided.success }
      }
    }
  })

  const finalRows = new Map([...counts].map(([key, n]) => [key, { row: rows.get(key)!, changes: n }] as const))
  return { decisions, changes, finalRows, finalTotals: totals }
}

/** The variants whose stock refused a create of the batch: where due reservations are worth expiring first. */
export const shortVariants = (decisions: ReadonlyArray<BatchDecision>): ReadonlyArray<string> => [
  ...new Set(
    decisions.flatMap((d) => (d._tag === "Refused" ? d.failures.filter((f) => f.reason === "INSUFFICIENT_STOCK").map((f) => f.variantId) : []))
  )
]
