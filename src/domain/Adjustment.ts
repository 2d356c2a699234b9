import { Result, Schema } from "effect"
import { InsufficientStock, StockLimitExceeded, VersionConflict } from "./Errors.js"
import { AdjustmentType, HistoryEntry } from "./History.js"
import { MAX_QUANTITY } from "./Ids.js"
import { StockLevel } from "./StockLevel.js"
import { FreeText } from "./Text.js"

/** Why a quantity does not fit its adjustment type, or undefined when it does (API.md). */
export const quantityProblem = (type: AdjustmentType, quantity: number): string | undefined => {
  switch (type) {
    case "PURCHASE":
    case "RETURN":
    case "SALE":
      return quantity > 0 ? undefined : `must be greater than 0 for ${type}`
    case "ADJUSTMENT":
      return quantity !== 0 ? undefined : "must not be 0 for ADJUSTMENT"
    case "RECOUNT":
      return quantity >= 0 ? undefined : "must be 0 or more for RECOUNT"
  }
}

// Every invalid field is reported, not only the first: in Effect 4 that is the decoder's parse option
// `errors: "all"` (set where the HTTP API decodes payloads), no longer a schema annotation.
export class Adjustment extends Schema.Class<Adjustment>("Adjustment")(
  Schema.Struct({
    type: AdjustmentType,
    quantity: Schema.Int.check(Schema.isBetween({ minimum: -MAX_QUANTITY, maximum: MAX_QUANTITY })),
    reason: Schema.optionalKey(FreeText),
    reference: Schema.optionalKey(FreeText),
    expectedVersion: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))
  }).check(
    Schema.makeFilter((adjustment) => {
      const problem = quantityProblem(adjustment.type, adjustment.quantity)
      return problem === undefined ? true : { path: ["quantity"], issue: problem }
    })
  )
) {}

/** What an adjustment is decided on: the counts of the location it acts on, the variant's version. */
export interface StockCounts {
  readonly variantId: string
  readonly onHand: number
  readonly reserved: number
  readonly version: number
}

/**
 * The change to the location's `onHand` an adjustment makes, or why it is refused. `reserved` never
 * moves here; the location's invariant `0 <= reserved <= onHand <= MAX_QUANTITY` must hold afterwards.
 */
export const planAdjustment = (
  current: StockCounts,
  adjustment: Pick<Adjustment, "type" | "quantity" | "expectedVersion">
): Result.Result<number, InsufficientStock | VersionConflict | StockLimitExceeded> => {
  if (adjustment.expectedVersion !== undefined && adjustment.expectedVersion !== current.version) {
    return Result.fail(
      new VersionConflict({
        variantId: current.variantId,
        expectedVersion: adjustment.expectedVersion,
        currentVersion: current.version
      })
    )
  }
  const onHandChange = onHandChangeOf(current.onHand, adjustment.type, adjustment.quantity)
  const onHandAfter = current.onHand + onHandChange
  if (onHandAfter < current.reserved) {
    return Result.fail(
      new InsufficientStock({
        variantId: current.variantId,
        requested: onHandChange < 0 ? -onHandChange : adjustment.quantity,
        available: current.onHand - current.reserved
      })
    )
  }
  if (onHandAfter > MAX_QUANTITY) {
    return Result.fail(new StockLimitExceeded({ variantId: current.variantId, limit: MAX_QUANTITY }))
  }
  return Result.succeed(onHandChange)
}

const onHandChangeOf = (onHand: number, type: AdjustmentType, quantity: number): number => {
  switch (type) {
    case "PURCHASE":
    case "RETURN":
      return quantity
    case "SALE":
      return -quantity
    case "ADJUSTMENT":
      return quantity
    case "RECOUNT":
      return quantity - onHand
  }
}

/** What an accepted adjustment answers: the new stock level and the history entry it wrote. */
export class AdjustmentResult extends Schema.Class<AdjustmentResult>("AdjustmentResult")({
  stockLevel: StockLevel,
  entry: HistoryEntry
}) {}
