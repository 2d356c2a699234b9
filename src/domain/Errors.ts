import { Schema } from "effect"
// The `httpApiStatus` annotation key is declared by the HttpApi modules (a type-only import: no runtime dependency).
import type {} from "effect/http-api"
import { LocationId, OrderId, VariantId } from "./Ids.js"

/**
 * What a refusal means to a client: the HTTP status, the stable `code` of API.md and a short title.
 * Each typed error carries it, so the HTTP layer turns any of them into problem+json without a table.
 */
export interface ProblemInfo {
  readonly status: number
  readonly code: string
  readonly title: string
}

/** The RFC 9457 `type` of a problem code (API.md): stated once, for HTTP answers and stored answers alike. */
export const problemType = (code: string) => `urn:inventory:problem:${code}`

const problem = (status: number, code: string, title: string) => ({
  info: { status, code, title } satisfies ProblemInfo,
  // The HTTP status travels on the schema, so the HttpApi documents and serves it without a table.
  annotations: () => ({ httpApiStatus: status, description: `${code}: ${title}` })
})

const variantNotFound = problem(404, "variant-not-found", "Variant not found")
export class VariantNotFound extends Schema.TaggedError<VariantNotFound>()(
  "VariantNotFound",
  { variantId: VariantId },
  variantNotFound.annotations()
) {
  readonly problem = variantNotFound.info
  override get message() {
    return `No stock level exists for variant ${this.variantId}`
  }
}

const locationNotFound = problem(404, "location-not-found", "Location not found")
export class LocationNotFound extends Schema.TaggedError<LocationNotFound>()(
  "LocationNotFound",
  { locationId: LocationId },
  locationNotFound.annotations()
) {
  readonly problem = locationNotFound.info
  override get message() {
    return `No location exists with id ${this.locationId}`
  }
}

const insufficientStock = problem(409, "insufficient-stock", "Insufficient stock")
/** An adjustment that would take `onHand` below what is reserved (or below zero). */
export class InsufficientStock extends Schema.TaggedError<InsufficientStock>()(
  "InsufficientStock",
  { variantId: VariantId, requested: Schema.Int, available: Schema.Int },
  insufficientStock.annotations()
) {
  readonly problem = insufficientStock.info
  override get message() {
    return `Variant ${this.variantId} has ${this.available} available; the change needs ${this.requested}`
  }
}

/** UNKNOWN_LOCATION: the line names a location that does not exist or is inactive. */
export const ReservationFailureReason = Schema.Literals(["INSUFFICIENT_STOCK", "UNKNOWN_VARIANT", "UNKNOWN_LOCATION"])
/** A line that cannot be reserved; `locationId` is the location the line named, when it named one. */
export class ReservationFailure extends Schema.Class<ReservationFailure>("ReservationFailure")({
  variantId: VariantId,
  requested: Schema.Int,
  available: Schema.Int,
  reason: ReservationFailureReason,
  locationId: Schema.optionalKey(LocationId)
}) {}

/** A reservation refused as a whole; `failures` lists every line that could not be reserved. */
export class ReservationRefused extends Schema.TaggedError<ReservationRefused>()(
  "ReservationRefused",
  { orderId: OrderId, failures: Schema.Array(ReservationFailure) },
  insufficientStock.annotations()
) {
  readonly problem = insufficientStock.info
  override get message() {
    return `Order ${this.orderId}: ${this.failures.length} line(s) cannot be reserved`
  }
}

const versionConflict = problem(409, "version-conflict", "Version conflict")
export class VersionConflict extends Schema.TaggedError<VersionConflict>()(
  "VersionConflict",
  { variantId: VariantId, expectedVersion: Schema.Int, currentVersion: Schema.Int },
  versionConflict.annotations()
) {
  readonly problem = versionConflict.info
  override get message() {
    return `Variant ${this.variantId} is at version ${this.currentVersion}, not ${this.expectedVersion}`
  }
}

const stockLimitExceeded = problem(409, "stock-limit-exceeded", "Stock limit exceeded")
/** `onHand` would pass the largest quantity the service stores. */
export class StockLimitExceeded extends Schema.TaggedError<StockLimitExceeded>()(
  "StockLimitExceeded",
  { variantId: VariantId, limit: Schema.Int },
  stockLimitExceeded.annotations()
) {
  readonly problem = stockLimitExceeded.info
  override get message() {
    return `Variant ${this.variantId} cannot hold more than ${this.limit} units`
  }
}

const idempotencyKeyReused = problem(422, "idempotency-key-reused", "Idempotency key reused")
export class IdempotencyKeyReused extends Schema.TaggedError<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  { key: Schema.String },
  idempotencyKeyReused.annotations()
) {
  readonly problem = idempotencyKeyReused.info
  override get message() {
    return "This Idempotency-Key was already used with a different request"
  }
}

const reservationNotFound = problem(404, "reservation-not-found", "Reservation not found")
export class ReservationNotFound extends Schema.TaggedError<ReservationNotFound>()(
  "ReservationNotFound",
  { orderId: OrderId },
  reservationNotFound.annotations()
) {
  readonly problem = reservationNotFound.info
  override get message() {
    return `No reservation exists for order ${this.orderId}`
  }
}

const reservationConflict = problem(409, "reservation-conflict", "Reservation conflict")
export class ReservationConflict extends Schema.TaggedError<ReservationConflict>()(
  "ReservationConflict",
  { orderId: OrderId },
  reservationConflict.annotations()
) {
  readonly problem = reservationConflict.info
  override get message() {
    return `Order ${this.orderId} already has a reservation with different lines`
  }
}

const reservationNotActive = problem(409, "reservation-not-active", "Reservation not active")
export class ReservationNotActive extends Schema.TaggedError<ReservationNotActive>()(
  "ReservationNotActive",
  // Not `status`: that name belongs to the problem+json body (the HTTP status).
  { orderId: OrderId, reservationStatus: Schema.String },
  reservationNotActive.annotations()
) {
  readonly problem = reservationNotActive.info
  override get message() {
    return `Reservation of order ${this.orderId} is ${this.reservationStatus}`
  }
}

const batchRefused = problem(409, "batch-refused", "Batch refused")
export class BatchFailure extends Schema.Class<BatchFailure>("BatchFailure")({
  index: Schema.Int,
  code: Schema.String,
  detail: Schema.String
}) {}

/** An atomic bulk adjustment refused as a whole; `failures` lists every refused item, nothing was applied. */
export class BatchRefused extends Schema.TaggedError<BatchRefused>()(
  "BatchRefused",
  { failures: Schema.Array(BatchFailure) },
  batchRefused.annotations()
) {
  readonly problem = batchRefused.info
  override get message() {
    return `${this.failures.length} item(s) of the batch refused; nothing was applied`
  }
}

/** Anything that knows how it should be shown to a client. */
export const isProblem = (u: unknown): u is { readonly problem: ProblemInfo; readonly message: string } =>
  typeof u === "object" && u !== null && "problem" in u && typeof (u as { problem: unknown }).problem === "object"
