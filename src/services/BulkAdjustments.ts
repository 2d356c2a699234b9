import { Context, Effect, Layer, Option, Result } from "effect"
import { SqlClient } from "effect/sql"
import {
  BulkAdjustmentItemResult,
  BulkAdjustmentResults,
  decideBatch,
  ItemProblem,
  locationOf,
  stockKey,
  type BulkAdjustmentRequest,
  type ItemRefusal
} from "../domain/BulkAdjustment.js"
import { BatchFailure, BatchRefused, problemType } from "../domain/Errors.js"
import { Idempotency } from "./Idempotency.js"
import { CurrentRequest } from "./RequestContext.js"
import { StockChanges, type StockChange } from "./StockChanges.js"
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

/** The problem body the single adjustment would have answered (its correlationId is the call's own). */
const problemOf = (refusal: ItemRefusal) =>
  new ItemProblem({
    type: problemType(refusal.problem.code),
    title: refusal.problem.title,
    status: refusal.problem.status,
    detail: refusal.message,
    code: refusal.problem.code
  })

/**
 * `POST /v1/adjustments` (API.md "Bulk adjustments"): every item decided in request order on the
 * running values by the single adjustment's rule, in one transaction that locks in the global order
 * (variants by id, then their location rows), so it never deadlocks with other writers. Atomic: all
 * items or none (409 `batch-refused` listing every refused item); otherwise the accepted ones apply.
 */
export class BulkAdjustments extends Context.Service<BulkAdjustments>()("inventory/BulkAdjustments", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const transactions = yield* Transactions
    const stockChanges = yield* StockChanges
    const idempotency = yield* Idempotency
    const columns = sql.literal(STOCK_COLUMNS)
    const locationColumns = sql.literal(LOCATION_COLUMNS)

    const apply = (request: BulkAdjustmentRequest) =>
      Effect.gen(function* () {
        const atomic = request.atomic ?? true
        const variantIds = [...new Set(request.items.map((item) => item.variantId))]
        const locationIds = [...new Set(request.items.map(locationOf))]
        // ADR 0008's lock order, whatever the request order: each variant row once, by variant_id,
        // then their location rows by (variant_id, location_id), as Reservations locks them.
        const variants = yield* sql<StockRow>`
          SELECT ${columns} FROM stock_levels
           WHERE variant_id = ANY(${variantIds})
           ORDER BY variant_id
             FOR UPDATE`
        const rows = variants.length === 0
          ? []
          : yield* sql<LocationRow>`
              SELECT ${locationColumns} FROM location_stock ls JOIN locations l ON l.location_id = ls.location_id
               WHERE ls.variant_id = ANY(${variants.map((variant) => variant.variantId)}) AND ls.location_id = ANY(${locationIds})
               ORDER BY ls.variant_id, ls.location_id
                 FOR UPDATE OF ls`
        // Which locations exist: a plain read (locations are never locked after a variant's row).
        const locations = yield* sql<{ locationId: string }>`SELECT location_id FROM locations WHERE location_id = ANY(${locationIds})`
        const stocked = new Set(rows.map((row) => stockKey(row.variantId, row.locationId)))
        const decisions = decideBatch(request.items, {
          variants: new Map(variants.map((variant) => [variant.variantId, { version: variant.version, onHand: variant.onHand }])),
          locations: new Set(locations.map((location) => location.locationId)),
          stock: new Map(rows.map((row) => [stockKey(row.variantId, row.locationId), row]))
        })

        if (atomic) {
          const failures = decisions.flatMap((decision, index) =>
            Result.isFailure(decision)
              ? [new BatchFailure({ index, code: decision.failure.problem.code, detail: decision.failure.message })]
              : []
          )
          if (failures.length > 0) return yield* new BatchRefused({ failures })
        }

        // Accepted items apply in request order, each answered with the variant as it left it.
        const changes: Array<StockChange> = []
        const results: Array<BulkAdjustmentItemResult> = []
        for (const [index, decision] of decisions.entries()) {
          if (Result.isFailure(decision)) {
            results.push(new BulkAdjustmentItemResult({ index, status: decision.failure.problem.status, problem: problemOf(decision.failure) }))
            continue
          }
          const item = request.items[index]!
          const { variantId } = item
          const locationId = locationOf(item)
          const onHandChange = decision.success
          const key = stockKey(variantId, locationId)
          const { location, after } = yield* applyOnHandChange(sql, { variantId, locationId, onHandChange, stocked: stocked.has(key) })
          stocked.add(key)
          changes.push({
            after: after!,
            locationId,
            location: locationStateOf(location!),
            locationActive: location!.active,
            type: item.type,
            onHandChange,
            reservedChange: 0,
            reason: item.reason,
            reference: item.reference
          })
          results.push(new BulkAdjustmentItemResult({ index, status: 200, stockLevel: toStockLevel(after!) }))
        }
        // One history entry and its events per applied item, in request order.
        yield* stockChanges.record(changes)
        return new BulkAdjustmentResults({ results })
      })

    const adjust = Effect.fn("BulkAdjustments.adjust")(function* (request: BulkAdjustmentRequest, idempotencyKey: Option.Option<string>) {
      const atomic = request.atomic ?? true
      yield* Effect.annotateCurrentSpan({ "inventory.items": request.items.length, "inventory.atomic": atomic })
      const { actor } = yield* CurrentRequest
      const result = yield* transactions.run(
        Option.match(idempotencyKey, {
          onNone: () => Effect.map(apply(request), (value) => ({ replayed: false, value })),
          onSome: (key) =>
            idempotency.once(
              { scope: `bulk-adjustments:${actor ?? "-"}`, key, request, schema: BulkAdjustmentResults },
              apply(request)
            )
        })
      ).pipe(
        Effect.tapError((error) =>
          error._tag === "BatchRefused"
            ? Effect.logInfo("bulk adjustment refused").pipe(
                Effect.annotateLogs({ items: request.items.length, refused: error.failures.length })
              )
            : Effect.void
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
  /** The service with its dependencies provided; needs SqlClient. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide([Transactions.layer, StockChanges.layer, Idempotency.layer]))
}
