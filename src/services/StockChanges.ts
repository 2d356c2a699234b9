import { SqlClient } from "@effect/sql"
import { Effect, FiberRef, Metric } from "effect"
import { stockLevelChanged, stockStatusChanged, type DomainEvent } from "../domain/Events.js"
import type { HistoryType } from "../domain/History.js"
import { deriveStatus, type StockStatus } from "../domain/StockLevel.js"
import { Outbox } from "../outbox/Outbox.js"
import { CurrentRequest } from "./RequestContext.js"
import { initStockMetrics, statusChangesTo, stockUpdatesOf } from "./StockMetrics.js"
import { HISTORY_COLUMNS, toHistoryEntry, type HistoryRow, type StockRow } from "./StockRows.js"
import { afterCommit } from "./Transactions.js"

export interface StockChange {
  /** The row after the change, as returned by the UPDATE. */
  readonly after: StockRow
  readonly type: HistoryType
  readonly onHandChange: number
  readonly reservedChange: number
  readonly reason?: string | undefined
  readonly reference?: string | undefined
  readonly orderId?: string | undefined
}

/** The variant's status before the change. */
const statusBefore = (change: StockChange): StockStatus =>
  deriveStatus(
    change.after.onHand - change.onHandChange - (change.after.reserved - change.reservedChange),
    change.after.lowStockThreshold
  )

/** What ops see of a committed change: the stock-update line and metric, and the status change if any. */
const reportChange = (change: StockChange, correlationId: string | null) =>
  Effect.gen(function* () {
    const { after } = change
    yield* Metric.increment(stockUpdatesOf(change.type))
    yield* Effect.logInfo("stock updated").pipe(
      Effect.annotateLogs({
        variantId: after.variantId,
        type: change.type,
        onHandChange: change.onHandChange,
        reservedChange: change.reservedChange,
        onHand: after.onHand,
        reserved: after.reserved,
        available: after.onHand - after.reserved,
        orderId: change.orderId ?? null,
        reason: change.reason ?? null
      })
    )
    const before = statusBefore(change)
    if (before !== after.status) {
      yield* Metric.increment(statusChangesTo(after.status))
      yield* Effect.logInfo("stock status changed").pipe(
        Effect.annotateLogs({ variantId: after.variantId, oldStatus: before, newStatus: after.status, available: after.onHand - after.reserved })
      )
    }
  }).pipe(Effect.annotateLogs("correlationId", correlationId))

/** The events one change of a variant publishes: always StockLevelChanged, StockStatusChanged when the status moved. */
export const eventsOfChange = (change: StockChange): ReadonlyArray<DomainEvent> => {
  const { after } = change
  const before = statusBefore(change)
  const levelChanged = stockLevelChanged({
    variantId: after.variantId,
    onHand: after.onHand,
    reserved: after.reserved,
    version: after.version,
    changeType: change.type,
    onHandChange: change.onHandChange,
    reservedChange: change.reservedChange
  })
  return before === after.status
    ? [levelChanged]
    : [levelChanged, stockStatusChanged(after.variantId, before, after.status, after.onHand - after.reserved)]
}

/**
 * Records changes already applied to `stock_levels` in the current transaction: exactly one history
 * entry per variant and its outbox events. Every writer of `on_hand` / `reserved` goes through here.
 */
export class StockChanges extends Effect.Service<StockChanges>()("inventory/StockChanges", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    yield* initStockMetrics

    const record = (changes: ReadonlyArray<StockChange>, extraEvents: ReadonlyArray<DomainEvent> = []) =>
      Effect.gen(function* () {
        if (changes.length === 0) {
          yield* outbox.write(extraEvents)
          return []
        }
        const { correlationId, actor } = yield* FiberRef.get(CurrentRequest)
        // Aggregate events first (e.g. InventoryReserved), then each variant's own, in line order.
        const events = yield* outbox.rows([...extraEvents, ...changes.flatMap(eventsOfChange)])
        // History and outbox in one statement: one round trip less on every change (the hot path).
        const rows = yield* sql<HistoryRow>`
          WITH history AS (
          INSERT INTO inventory_history ${sql.insert(
            changes.map((change) => ({
              variantId: change.after.variantId,
              type: change.type,
              onHandChange: change.onHandChange,
              reservedChange: change.reservedChange,
              onHandAfter: change.after.onHand,
              reservedAfter: change.after.reserved,
              reason: change.reason ?? null,
              reference: change.reference ?? null,
              orderId: change.orderId ?? null,
              correlationId,
              actor
            }))
          )}
          RETURNING ${sql.literal(HISTORY_COLUMNS)}
          ), events AS (
            INSERT INTO outbox ${sql.insert(events)}
          )
          SELECT * FROM history ORDER BY id`
        yield* afterCommit(Effect.forEach(changes, (change) => reportChange(change, correlationId), { discard: true }))
        return rows.map(toHistoryEntry)
      })

    return { record } as const
  }),
  dependencies: [Outbox.Default]
}) {}
