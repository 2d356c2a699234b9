import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { Adjustment, AdjustmentResult, planAdjustment, UNSTOCKED } from "../domain/Adjustment.js"
import { LocationNotFound, VariantNotFound } from "../domain/Errors.js"
import { DEFAULT_LOCATION } from "../domain/StockLevel.js"
import { Idempotency } from "./Idempotency.js"
import { CurrentRequest } from "./RequestContext.js"
import { StockChanges } from "./StockChanges.js"
import {
  applyOnHandChange,
  LOCATION_COLUMNS,
  type LocationRow,
  locationStateOf,
  STOCK_COLUMNS,
  type StockRow,
  toStockLevel
} from "./StockRows.js"
import { Transactions } from "./Transactions.js"

/**
 * The five adjustment types of API.md, each one transaction: the location row (`locationId`, v1:
 * `default`), the history entry, the outbox events. The variant's totals follow by trigger.
 */
export class Adjustments extends Context.Service<Adjustments>()("inventory/Adjustments", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const stockChanges = yield* StockChanges
    const idempotency = yield* Idempotency
    const columns = sql.literal(STOCK_COLUMNS)
    const locationColumns = sql.literal(LOCATION_COLUMNS)

    const apply = (variantId: string, adjustment: Adjustment) =>
      Effect.gen(function* () {
        const locationId = adjustment.locationId ?? DEFAULT_LOCATION
        // Every writer locks the variant's row, then its location rows: concurrent adjustments of one
        // variant are ordered, and the rule decides on what it sees.
        const [variant] = yield* sql<StockRow>`
          SELECT ${columns} FROM stock_levels WHERE variant_id = ${variantId} FOR UPDATE`
        if (!variant) return yield* new VariantNotFound({ variantId })
        const [current] = yield* sql<LocationRow>`
          SELECT ${locationColumns}
            FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
           WHERE ls.variant_id = ${variantId} AND ls.location_id = ${locationId}
             FOR UPDATE OF ls`
        // Not stocked there: the location must exist (read, never locked after the variant's lock).
        if (!current && (yield* sql`SELECT 1 FROM locations WHERE location_id = ${locationId}`).length === 0) {
          return yield* new LocationNotFound({ locationId })
        }
        const counts = current ?? UNSTOCKED
        const onHandChange = yield* Effect.fromResult(
          planAdjustment(
            { variantId, onHand: counts.onHand, reserved: counts.reserved, version: variant.version, variantOnHand: variant.onHand },
            adjustment
          )
        )
        // Accepted where the variant is not stocked: applyOnHandChange stocks it there first.
        const { location, after } = yield* applyOnHandChange(sql, { variantId, locationId, onHandChange, stocked: current !== undefined })
        const [entry] = yield* stockChanges.record([
          {
            after: after!,
            locationId,
            location: locationStateOf(location!),
            locationActive: location!.active,
            type: adjustment.type,
            onHandChange,
            reservedChange: 0,
            reason: adjustment.reason,
            reference: adjustment.reference
          }
        ])
        return new AdjustmentResult({ stockLevel: toStockLevel(after!), entry: entry! })
      })

    const adjust = Effect.fn("Adjustments.adjust")(function* (
      variantId: string,
      adjustment: Adjustment,
      idempotencyKey: Option.Option<string>
    ) {
      yield* Effect.annotateCurrentSpan({ "inventory.variant_id": variantId, "inventory.adjustment_type": adjustment.type })
      const { actor } = yield* CurrentRequest
      const result = yield* transactions.run(
        Option.match(idempotencyKey, {
          onNone: () => Effect.map(apply(variantId, adjustment), (value) => ({ replayed: false, value })),
          onSome: (key) =>
            idempotency.once(
              {
                scope: `adjustments:${actor ?? "-"}`,
                key,
                request: { variantId, adjustment },
                schema: AdjustmentResult
              },
              apply(variantId, adjustment)
            )
        })
      ).pipe(
        Effect.tapError((error) =>
          Effect.andThen(
            Effect.annotateCurrentSpan({ "inventory.outcome": "refused", "inventory.refusal": error._tag }),
            Effect.logInfo("stock adjustment refused").pipe(
              Effect.annotateLogs({ variantId, type: adjustment.type, quantity: adjustment.quantity, refusal: error._tag })
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

    return { adjust } as const
  })
}) {
  /** Was `Adjustments.Default`: the service with its dependencies provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, StockChanges.layer, Idempotency.layer]))
}
