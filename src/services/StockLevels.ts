import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { VariantNotFound } from "../domain/Errors.js"
import { stockStatusChanged } from "../domain/Events.js"
import { DEFAULT_LOCATION, type StockLevel, type StockStatus, type VariantSettings } from "../domain/StockLevel.js"
import { Outbox } from "../outbox/Outbox.js"
import { STOCK_LEVEL_COLUMNS, toStockLevel, type StockLevelRow } from "./StockRows.js"
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
    const columns = sql.literal(STOCK_LEVEL_COLUMNS)

    /**
     * A new variant in one statement: its `stock_levels` row (totals 0) and its `default` location
     * row, or nothing when the variant exists. Answers whether it was created.
     */
    const insertVariant = (variantId: string, sku: string | null, lowStockThreshold: number) =>
      Effect.map(
        sql<{ variantId: string }>`
          WITH variant AS (
            INSERT INTO stock_levels (variant_id, sku, low_stock_threshold)
            VALUES (${variantId}, ${sku}, ${lowStockThreshold})
            ON CONFLICT (variant_id) DO NOTHING
            RETURNING variant_id
          )
          INSERT INTO location_stock (variant_id, location_id)
          SELECT variant_id, ${DEFAULT_LOCATION} FROM variant
          RETURNING variant_id`,
        (rows) => rows.length > 0
      )

    const levelOf = (variantId: string, lock: boolean) =>
      Effect.map(
        sql<StockLevelRow>`
          SELECT ${columns} FROM stock_levels s WHERE s.variant_id = ${variantId} ${sql.literal(lock ? "FOR UPDATE OF s" : "")}`,
        (rows) => rows[0]
      )

    /**
     * PUT semantics: create with onHand 0, or change only the fields given. A threshold change can
     * move the status, which is published; a PUT that changes nothing bumps no version.
     */
    const configure = Effect.fn("StockLevels.configure")(function* (variantId: string, settings: VariantSettings) {
      yield* Effect.annotateCurrentSpan("inventory.variant_id", variantId)
      return yield* transactions.run(
        Effect.gen(function* () {
          if (yield* insertVariant(variantId, settings.sku ?? null, settings.lowStockThreshold ?? 0)) {
            yield* Effect.logInfo("variant created").pipe(Effect.annotateLogs({ variantId }))
            return { level: toStockLevel((yield* levelOf(variantId, false))!), created: true }
          }
          const current = yield* levelOf(variantId, true)
          const sku = settings.sku === undefined ? current!.sku : settings.sku
          const threshold = settings.lowStockThreshold ?? current!.lowStockThreshold
          if (sku === current!.sku && threshold === current!.lowStockThreshold) {
            return { level: toStockLevel(current!), created: false }
          }
          // The variant's own settings: no location changes, so the version is bumped here (API.md: +1
          // on every change); the guard lets it through, as it touches no total.
          const [updated] = yield* sql<StockLevelRow>`
            UPDATE stock_levels s
               SET sku = ${sku}, low_stock_threshold = ${threshold}, version = version + 1, updated_at = inventory_now()
             WHERE s.variant_id = ${variantId}
            RETURNING ${columns}`
          if (updated!.status !== current!.status) {
            yield* outbox.write([stockStatusChanged(variantId, current!.status, updated!.status, updated!.available)])
            yield* Effect.logInfo("stock status changed").pipe(
              Effect.annotateLogs({ variantId, oldStatus: current!.status, newStatus: updated!.status })
            )
          }
          return { level: toStockLevel(updated!), created: false }
        })
      )
    })

    /** Creates the variant with onHand 0 (at `default`) unless it exists (ProductVariantCreatedEvent). */
    const createIfAbsent = Effect.fn("StockLevels.createIfAbsent")(function* (variantId: string, sku: string | null) {
      return yield* insertVariant(variantId, sku, 0)
    })

    const get = Effect.fn("StockLevels.get")(function* (variantId: string) {
      yield* Effect.annotateCurrentSpan("inventory.variant_id", variantId)
      const row = yield* levelOf(variantId, false)
      if (!row) return yield* new VariantNotFound({ variantId })
      return toStockLevel(row)
    })

    /**
     * `get` answered as the JSON text of its `StockLevel`, built by the database in the statement that
     * reads it: the same fields in the schema's order, the same numbers, timestamps as ISO-8601 UTC with
     * milliseconds (as `DateTime` prints them: truncated, like the driver's Date), no whitespace
     * (`to_json` of a row and `array_to_json` are compact). The read path of `GET
     * /v1/stock-levels/{id}` (no row objects, no Schema encoding); the test of that endpoint compares it
     * with `get` encoded through the schema.
     */
    const getJson = (variantId: string) =>
      Effect.flatMap(
        sql<{ body: string }>`
          SELECT to_json(v)::text AS body
            FROM (SELECT s.variant_id AS "variantId", s.sku, s.on_hand AS "onHand", s.reserved, s.available,
                         s.low_stock_threshold AS "lowStockThreshold", s.status, s.version,
                         to_char(s.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "updatedAt",
                         coalesce((
                           SELECT array_to_json(array_agg(loc ORDER BY l.priority, ls.location_id COLLATE "C"))
                             FROM location_stock ls
                             JOIN locations l ON l.location_id = ls.location_id
                            CROSS JOIN LATERAL (
                              SELECT ls.location_id AS "locationId", ls.on_hand AS "onHand", ls.reserved,
                                     ls.safety_stock AS "safetyStock",
                                     greatest(0, ls.on_hand - ls.reserved - ls.safety_stock) AS available, ls.version,
                                     to_char(ls.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "updatedAt"
                            ) loc
                            WHERE ls.variant_id = s.variant_id), '[]'::json) AS locations
                    FROM stock_levels s
                   WHERE s.variant_id = ${variantId}) v`,
        (rows) => (rows.length === 0 ? Effect.fail(new VariantNotFound({ variantId })) : Effect.succeed(rows[0]!.body))
      ).pipe(
        // The span `get` has, for exported traces (reads open none without an exporter, http/Server.ts).
        Effect.withSpan("StockLevels.get", { attributes: { "inventory.variant_id": variantId } }, { captureStackTrace: false })
      )

    /** The levels of the given ids in request order (duplicates once), and the ids that do not exist. */
    const getMany = Effect.fn("StockLevels.getMany")(function* (variantIds: ReadonlyArray<string>) {
      const ids = [...new Set(variantIds)]
      const rows = yield* sql<StockLevelRow>`
        SELECT ${columns} FROM stock_levels s WHERE s.variant_id = ANY(${ids})`
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
      const rows = yield* sql<StockLevelRow>`
        SELECT ${columns} FROM stock_levels s
         WHERE (${status}::text IS NULL OR s.status = ${status})
           AND (${after}::text IS NULL OR s.variant_id > ${after})
         ORDER BY s.variant_id
         LIMIT ${options.limit + 1}`
      const page = rows.slice(0, options.limit)
      return {
        items: page.map(toStockLevel),
        nextAfter: rows.length > options.limit ? Option.some(page[page.length - 1]!.variantId) : Option.none()
      } satisfies Page<StockLevel>
    })

    return { configure, createIfAbsent, get, getJson, getMany, list } as const
  })
}) {
  /** Was `StockLevels.Default`: the service with its dependencies provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, Outbox.layer]))
}
