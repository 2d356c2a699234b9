import { Schema } from "effect"
import { LocationId, OrderId, VariantId } from "./Ids.js"

export const AdjustmentType = Schema.Literals(["PURCHASE", "SALE", "RETURN", "ADJUSTMENT", "RECOUNT"]).annotate({
  identifier: "AdjustmentType"
})
export type AdjustmentType = typeof AdjustmentType.Type

export const ReservationChangeType = Schema.Literals(["RESERVE", "RELEASE", "COMMIT", "EXPIRE"])
export type ReservationChangeType = typeof ReservationChangeType.Type

/** The two halves of a transfer between locations (API.md), one entry at each. */
export const TransferChangeType = Schema.Literals(["TRANSFER_OUT", "TRANSFER_IN"])
export type TransferChangeType = typeof TransferChangeType.Type

export const HistoryType = Schema.Literals([
  ...AdjustmentType.literals,
  ...ReservationChangeType.literals,
  ...TransferChangeType.literals
]).annotate({
  identifier: "HistoryType"
})
export type HistoryType = typeof HistoryType.Type

/**
 * One change of `onHand` and/or `reserved` of one variant at one location, written in the transaction
 * of the change; `onHandAfter` / `reservedAfter` are that location's values.
 */
export class HistoryEntry extends Schema.Class<HistoryEntry>("HistoryEntry")({
  id: Schema.String,
  variantId: VariantId,
  locationId: LocationId,
  type: HistoryType,
  onHandChange: Schema.Int,
  reservedChange: Schema.Int,
  onHandAfter: Schema.Int,
  reservedAfter: Schema.Int,
  reason: Schema.NullOr(Schema.String),
  reference: Schema.NullOr(Schema.String),
  orderId: Schema.NullOr(OrderId),
  correlationId: Schema.NullOr(Schema.String),
  // An ISO string on the wire (and in stored idempotent answers), a DateTime.Utc in the service.
  createdAt: Schema.DateTimeUtcFromString
}) {}
