import { Result, Schema } from "effect"
import { adjustmentFields, planAdjustment, quantityFitsType, UNSTOCKED } from "./Adjustment.js"
import { InsufficientStock, LocationNotFound, StockLimitExceeded, VariantNotFound, VersionConflict } from "./Errors.js"
import { VariantId } from "./Ids.js"
import { DEFAULT_LOCATION, StockLevel } from "./StockLevel.js"

/** API.md "Bulk adjustments": 1–1,000 items per call. */
export const MAX_BULK_ITEMS = 1000

/** One item of a bulk adjustment: an `Adjustment` of one variant, at one location (default `default`). */
export const BulkAdjustmentItem = Schema.Struct({ variantId: VariantId, ...adjustmentFields }).check(quantityFitsType)
export type BulkAdjustmentItem = typeof BulkAdjustmentItem.Type

export class BulkAdjustmentRequest extends Schema.Class<BulkAdjustmentRequest>("BulkAdjustmentRequest")({
  items: Schema.Array(BulkAdjustmentItem).check(
    Schema.isMinLength(1, { message: "must hold at least 1 item" }),
    Schema.isMaxLength(MAX_BULK_ITEMS, { message: `must hold at most ${MAX_BULK_ITEMS} items` })
  ),
  /** Default true: all items or none. */
  atomic: Schema.optionalKey(Schema.Boolean)
}) {}

/** The problem body a refused item would have had as a single adjustment (without correlationId). */
export class ItemProblem extends Schema.Class<ItemProblem>("BulkAdjustmentItemProblem")({
  type: Schema.String,
  title: Schema.String,
  status: Schema.Int,
  detail: Schema.String,
  code: Schema.String
}) {}

export class BulkAdjustmentItemResult extends Schema.Class<BulkAdjustmentItemResult>("BulkAdjustmentItemResult")({
  index: Schema.Int,
  status: Schema.Int,
  stockLevel: Schema.optionalKey(StockLevel),
  problem: Schema.optionalKey(ItemProblem)
}) {}

/** `200 { results }`, one per item, in request order. */
export class BulkAdjustmentResults extends Schema.Class<BulkAdjustmentResults>("BulkAdjustmentResults")({
  results: Schema.Array(BulkAdjustmentItemResult)
}) {}

export type ItemRefusal = VariantNotFound | LocationNotFound | InsufficientStock | VersionConflict | StockLimitExceeded

/** The location an item acts on. */
export const locationOf = (item: Pick<BulkAdjustmentItem, "locationId">): string => item.locationId ?? DEFAULT_LOCATION

/** What the batch is decided on: the locked rows, before any item. */
export interface BatchState {
  /** Existing variants: their version and onHand over all locations (also bounded by MAX_QUANTITY). */
  readonly variants: ReadonlyMap<string, { readonly version: number; readonly onHand: number }>
  /** Existing locations. */
  readonly locations: ReadonlySet<string>
  /** Location rows that exist, by `stockKey`. */
  readonly stock: ReadonlyMap<string, { readonly onHand: number; readonly reserved: number }>
}

export const stockKey = (variantId: string, locationId: string) => `${variantId}\u0000${locationId}`

/** An item's decision: the change to its location's onHand, or why it is refused. */
export type ItemDecision = Result.Result<number, ItemRefusal>

/**
 * Decides every item in request order on the running values: an accepted item moves its location's
 * onHand, the variant's onHand and its version (+1) for the items after it; a refused one moves nothing. The same
 * decisions serve both modes: atomic refuses the batch if any is refused, non-atomic applies the rest.
 */
export const decideBatch = (items: ReadonlyArray<BulkAdjustmentItem>, state: BatchState): ReadonlyArray<ItemDecision> => {
  const variants = new Map(state.variants)
  const stock = new Map(state.stock)
  return items.map((item): ItemDecision => {
    const variant = variants.get(item.variantId)
    if (variant === undefined) return Result.fail(new VariantNotFound({ variantId: item.variantId }))
    const locationId = locationOf(item)
    if (!state.locations.has(locationId)) return Result.fail(new LocationNotFound({ locationId }))
    const key = stockKey(item.variantId, locationId)
    // Not stocked there yet: decided as an empty row (PURCHASE/RETURN/RECOUNT stock it, SALE is refused).
    const current = stock.get(key) ?? UNSTOCKED
    const decision = planAdjustment(
      { variantId: item.variantId, onHand: current.onHand, reserved: current.reserved, version: variant.version, variantOnHand: variant.onHand },
      item
    )
    if (Result.isSuccess(decision)) {
      stock.set(key, { onHand: current.onHand + decision.success, reserved: current.reserved })
      variants.set(item.variantId, { version: variant.version + 1, onHand: variant.onHand + decision.success })
    }
    return decision
  })
}
