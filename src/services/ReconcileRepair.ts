import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { repairPlan, type CounterSources, type RepairStep } from "../domain/Reconciliation.js"
import { driftsOf, type Drift } from "./Reconcile.js"
import { StockChanges } from "./StockChanges.js"
import { STOCK_COLUMNS, type StockRow } from "./StockRows.js"
import { Transactions } from "./Transactions.js"

/** What one variant's counters are derived from, given its row and its drifts (absent check: no drift). */
export const sourcesOf = (row: Pick<StockRow, "onHand" | "reserved">, drifts: ReadonlyArray<Drift>): CounterSources => {
  const expected = (check: Drift["check"], otherwise: number) => drifts.find((d) => d.check === check)?.expected ?? otherwise
  return {
    onHand: row.onHand,
    reserved: row.reserved,
    historyOnHand: expected("on-hand-vs-history", row.onHand),
    historyReserved: expected("reserved-vs-history", row.reserved),
    activeReserved: expected("reserved-vs-active-reservations", row.reserved)
  }
}

export interface RepairOutcome {
  readonly variantId: string
  readonly steps: ReadonlyArray<RepairStep>
}

/**
 * `reconcile --repair`: corrects one variant's drift in one transaction of the service, under its
 * row lock (so the drift is measured again on what no one else can change meanwhile), with history
 * entries and events written by StockChanges like every other change (rule: domain/Reconciliation.ts).
 */
export class ReconcileRepair extends Context.Service<ReconcileRepair>()("inventory/ReconcileRepair", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const stockChanges = yield* StockChanges
    const columns = sql.literal(STOCK_COLUMNS)

    const repair = Effect.fn("ReconcileRepair.repair")(function* (variantId: string, reason: string) {
      yield* Effect.annotateCurrentSpan("inventory.variant_id", variantId)
      return yield* transactions.run(
        Effect.gen(function* () {
          const [row] = yield* sql<StockRow>`SELECT ${columns} FROM stock_levels WHERE variant_id = ${variantId} FOR UPDATE`
          if (!row) return { variantId, steps: [] } satisfies RepairOutcome
          const steps = repairPlan(sourcesOf(row, yield* driftsOf([variantId])))
          for (const step of steps) {
            // Every step is a new version of the row: its event tells peers the counters they never heard of.
            const [after] = yield* sql<StockRow>`
              UPDATE stock_levels
                 SET reserved = reserved + ${step.movesCounters ? step.reservedChange : 0},
                     on_hand = on_hand + ${step.movesCounters ? step.onHandChange : 0},
                     version = version + 1, updated_at = now()
               WHERE variant_id = ${variantId}
              RETURNING ${columns}`
            yield* stockChanges.record([
              { after: after!, type: step.type, onHandChange: step.onHandChange, reservedChange: step.reservedChange, reason }
            ])
          }
          return { variantId, steps } satisfies RepairOutcome
        })
      )
    })

    return { repair } as const
  })
}) {
  /** Was `ReconcileRepair.Default`: the service with its dependencies provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, StockChanges.layer]))
}
