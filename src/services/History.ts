import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { VariantNotFound } from "../domain/Errors.js"
import type { HistoryEntry } from "../domain/History.js"
import { HISTORY_COLUMNS, toHistoryEntry, type HistoryRow } from "./StockRows.js"
import type { Page } from "./StockLevels.js"

/** The history of one variant, newest first, by keyset on the entry id. */
export class History extends Context.Service<History>()("inventory/History", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const list = Effect.fn("History.list")(function* (
      variantId: string,
      options: { readonly limit: number; readonly before: Option.Option<string> }
    ) {
      yield* Effect.annotateCurrentSpan("inventory.variant_id", variantId)
      const before = Option.getOrNull(options.before)
      const [rows, exists] = yield* Effect.all([
        sql<HistoryRow>`
          SELECT ${sql.literal(HISTORY_COLUMNS)} FROM inventory_history
           WHERE variant_id = ${variantId} AND (${before}::bigint IS NULL OR id < ${before}::bigint)
           ORDER BY id DESC
           LIMIT ${options.limit + 1}`,
        sql`SELECT 1 FROM stock_levels WHERE variant_id = ${variantId}`
      ])
      if (exists.length === 0) return yield* new VariantNotFound({ variantId })
      const page = rows.slice(0, options.limit)
      return {
        items: page.map(toHistoryEntry),
        nextAfter: rows.length > options.limit ? Option.some(String(page[page.length - 1]!.id)) : Option.none()
      } satisfies Page<HistoryEntry>
    })

    return { list } as const
  })
}) {
  /** Was `History.Default`; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make)
}
