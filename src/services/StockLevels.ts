import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { VariantNotFound } from "../domain/Errors.js"
import { stockStatusChanged } from "../domain/Events.js"
import type { StockLevel, StockStatus, VariantSettings } from "../domain/StockLevel.js"
import { Outbox } from "../outbox/Outbox.js"
import { STOCK_COLUMNS, toStockLevel, type StockRow } from "./StockRows.js"
import { Transactions } from "./Transactions.js"

export interface Page<A> {
  readonly items: ReadonlyArray<A>
  /** The key to continue after, when there is more. */
  readonly nextAfter: Option.Option<string>
}

/** Creating, configuring and reading stock levels. Quantities change only through Adjustments and Reservations. */
export class StockLevels extends Context.Service<StockLevels>()("inventory/StockLevels", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const outbox = yield* Outbox
    const columns = sql.literal(STOCK_COLUMNS)

    /**
     * PUT semantics: create with onHand 0, or change only the fields given. A threshold change can
     * move the status, which is published; a PUT that changes nothing bumps no version.
     */
    const configure = Effect.fn("StockLevels.configure")(function* (variantId: string, settings: VariantSettings) {
      yield* Effect.annotateCurrentSpan("inventory.variant_id", variantId)
      return yield* transactions.run(
        Effect.gen(function* () {
          const inserted = yield* sql<StockRow>`
            INSERT INTO stock_levels (variant_id, sku, low_stock_threshold)
            VALUES (${variantId}, ${settings.sku ?? null}, ${settings.lowStockThreshold ?? 0})
            ON CONFLICT (variant_id) DO NOTHING
            RETURNING ${columns}`
          if (inserted[0]) {
            yield* Effect.logInfo("variant created").pipe(Effect.annotateLogs({ variantId }))
            return { level: toStockLevel(inserted[0]), created: true }
          }
          const [current] = yield* sql<StockRow>`
            SELECT ${columns} FROM stock_levels WHERE variant_id = ${variantId} FOR UPDATE`
          const sku = settings.sku === undefined ? current!.sku : settings.sku
          const threshold = settings.lowStockThreshold ?? current!.lowStockThreshold
          if (sku === current!.sku && threshold === current!.lowStockThreshold) {
            return { level: toStockLevel(current!), created: false }
          }
          const [updated] = yield* sql<StockRow>`
            UPDATE stock_levels
               SET sku = ${sku}, low_stock_threshold = ${threshold}, version = version + 1, updated_at = now()
             WHERE variant_id = ${variantId}
            RETURNING ${columns}`
          if (updated!.status !== current!.status) {
            yield* outbox.write([
              stockStatusChanged(variantId, current!.status, updated!.status, updated!.onHand - updated!.reserved)
            ])
            yield* Effect.logInfo("stock status changed").pipe(
              Effect.annotateLogs({ variantId, oldStatus: current!.status, newStatus: updated!.status })
            )
          }
          return { level: toStockLevel(updated!), created: false }
        })
      )
    })

    /** Creates the variant with onHand 0 unless it exists (ProductVariantCreatedEvent). */
    const createIfAbsent = Effect.fn("StockLevels.createIfAbsent")(function* (variantId: string, sku: string | null) {
      const rows = yield* sql<StockRow>`
        INSERT INTO stock_levels (variant_id, sku) VALUES (${variantId}, ${sku})
        ON CONFLICT (variant_id) DO NOTHING
        RETURNING ${columns}`
      return rows.length > 0
    })

    const get = Effect.fn("StockLevels.get")(function* (variantId: string) {
      yield* Effect.annotateCurrentSpan("inventory.variant_id", variantId)
      const rows = yield* sql<StockRow>`SELECT ${columns} FROM stock_levels WHERE variant_id = ${variantId}`
      const row = rows[0]
      if (!row) return yield* new VariantNotFound({ variantId })
      return toStockLevel(row)
    })

    /** The levels of the given ids in request order (duplicates once), and the ids that do not exist. */
    const getMany = Effect.fn("StockLevels.getMany")(function* (variantIds: ReadonlyArray<string>) {
      const ids = [...new Set(variantIds)]
      const rows = yield* sql<StockRow>`
        SELECT ${columns} FROM stock_levels WHERE variant_id = ANY(${ids})`
      const byId = new Map(rows.map((row) => [row.variantId, row]))
      return {
        items: ids.flatMap((id): Array<StockLevel> => {
          const row = byId.get(id)
          return row ? [toStockLevel(row)] : []
        }),
        missing: ids.filter((id) => !byId.has(id))
      }
    })

    /** Keyset pagination by variant id, optionally within one status. */
    const list = Effect.fn("StockLevels.list")(function* (options: {
      readonly status: Option.Option<StockStatus>
      readonly limit: number
      readonly after: Option.Option<string>
    }) {
      const after = Option.getOrNull(options.after)
      const status = Option.getOrNull(options.status)
      const rows = yield* sql<StockRow>`
        SELECT ${columns} FROM stock_levels
         WHERE (${status}::text IS NULL OR status = ${status})
           AND (${after}::text IS NULL OR variant_id > ${after})
         ORDER BY variant_id
         LIMIT ${options.limit + 1}`
      const page = rows.slice(0, options.limit)
      return {
        items: page.map(toStockLevel),
        nextAfter: rows.length > options.limit ? Option.some(page[page.length - 1]!.variantId) : Option.none()
      } satisfies Page<StockLevel>
    })

    return { configure, createIfAbsent, get, getMany, list } as const
  })
}) {
  /** Was `StockLevels.Default`: the service with its dependencies provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, Outbox.layer]))
}
