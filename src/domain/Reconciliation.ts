import type { HistoryType } from "./History.js"

/** The checks of one location row (variant, location) against what its counters are derived from. */
export type LocationCheck = "reserved-vs-active-reservations" | "on-hand-vs-history" | "reserved-vs-history"
/** The checks of a variant's totals (stock_levels) against the sums over its location rows. */
export type TotalsCheck = "on-hand-vs-locations" | "reserved-vs-locations" | "available-vs-locations"
export type DriftCheck = LocationCheck | TotalsCheck

/** One stored counter that disagrees with what it is derived from. */
export interface Drift {
  readonly variantId: string
  /** The location row checked; null for a check of the variant's totals. */
  readonly locationId: string | null
  readonly check: DriftCheck
  readonly stored: number
  readonly expected: number
}

/** What one location row's counters are derived from, as reconciliation reads them. */
export interface CounterSources {
  /** The location_stock row (0 when the row does not exist). */
  readonly onHand: number
  readonly reserved: number
  /** Baseline plus Σ history changes at that location. */
  readonly historyOnHand: number
  readonly historyReserved: number
  /** Σ quantities of the ACTIVE reservations' allocations at that location. */
  readonly activeReserved: number
}

/** A variant's stored totals and the sums over its location rows (available: over ACTIVE locations). */
export interface TotalsSources {
  readonly onHand: number
  readonly reserved: number
  readonly available: number
  readonly locationsOnHand: number
  readonly locationsReserved: number
  readonly locationsAvailable: number
}

const drift = <C extends DriftCheck>(variantId: string, locationId: string | null, check: C, stored: number, expected: number) =>
  stored === expected ? [] : [{ variantId, locationId, check, stored, expected } satisfies Drift]

/** The drifts of one location row, in check order (none when all its counters follow). */
export const locationDrifts = (variantId: string, locationId: string, sources: CounterSources): ReadonlyArray<Drift> => [
  ...drift(variantId, locationId, "reserved-vs-active-reservations", sources.reserved, sources.activeReserved),
  ...drift(variantId, locationId, "on-hand-vs-history", sources.onHand, sources.historyOnHand),
  ...drift(variantId, locationId, "reserved-vs-history", sources.reserved, sources.historyReserved)
]

/** The drifts of one variant's totals against its locations. */
export const totalsDrifts = (variantId: string, sources: TotalsSources): ReadonlyArray<Drift> => [
  ...drift(variantId, null, "on-hand-vs-locations", sources.onHand, sources.locationsOnHand),
  ...drift(variantId, null, "reserved-vs-locations", sources.reserved, sources.locationsReserved),
  ...drift(variantId, null, "available-vs-locations", sources.available, sources.locationsAvailable)
]

/**
 * The sources of one location row implied by its row's counters and its drifts (a check that did
 * not drift: the source equals the counter). The inverse of locationDrifts.
 */
export const sourcesOf = (row: { readonly onHand: number; readonly reserved: number }, drifts: ReadonlyArray<Drift>): CounterSources => {
  const expected = (check: LocationCheck, otherwise: number) => drifts.find((d) => d.check === check)?.expected ?? otherwise
  return {
    onHand: row.onHand,
    reserved: row.reserved,
    historyOnHand: expected("on-hand-vs-history", row.onHand),
    historyReserved: expected("reserved-vs-history", row.reserved),
    activeReserved: expected("reserved-vs-active-reservations", row.reserved)
  }
}

/** One change a repair records, through the same history-and-events writer as every other change. */
export interface RepairStep {
  readonly type: HistoryType
  readonly onHandChange: number
  readonly reservedChange: number
  /** Whether the step moves the counters (false: it only records what they already are). */
  readonly movesCounters: boolean
}

/**
 * How drift of one location row is corrected (docs/runbooks/reconciliation-drift.md). The counters
 * are what peers acted on, so history is first brought up to them with one ADJUSTMENT entry (the
 * change that was made behind the service's back, now recorded and published). Then `reserved` moves
 * to what the ACTIVE reservations hold there, as a RELEASE or RESERVE. No drift: no steps. A drift
 * of the totals has no plan: the totals are the database triggers' (see the runbook).
 */
export const repairPlan = (sources: CounterSources): ReadonlyArray<RepairStep> => {
  const steps: Array<RepairStep> = []
  const onHandGap = sources.onHand - sources.historyOnHand
  const reservedGap = sources.reserved - sources.historyReserved
  if (onHandGap !== 0 || reservedGap !== 0) {
    steps.push({ type: "ADJUSTMENT", onHandChange: onHandGap, reservedChange: reservedGap, movesCounters: false })
  }
  const reservedMove = sources.activeReserved - sources.reserved
  if (reservedMove !== 0) {
    steps.push({ type: reservedMove < 0 ? "RELEASE" : "RESERVE", onHandChange: 0, reservedChange: reservedMove, movesCounters: true })
  }
  return steps
}
