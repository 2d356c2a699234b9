import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { repairPlan, sourcesOf, type RepairStep } from "../domain/Reconciliation.js"
import { driftsOf } from "./Reconcile.js"
import { StockChanges } from "./StockChanges.js"
import { LOCATION_COLUMNS, locationStateOf, STOCK_COLUMNS, type LocationRow, type StockRow } from "./StockRows.js"
import { Transactions } from "./Transactions.js"

export interface RepairOutcome {
  readonly variantId: string
  readonly locationId: string
  readonly steps: ReadonlyArray<RepairStep>
}

/**
 * `reconcile --repair`: corrects one location row's drift (variant, location) in one transaction of
 * the service, under the variant's row lock and then the location row's (the lock order of every
 * writer), so the drift is measured again on what no one else can change meanwhile, with history
 * entries (at that location) and events written by StockChanges like every other change (rule:
 * domain/Reconciliation.ts). The variant's totals are never written here: the triggers roll the
 * location row's change up into them.
 */
export class ReconcileRepair extends Context.Service<ReconcileRepair>()("inventory/ReconcileRepair", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const stockChanges = yield* StockChanges
    const stockColumns = sql.literal(STOCK_COLUMNS)
    const locationColumns = sql.literal(LOCATION_COLUMNS)

    const repair = Effect.fn("ReconcileRepair.repair")(function* (variantId: string, locationId: string, reason: string) {
      yield* Effect.annotateCurrentSpan("inventory.variant_id", variantId)
      yield* Effect.annotateCurrentSpan("inventory.location_id", locationId)
      return yield* transactions.run(
        Effect.gen(function* () {
          const none = { variantId, locationId, steps: [] } satisfies RepairOutcome
          const [variant] = yield* sql<{ variantId: string }>`SELECT variant_id FROM stock_levels WHERE variant_id = ${variantId} FOR UPDATE`
          if (!variant) return none
          const [row] = yield* sql<LocationRow>`
            SELECT ${locationColumns} FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
             WHERE ls.variant_id = ${variantId} AND ls.location_id = ${locationId}
               FOR UPDATE OF ls`
          // History or a baseline at a location where the variant is not stocked: nothing to write to.
          if (!row) return none
          const drifts = (yield* driftsOf([variantId])).filter((d) => d.locationId === locationId)
          const steps = repairPlan(sourcesOf(row, drifts))
          for (const step of steps) {
            // A step that moves the counters is a new version of the row (the triggers bump the
            // location's and the variant's); a history-only step publishes the current version,
            // which the change made behind the service's back had already bumped without an event.
            const [location] = step.movesCounters
              ? yield* sql<LocationRow>`
                  WITH moved AS (
                    UPDATE location_stock
                       SET reserved = reserved + ${step.reservedChange}, on_hand = on_hand + ${step.onHandChange}
                     WHERE variant_id = ${variantId} AND location_id = ${locationId}
                    RETURNING *)
                  SELECT ${locationColumns} FROM moved ls JOIN locations l ON l.location_id = ls.location_id`
              : yield* sql<LocationRow>`
                  SELECT ${locationColumns} FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
                   WHERE ls.variant_id = ${variantId} AND ls.location_id = ${locationId}`
            // Read after the UPDATE's statement: the roll-up trigger has written the totals by then.
            const [after] = yield* sql<StockRow>`SELECT ${stockColumns} FROM stock_levels WHERE variant_id = ${variantId}`
            yield* stockChanges.record([
              {
                after: after!,
                locationId,
                location: locationStateOf(location!),
                locationActive: location!.active,
                type: step.type,
                onHandChange: step.onHandChange,
                reservedChange: step.reservedChange,
                reason
              }
            ])
          }
          return { variantId, locationId, steps } satisfies RepairOutcome
        })
      )
    })

    return { repair } as const
  })
}) {
  /** Was `ReconcileRepair.Default`: the service with its dependencies provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, StockChanges.layer]))
}
