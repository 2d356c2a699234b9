import type { HistoryType } from "./History.js"

/** What a variant's counters are derived from, as reconciliation reads them. */
export interface CounterSources {
  readonly onHand: number
  readonly reserved: number
  /** Baseline plus Σ history changes. */
  readonly historyOnHand: number
  readonly historyReserved: number
  /** Σ quantities of the variant's ACTIVE reservation lines. */
  readonly activeReserved: number
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
 * How drift is corrected (docs/runbooks/reconciliation-drift.md). The counters are what peers acted
 * on, so history is first brought up to them with one ADJUSTMENT entry (the change that was made
 * behind the service's back, now recorded and published). Then `reserved` moves to what the ACTIVE
 * reservations hold, as a RELEASE or RESERVE. No drift: no steps.
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
