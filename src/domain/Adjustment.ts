import { Result, Schema } from "effect"
import { availableAt } from "./Allocation.js"
import { InsufficientStock, StockLimitExceeded, VersionConflict } from "./Errors.js"
import { AdjustmentType, HistoryEntry } from "./History.js"
import { LocationId, MAX_QUANTITY } from "./Ids.js"
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

/** The fields of an `Adjustment` (a bulk item adds `variantId` to them). */
export const adjustmentFields = {
  type: AdjustmentType,
  quantity: Schema.Int.check(Schema.isBetween({ minimum: -MAX_QUANTITY, maximum: MAX_QUANTITY })),
  reason: Schema.optionalKey(FreeText),
  reference: Schema.optionalKey(FreeText),
  expectedVersion: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  // Absent means `default` (the service applies it): a v1 body keeps the fingerprint its stored
  // Idempotency-Key answer was made with.
  locationId: Schema.optionalKey(LocationId)
}

/** The quantity must fit the type (`quantityProblem`), reported at `quantity`. */
export const quantityFitsType = Schema.makeFilter((adjustment: { readonly type: AdjustmentType; readonly quantity: number }) => {
  const problem = quantityProblem(adjustment.type, adjustment.quantity)
  return problem === undefined ? true : { path: ["quantity"], issue: problem }
})

// Every invalid field is reported, not only the first: in Effect 4 that is the decoder's parse option
// `errors: "all"` (set where the HTTP API decodes payloads), no longer a schema annotation.
export class Adjustment extends Schema.Class<Adjustment>("Adjustment")(
  Schema.Struct(adjustmentFields).check(quantityFitsType)
) {}

/** What an adjustment is decided on: the counts of the location it acts on, the variant's version. */
export interface StockCounts {
  readonly variantId: string
  readonly onHand: number
  readonly reserved: number
  readonly version: number
  /** The variant's onHand over all its locations, when known: the total is bounded by MAX_QUANTITY too. */
  readonly variantOnHand?: number
}

/** What a location where the variant is not stocked counts as: stocked there only if an adjustment is accepted. */
export const UNSTOCKED = { onHand: 0, reserved: 0 } as const

/**
 * The change to the location's `onHand` an adjustment makes, or why it is refused. `reserved` never
 * moves here; the location's invariant `0 <= reserved <= onHand <= MAX_QUANTITY` must hold afterwards.
 * At a location where the variant is not stocked (`UNSTOCKED`), PURCHASE, RETURN, RECOUNT and a
 * positive ADJUSTMENT are accepted (the caller stocks it there first); SALE and a negative ADJUSTMENT
 * are refused as insufficient stock.
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
  if (onHandAfter > MAX_QUANTITY || (current.variantOnHand ?? 0) + onHandChange > MAX_QUANTITY) {
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

/** Body of `POST /v1/stock-levels/{variantId}/transfers`: moves `quantity` of onHand between two locations. */
export class Transfer extends Schema.Class<Transfer>("Transfer")(
  Schema.Struct({
    fromLocationId: LocationId,
    toLocationId: LocationId,
    quantity: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_QUANTITY })),
    reason: Schema.optionalKey(FreeText),
    reference: Schema.optionalKey(FreeText)
  }).check(
    Schema.makeFilter((transfer) =>
      transfer.fromLocationId !== transfer.toLocationId ? true : { path: ["toLocationId"], issue: "must differ from fromLocationId" }
    )
  )
) {}

/**
 * Whether a transfer may run: the source's `available` (reserved units and safety stock stay) must
 * cover the quantity, and the destination must stay within MAX_QUANTITY. An unstocked location
 * counts as empty (`from` / `to` undefined); the caller stocks the destination first.
 */
export const planTransfer = (
  variantId: string,
  from: { readonly onHand: number; readonly reserved: number; readonly safetyStock: number } | undefined,
  to: { readonly onHand: number } | undefined,
  quantity: number
): Result.Result<void, InsufficientStock | StockLimitExceeded> => {
  const available = from === undefined ? 0 : availableAt(from)
  if (available < quantity) return Result.fail(new InsufficientStock({ variantId, requested: quantity, available }))
  if ((to?.onHand ?? 0) + quantity > MAX_QUANTITY) return Result.fail(new StockLimitExceeded({ variantId, limit: MAX_QUANTITY }))
  return Result.void
}

/** What an accepted transfer answers: the new stock level, and its TRANSFER_OUT and TRANSFER_IN entries. */
export class TransferResult extends Schema.Class<TransferResult>("TransferResult")({
  stockLevel: StockLevel,
  entries: Schema.Tuple([HistoryEntry, HistoryEntry])
}) {}
