import { Effect, Metric } from "effect"
import { HistoryType } from "../domain/History.js"
import { StockStatus } from "../domain/StockLevel.js"

export const stockUpdates = Metric.counter("inventory_stock_updates", {
  description: "Committed changes of a variant's onHand or reserved, by history type",
  incremental: true
})

export const stockStatusChanges = Metric.counter("inventory_stock_status_changes", {
  description: "Committed status changes of a variant, by the new status",
  incremental: true
})

export const stockUpdatesOf = (type: HistoryType) => Metric.withAttributes(stockUpdates, { type })
export const statusChangesTo = (status: StockStatus) => Metric.withAttributes(stockStatusChanges, { new_status: status })

/** Every label value at 0 from the start, so rates and alerts see the series before the first change. */
export const initStockMetrics = Effect.all(
  [
    ...HistoryType.literals.map((type) => Metric.update(stockUpdatesOf(type), 0)),
    ...StockStatus.literals.map((status) => Metric.update(statusChangesTo(status), 0))
  ],
  { discard: true }
)
