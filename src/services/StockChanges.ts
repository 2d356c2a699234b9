import { SqlClient } from "@effect/sql"
import { Effect, FiberRef } from "effect"
import { stockLevelChanged, stockStatusChanged, type DomainEvent } from "../domain/Events.js"
import type { HistoryType } from "../domain/History.js"
import { deriveStatus } from "../domain/StockLevel.js"
import { Outbox } from "../outbox/Outbox.js"
import { CurrentRequest } from "./RequestContext.js"
import { HISTORY_COLUMNS, toHistoryEntry, type HistoryRow, type StockRow } from "./StockRows.js"

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

/** The events one change of a variant publishes: always StockLevelChanged, StockStatusChanged when the status moved. */
export const eventsOfChange = (change: StockChange): ReadonlyArray<DomainEvent> => {
  const { after } = change
  const before = deriveStatus(
    after.onHand - change.onHandChange - (after.reserved - change.reservedChange),
    after.lowStockThreshold
  )
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
        for (const change of changes) {
          yield* Effect.logInfo("stock updated").pipe(
            Effect.annotateLogs({
              variantId: change.after.variantId,
              type: change.type,
              onHandChange: change.onHandChange,
              reservedChange: change.reservedChange,
              onHand: change.after.onHand,
              reserved: change.after.reserved,
              reason: change.reason ?? null
            })
          )
        }
        return rows.map(toHistoryEntry)
      })

    return { record } as const
  }),
  dependencies: [Outbox.Default]
}) {}
