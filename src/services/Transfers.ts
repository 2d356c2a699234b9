import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { planTransfer, Transfer, TransferResult } from "../domain/Adjustment.js"
import { LocationNotFound, VariantNotFound } from "../domain/Errors.js"
import { Idempotency } from "./Idempotency.js"
import { CurrentRequest } from "./RequestContext.js"
import { type StockChange, StockChanges } from "./StockChanges.js"
import {
  LOCATION_COLUMNS,
  locationStateOf,
  STOCK_COLUMNS,
  STOCK_LEVEL_COLUMNS,
  toStockLevel,
  type LocationRow,
  type StockLevelRow,
  type StockRow
} from "./StockRows.js"
import { Transactions } from "./Transactions.js"

/**
 * Transfers of API.md "Locations": `onHand` moves from one location of a variant to another in one
 * transaction, with a TRANSFER_OUT and a TRANSFER_IN history entry and event. Each location row's
 * change is its own step of the variant (the triggers bump its version once per row), so each event
 * carries the variant's totals right after its own step.
 */
export class Transfers extends Context.Service<Transfers>()("inventory/Transfers", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const stockChanges = yield* StockChanges
    const idempotency = yield* Idempotency
    const columns = sql.literal(STOCK_COLUMNS)
    const locationColumns = sql.literal(LOCATION_COLUMNS)
    const levelColumns = sql.literal(STOCK_LEVEL_COLUMNS)

    /** Moves the location row's onHand by `change`; returns the row and the variant's totals after it. */
    const move = (variantId: string, locationId: string, change: number) =>
      Effect.gen(function* () {
        const [location] = yield* sql<LocationRow>`
          UPDATE location_stock ls
             SET on_hand = ls.on_hand + ${change}
            FROM locations l
           WHERE l.location_id = ls.location_id AND ls.variant_id = ${variantId} AND ls.location_id = ${locationId}
          RETURNING ${locationColumns}`
        const [after] = yield* sql<StockRow>`SELECT ${columns} FROM stock_levels WHERE variant_id = ${variantId}`
        return { location: location!, after: after! }
      })

    const apply = (variantId: string, transfer: Transfer) =>
      Effect.gen(function* () {
        const { fromLocationId, toLocationId, quantity } = transfer
        // Lock order: the variant's row, then its location rows in location_id order.
        const [variant] = yield* sql<StockRow>`
          SELECT ${columns} FROM stock_levels WHERE variant_id = ${variantId} FOR UPDATE`
        if (!variant) return yield* new VariantNotFound({ variantId })
        const rows = yield* sql<LocationRow>`
          SELECT ${locationColumns}
            FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
           WHERE ls.variant_id = ${variantId} AND ls.location_id IN (${fromLocationId}, ${toLocationId})
           ORDER BY ls.location_id
             FOR UPDATE OF ls`
        const from = rows.find((row) => row.locationId === fromLocationId)
        const to = rows.find((row) => row.locationId === toLocationId)
        if (!from || !to) {
          // Where the variant is not stocked, the location must still exist (read, never locked).
          const known = yield* sql<{ locationId: string }>`
            SELECT location_id FROM locations WHERE location_id IN (${fromLocationId}, ${toLocationId})`
          for (const locationId of [fromLocationId, toLocationId]) {
            if (!known.some((row) => row.locationId === locationId)) return yield* new LocationNotFound({ locationId })
          }
        }
        yield* Effect.fromResult(planTransfer(variantId, from, to, quantity))
        if (!to) {
          yield* sql`INSERT INTO location_stock (variant_id, location_id) VALUES (${variantId}, ${toLocationId})`
        }
        const out = yield* move(variantId, fromLocationId, -quantity)
        const into = yield* move(variantId, toLocationId, quantity)
        const changeAt = (step: typeof out, type: "TRANSFER_OUT" | "TRANSFER_IN", onHandChange: number): StockChange => ({
          after: step.after,
          locationId: step.location.locationId,
          location: locationStateOf(step.location),
          locationActive: step.location.active,
          type,
          onHandChange,
          reservedChange: 0,
          reason: transfer.reason,
          reference: transfer.reference
        })
        const entries = yield* stockChanges.record([changeAt(out, "TRANSFER_OUT", -quantity), changeAt(into, "TRANSFER_IN", quantity)])
        const [level] = yield* sql<StockLevelRow>`SELECT ${levelColumns} FROM stock_levels s WHERE s.variant_id = ${variantId}`
        return new TransferResult({ stockLevel: toStockLevel(level!), entries: [entries[0]!, entries[1]!] })
      })

    const transfer = Effect.fn("Transfers.transfer")(function* (
      variantId: string,
      transfer: Transfer,
      idempotencyKey: Option.Option<string>
    ) {
      yield* Effect.annotateCurrentSpan({
        "inventory.variant_id": variantId,
        "inventory.from_location_id": transfer.fromLocationId,
        "inventory.to_location_id": transfer.toLocationId
      })
      const { actor } = yield* CurrentRequest
      const result = yield* transactions.run(
        Option.match(idempotencyKey, {
          onNone: () => Effect.map(apply(variantId, transfer), (value) => ({ replayed: false, value })),
          onSome: (key) =>
            idempotency.once(
              { scope: `transfers:${actor ?? "-"}`, key, request: { variantId, transfer }, schema: TransferResult },
              apply(variantId, transfer)
            )
        })
      ).pipe(
        Effect.tapError((error) =>
          Effect.andThen(
            Effect.annotateCurrentSpan({ "inventory.outcome": "refused", "inventory.refusal": error._tag }),
            Effect.logInfo("stock transfer refused").pipe(
              Effect.annotateLogs({
                variantId,
                fromLocationId: transfer.fromLocationId,
                toLocationId: transfer.toLocationId,
                quantity: transfer.quantity,
                refusal: error._tag
              })
            )
          )
        )
      )
      yield* Effect.annotateCurrentSpan({
        "inventory.outcome": result.replayed ? "replayed" : "applied",
        "inventory.idempotent_replay": result.replayed
      })
      return result.value
    })

    return { transfer } as const
  })
}) {
  /** The service with its dependencies provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, StockChanges.layer, Idempotency.layer]))
}
