import { Context, DateTime, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { availableAt } from "../domain/Allocation.js"
import { LocationNotFound, VariantNotFound } from "../domain/Errors.js"
import { type DomainEvent, locationUpserted, stockStatusChanged } from "../domain/Events.js"
import { DEFAULT_PRIORITY, Location, type LocationSettings, type LocationStockSettings, VariantLocationStock } from "../domain/Location.js"
import { LocationStock, type StockStatus } from "../domain/StockLevel.js"
import { Outbox } from "../outbox/Outbox.js"
import { LOCATION_COLUMNS, type LocationRow } from "./StockRows.js"
import type { Page } from "./StockLevels.js"
import { Transactions } from "./Transactions.js"

interface LocationDbRow {
  readonly locationId: string
  readonly name: string
  readonly priority: number
  readonly active: boolean
  readonly createdAt: Date
  readonly updatedAt: Date
}

const COLUMNS = "location_id, name, priority, active, created_at, updated_at"

const toLocation = (row: LocationDbRow) =>
  new Location({
    locationId: row.locationId,
    name: row.name,
    priority: row.priority,
    active: row.active,
    createdAt: DateTime.fromDateUnsafe(row.createdAt),
    updatedAt: DateTime.fromDateUnsafe(row.updatedAt)
  })

const locationStockFields = (row: LocationRow) => ({
  locationId: row.locationId,
  onHand: row.onHand,
  reserved: row.reserved,
  safetyStock: row.safetyStock,
  available: availableAt(row),
  version: row.version,
  updatedAt: DateTime.fromDateUnsafe(row.updatedAt)
})

/** What a location holds, summed over its variants (the admin CLI's dry run of a deactivation). */
export interface LocationStockSummary {
  readonly variants: number
  readonly onHand: number
  readonly reserved: number
  /** What the location adds to its variants' `available` while active. */
  readonly available: number
  /** ACTIVE reservations with units held there. */
  readonly activeReservations: number
}

/** A location's status changes of its variants' stock: the variant's status before and after. */
interface StatusRow {
  readonly variantId: string
  readonly status: StockStatus
  readonly available: number
}

/**
 * Managing locations and where variants are stocked (API.md "Locations"). Quantities never change
 * here; a location's `active` flag and a row's safety stock change what counts as `available`, which
 * the triggers of migration 0080 roll up into the variants' totals.
 */
export class Locations extends Context.Service<Locations>()("inventory/Locations", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const outbox = yield* Outbox
    const columns = sql.literal(COLUMNS)
    const locationColumns = sql.literal(LOCATION_COLUMNS)

    const find = (locationId: string, lock: boolean) =>
      Effect.map(
        // NO KEY UPDATE, not UPDATE: writers of location rows, history and allocations hold KEY SHARE
        // on the location (their foreign keys) after their variant's lock; they must not wait for us.
        sql<LocationDbRow>`
          SELECT ${columns} FROM locations WHERE location_id = ${locationId} ${sql.literal(lock ? "FOR NO KEY UPDATE" : "")}`,
        (rows) => rows[0]
      )

    /** The statuses of the variants stocked at the location, locked (variant order, as the active trigger locks them). */
    const statusesAt = (locationId: string, lock: boolean) =>
      sql<StatusRow>`
        SELECT s.variant_id, s.status, s.available FROM stock_levels s
         WHERE s.variant_id IN (SELECT ls.variant_id FROM location_stock ls WHERE ls.location_id = ${locationId})
         ORDER BY s.variant_id ${sql.literal(lock ? "FOR UPDATE OF s" : "")}`

    /** A StockStatusChangedEvent for each variant whose status moved (variants absent before are skipped). */
    const statusEvents = (before: ReadonlyArray<StatusRow>, after: ReadonlyArray<StatusRow>): Array<DomainEvent> => {
      const old = new Map(before.map((row) => [row.variantId, row.status]))
      return after.flatMap((row) => {
        const was = old.get(row.variantId)
        return was !== undefined && was !== row.status ? [stockStatusChanged(row.variantId, was, row.status, row.available)] : []
      })
    }

    /**
     * Changes the fields given of an existing location (locked); a change of `active` recomputes its
     * variants' available (trigger) and publishes their status changes. Nothing changed: no write, no event.
     */
    const change = (current: LocationDbRow, changes: { readonly name?: string; readonly priority?: number; readonly active?: boolean }) =>
      Effect.gen(function* () {
        const name = changes.name ?? current.name
        const priority = changes.priority ?? current.priority
        const active = changes.active ?? current.active
        if (name === current.name && priority === current.priority && active === current.active) {
          return { location: toLocation(current), changed: false }
        }
        // Lock order: the location row (held), then its variants' rows before the trigger needs them.
        const before = active === current.active ? [] : yield* statusesAt(current.locationId, true)
        const [updated] = yield* sql<LocationDbRow>`
          UPDATE locations SET name = ${name}, priority = ${priority}, active = ${active}, updated_at = inventory_now()
           WHERE location_id = ${current.locationId}
          RETURNING ${columns}`
        const after = active === current.active ? [] : yield* statusesAt(current.locationId, false)
        const location = toLocation(updated!)
        yield* outbox.write([locationUpserted(location), ...statusEvents(before, after)])
        yield* Effect.logInfo(active === current.active ? "location changed" : active ? "location activated" : "location deactivated").pipe(
          Effect.annotateLogs({ locationId: location.locationId, name, priority, active })
        )
        return { location, changed: true }
      })

    /** PUT semantics: create (priority 100, active true unless given), or change only the fields given. */
    const upsert = Effect.fn("Locations.upsert")(function* (locationId: string, settings: LocationSettings) {
      yield* Effect.annotateCurrentSpan("inventory.location_id", locationId)
      return yield* transactions.run(
        Effect.gen(function* () {
          const [created] = yield* sql<LocationDbRow>`
            INSERT INTO locations (location_id, name, priority, active)
            VALUES (${locationId}, ${settings.name}, ${settings.priority ?? DEFAULT_PRIORITY}, ${settings.active ?? true})
            ON CONFLICT (location_id) DO NOTHING
            RETURNING ${columns}`
          if (created !== undefined) {
            const location = toLocation(created)
            yield* outbox.write([locationUpserted(location)])
            yield* Effect.logInfo("location created").pipe(
              Effect.annotateLogs({ locationId, name: location.name, priority: location.priority, active: location.active })
            )
            return { location, created: true }
          }
          const current = yield* find(locationId, true)
          const { location } = yield* change(current!, settings)
          return { location, created: false }
        })
      )
    })

    /** Sets `active` of an existing location (the admin CLI); `changed: false` when it already was. */
    const setActive = Effect.fn("Locations.setActive")(function* (locationId: string, active: boolean) {
      yield* Effect.annotateCurrentSpan("inventory.location_id", locationId)
      return yield* transactions.run(
        Effect.gen(function* () {
          const current = yield* find(locationId, true)
          if (current === undefined) return yield* new LocationNotFound({ locationId })
          return yield* change(current, { active })
        })
      )
    })

    /** Every location, by priority, then locationId (code-unit order, as the allocation rule orders them). */
    const list = Effect.fn("Locations.list")(function* () {
      const rows = yield* sql<LocationDbRow>`SELECT ${columns} FROM locations ORDER BY priority, location_id COLLATE "C"`
      return rows.map(toLocation)
    })

    const get = Effect.fn("Locations.get")(function* (locationId: string) {
      yield* Effect.annotateCurrentSpan("inventory.location_id", locationId)
      const row = yield* find(locationId, false)
      if (row === undefined) return yield* new LocationNotFound({ locationId })
      return toLocation(row)
    })

    /** The variants stocked at a location: keyset by variant id, as the stock-level listing. */
    const stock = Effect.fn("Locations.stock")(function* (
      locationId: string,
      options: { readonly limit: number; readonly after: Option.Option<string> }
    ) {
      yield* Effect.annotateCurrentSpan("inventory.location_id", locationId)
      if ((yield* find(locationId, false)) === undefined) return yield* new LocationNotFound({ locationId })
      // `> ''` for the first page (every id has a character): one plan for every page, on the
      // (location_id, variant_id) index, whatever the prepared statement's plan cache does.
      const rows = yield* sql<LocationRow>`
        SELECT ${locationColumns}
          FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
         WHERE ls.location_id = ${locationId} AND ls.variant_id > ${Option.getOrElse(options.after, () => "")}
         ORDER BY ls.variant_id
         LIMIT ${options.limit + 1}`
      const page = rows.slice(0, options.limit)
      return {
        items: page.map((row) => new VariantLocationStock({ variantId: row.variantId, ...locationStockFields(row) })),
        nextAfter: rows.length > options.limit ? Option.some(page[page.length - 1]!.variantId) : Option.none()
      } satisfies Page<VariantLocationStock>
    })

    /**
     * PUT semantics for a variant at a location: stock it there (onHand 0, safety stock as given or
     * 0), or change its safety stock. Lock order: the variant's stock_levels row, then the location
     * row. A safety stock change moves the variant's available (trigger): its status change is published.
     */
    const stockAt = Effect.fn("Locations.stockAt")(function* (variantId: string, locationId: string, settings: LocationStockSettings) {
      yield* Effect.annotateCurrentSpan("inventory.variant_id", variantId)
      yield* Effect.annotateCurrentSpan("inventory.location_id", locationId)
      return yield* transactions.run(
        Effect.gen(function* () {
          const [before] = yield* sql<StatusRow>`
            SELECT s.variant_id, s.status, s.available FROM stock_levels s WHERE s.variant_id = ${variantId} FOR UPDATE OF s`
          if (before === undefined) return yield* new VariantNotFound({ variantId })
          if ((yield* find(locationId, false)) === undefined) return yield* new LocationNotFound({ locationId })
          const rowOf = (lock: boolean) =>
            Effect.map(
              sql<LocationRow>`
                SELECT ${locationColumns}
                  FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
                 WHERE ls.variant_id = ${variantId} AND ls.location_id = ${locationId} ${sql.literal(lock ? "FOR UPDATE OF ls" : "")}`,
              (rows) => rows[0]
            )
          const current = yield* rowOf(true)
          const created = current === undefined
          if (created) {
            yield* sql`
              INSERT INTO location_stock (variant_id, location_id, safety_stock)
              VALUES (${variantId}, ${locationId}, ${settings.safetyStock ?? 0})`
            yield* Effect.logInfo("variant stocked at location").pipe(Effect.annotateLogs({ variantId, locationId }))
          } else if (settings.safetyStock !== undefined && settings.safetyStock !== current.safetyStock) {
            yield* sql`
              UPDATE location_stock SET safety_stock = ${settings.safetyStock}
               WHERE variant_id = ${variantId} AND location_id = ${locationId}`
            yield* Effect.logInfo("safety stock changed").pipe(
              Effect.annotateLogs({ variantId, locationId, oldSafetyStock: current.safetyStock, newSafetyStock: settings.safetyStock })
            )
          } else {
            return { stock: new LocationStock(locationStockFields(current)), created: false }
          }
          const [after] = yield* sql<StatusRow>`
            SELECT s.variant_id, s.status, s.available FROM stock_levels s WHERE s.variant_id = ${variantId}`
          yield* outbox.write(statusEvents([before], [after!]))
          return { stock: new LocationStock(locationStockFields((yield* rowOf(false))!)), created }
        })
      )
    })

    /** What the location holds (for an operator about to deactivate it). */
    const summary = Effect.fn("Locations.summary")(function* (locationId: string) {
      if ((yield* find(locationId, false)) === undefined) return yield* new LocationNotFound({ locationId })
      // Sums as float8: exact far beyond int4, and a JS number (int8 would come back as bigint).
      const [totals] = yield* sql<LocationStockSummary>`
        SELECT count(*)::int AS variants,
               coalesce(sum(on_hand), 0)::float8 AS on_hand,
               coalesce(sum(reserved), 0)::float8 AS reserved,
               coalesce(sum(location_available(on_hand, reserved, safety_stock, true)), 0)::float8 AS available,
               (SELECT count(DISTINCT a.order_id)::int
                  FROM reservation_allocations a JOIN reservations r ON r.order_id = a.order_id
                 WHERE a.location_id = ${locationId} AND r.status = 'ACTIVE') AS active_reservations
          FROM location_stock WHERE location_id = ${locationId}`
      return totals!
    })

    return { upsert, setActive, list, get, stock, stockAt, summary } as const
  })
}) {
  /** The service with its dependencies (Transactions, Outbox) provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, Outbox.layer]))
}
