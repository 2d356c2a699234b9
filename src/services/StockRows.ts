import { DateTime } from "effect"
import { HistoryEntry, type HistoryType } from "../domain/History.js"
import { StockLevel, type StockStatus } from "../domain/StockLevel.js"

/** A `stock_levels` row as the client returns it (column names camel-cased by the SQL layer). */
export interface StockRow {
  readonly variantId: string
  readonly sku: string | null
  readonly onHand: number
  readonly reserved: number
  readonly lowStockThreshold: number
  readonly status: StockStatus
  readonly version: number
  readonly updatedAt: Date
}

export const STOCK_COLUMNS = "variant_id, sku, on_hand, reserved, low_stock_threshold, status, version, updated_at"

export const toStockLevel = (row: StockRow): StockLevel =>
  new StockLevel({
    variantId: row.variantId,
    sku: row.sku,
    onHand: row.onHand,
    reserved: row.reserved,
    available: row.onHand - row.reserved,
    lowStockThreshold: row.lowStockThreshold,
    status: row.status,
    version: row.version,
    updatedAt: DateTime.fromDateUnsafe(row.updatedAt)
  })

export interface HistoryRow {
  readonly id: string
  readonly variantId: string
  readonly type: HistoryType
  readonly onHandChange: number
  readonly reservedChange: number
  readonly onHandAfter: number
  readonly reservedAfter: number
  readonly reason: string | null
  readonly reference: string | null
  readonly orderId: string | null
  readonly correlationId: string | null
  readonly createdAt: Date
}

export const HISTORY_COLUMNS =
  "id, variant_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, correlation_id, created_at"

export const toHistoryEntry = (row: HistoryRow): HistoryEntry =>
  new HistoryEntry({ ...row, id: String(row.id), createdAt: DateTime.fromDateUnsafe(row.createdAt) })
