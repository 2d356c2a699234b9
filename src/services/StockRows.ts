import { DateTime, Effect } from "effect"
import type { SqlClient } from "effect/sql"
import { availableAt } from "../domain/Allocation.js"
import type { LocationState } from "../domain/Events.js"
import { HistoryEntry, type HistoryType } from "../domain/History.js"
import { LocationStock, StockLevel, type StockStatus } from "../domain/StockLevel.js"

/** A `stock_levels` row (the variant's totals) as the client returns it (column names camel-cased by the SQL layer). */
export interface StockRow {
  readonly variantId: string
  readonly sku: string | null
  readonly onHand: number
  readonly reserved: number
  /** The stored sum over the variant's active locations (written by the location_stock triggers). */
  readonly available: number
  readonly lowStockThreshold: number
  readonly status: StockStatus
  readonly version: number
  readonly updatedAt: Date
}

export const STOCK_COLUMNS = "variant_id, sku, on_hand, reserved, available, low_stock_threshold, status, version, updated_at"

/** A `location_stock` row with its location's flags. */
export interface LocationRow {
  readonly variantId: string
  readonly locationId: string
  readonly onHand: number
  readonly reserved: number
  readonly safetyStock: number
  readonly version: number
  readonly updatedAt: Date
  readonly active: boolean
  readonly priority: number
}

/** The columns of `LocationRow`, for `FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id`. */
export const LOCATION_COLUMNS =
  "ls.variant_id, ls.location_id, ls.on_hand, ls.reserved, ls.safety_stock, ls.version, ls.updated_at, l.active, l.priority"

/** What a StockLevelChangedEvent says of the location row. */
export const locationStateOf = (row: LocationRow): LocationState => ({
  onHand: row.onHand,
  reserved: row.reserved,
  safetyStock: row.safetyStock,
  available: availableAt(row),
  version: row.version
})

/** A location row as `STOCK_LEVEL_COLUMNS` nests it (JSON: updatedAt in epoch milliseconds). */
interface NestedLocation {
  readonly locationId: string
  readonly onHand: number
  readonly reserved: number
  readonly safetyStock: number
  readonly version: number
  readonly updatedAt: number
}

/** A `StockRow` with the variant's location rows. */
export interface StockLevelRow extends StockRow {
  readonly locations: ReadonlyArray<NestedLocation>
}

/**
 * The columns of `StockLevelRow`, for `FROM stock_levels s`: one statement reads the totals and the
 * locations from the same snapshot, so they always agree. Locations by priority, then location_id
 * (code-unit order, as the allocation rule orders them).
 */
export const STOCK_LEVEL_COLUMNS = `s.variant_id, s.sku, s.on_hand, s.reserved, s.available, s.low_stock_threshold, s.status,
       s.version, s.updated_at,
       (SELECT coalesce(json_agg(json_build_object(
                 'locationId', ls.location_id, 'onHand', ls.on_hand, 'reserved', ls.reserved,
                 'safetyStock', ls.safety_stock, 'version', ls.version,
                 'updatedAt', floor(extract(epoch FROM ls.updated_at) * 1000))
                 ORDER BY l.priority, ls.location_id COLLATE "C"), '[]'::json)
          FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
         WHERE ls.variant_id = s.variant_id) AS locations`

export const toStockLevel = (row: StockLevelRow): StockLevel =>
  new StockLevel({
    variantId: row.variantId,
    sku: row.sku,
    onHand: row.onHand,
    reserved: row.reserved,
    available: row.available,
    lowStockThreshold: row.lowStockThreshold,
    status: row.status,
    version: row.version,
    updatedAt: DateTime.fromDateUnsafe(row.updatedAt),
    locations: row.locations.map(
      (location) =>
        new LocationStock({
          locationId: location.locationId,
          onHand: location.onHand,
          reserved: location.reserved,
          safetyStock: location.safetyStock,
          available: availableAt(location),
          version: location.version,
          updatedAt: DateTime.makeUnsafe(Number(location.updatedAt))
        })
    )
  })

export interface HistoryRow {
  readonly id: string
  readonly variantId: string
  readonly locationId: string
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
  "id, variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, reason, reference, order_id, correlation_id, created_at"

export const toHistoryEntry = (row: HistoryRow): HistoryEntry =>
  new HistoryEntry({ ...row, id: String(row.id), createdAt: DateTime.fromDateUnsafe(row.createdAt) })

/**
 * One accepted change of onHand at one location, under the caller's variant and location locks:
 * stocks the variant there first when it is not (onHand 0), moves the location row (the triggers
 * roll it up into the variant's totals), and answers the location row and the variant after it.
 * A change of 0 (a RECOUNT to the current count) moves no row, so no trigger bumps the variant's
 * version: v1 makes every accepted adjustment a new version (its history entry and event carry it).
 */
export const applyOnHandChange = (
  sql: SqlClient.SqlClient,
  change: { readonly variantId: string; readonly locationId: string; readonly onHandChange: number; readonly stocked: boolean }
) =>
  Effect.gen(function* () {
    const { variantId, locationId, onHandChange } = change
    if (!change.stocked) {
      yield* sql`INSERT INTO location_stock (variant_id, location_id) VALUES (${variantId}, ${locationId})`
    }
    const [location] = yield* sql<LocationRow>`
      UPDATE location_stock ls
         SET on_hand = ls.on_hand + ${onHandChange}
        FROM locations l
       WHERE l.location_id = ls.location_id AND ls.variant_id = ${variantId} AND ls.location_id = ${locationId}
      RETURNING ${sql.literal(LOCATION_COLUMNS)}`
    if (onHandChange === 0) {
      yield* sql`UPDATE stock_levels SET version = version + 1, updated_at = inventory_now() WHERE variant_id = ${variantId}`
    }
    const [after] = yield* sql<StockLevelRow>`SELECT ${sql.literal(STOCK_LEVEL_COLUMNS)} FROM stock_levels s WHERE s.variant_id = ${variantId}`
    return { location: location!, after: after! }
  })
