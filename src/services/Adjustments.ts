import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { Adjustment, AdjustmentResult, planAdjustment } from "../domain/Adjustment.js"
import { VariantNotFound } from "../domain/Errors.js"
import { Idempotency } from "./Idempotency.js"
import { CurrentRequest } from "./RequestContext.js"
import { StockChanges } from "./StockChanges.js"
import { STOCK_COLUMNS, toStockLevel, type StockRow } from "./StockRows.js"
import { Transactions } from "./Transactions.js"

/** The five adjustment types of API.md, each one transaction: row, history entry, outbox events. */
export class Adjustments extends Context.Service<Adjustments>()("inventory/Adjustments", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const stockChanges = yield* StockChanges
    const idempotency = yield* Idempotency
    const columns = sql.literal(STOCK_COLUMNS)

    const apply = (variantId: string, adjustment: Adjustment) =>
      Effect.gen(function* () {
        // The row lock orders concurrent adjustments of one variant; the rule decides on what it sees.
        const [current] = yield* sql<StockRow>`
          SELECT ${columns} FROM stock_levels WHERE variant_id = ${variantId} FOR UPDATE`
        if (!current) return yield* new VariantNotFound({ variantId })
        const onHandChange = yield* Effect.fromResult(planAdjustment(current, adjustment))
        const [after] = yield* sql<StockRow>`
          UPDATE stock_levels
             SET on_hand = on_hand + ${onHandChange}, version = version + 1, updated_at = now()
           WHERE variant_id = ${variantId}
          RETURNING ${columns}`
        const [entry] = yield* stockChanges.record([
          {
            after: after!,
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
