import { Result, Schema } from "effect"
import { allocateLines, DEFAULT_ALLOCATION, type AllocationStock } from "./Allocation.js"
import { ReservationFailure, ReservationNotActive } from "./Errors.js"
import { OrderId, VariantId } from "./Ids.js"
import { LocationId } from "./Location.js"

/** The location every v1 call acts on (API.md "Locations"). */
export const DEFAULT_LOCATION = "default"

/** Limits of API.md. */
export const MAX_LINES = 100
export const MAX_LINE_QUANTITY = 1_000_000
export const MAX_TTL_SECONDS = 86_400
export const DEFAULT_TTL_SECONDS = 900

export const ReservationStatus = Schema.Literals(["ACTIVE", "COMMITTED", "RELEASED", "EXPIRED"]).annotate({
  identifier: "ReservationStatus"
})
export type ReservationStatus = typeof ReservationStatus.Type

export class ReservationLine extends Schema.Class<ReservationLine>("ReservationLine")({
  variantId: VariantId,
  quantity: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_LINE_QUANTITY }))
}) {}

/** Where a reserved line is held: `quantity` units at `locationId`. */
export class LineAllocation extends Schema.Class<LineAllocation>("LineAllocation")({
  locationId: LocationId,
  quantity: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_LINE_QUANTITY }))
}) {}

/** A line of a stored reservation: its allocations sum to `quantity`; release, commit and expiry act on exactly them. */
export class ReservedLine extends Schema.Class<ReservedLine>("ReservedLine")({
  variantId: VariantId,
  quantity: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_LINE_QUANTITY })),
  allocations: Schema.Array(LineAllocation)
}) {}

/**
 * Lines with the same variant summed, in variant-id order: the canonical form that is stored,
 * compared for idempotency and locked in (a fixed lock order rules out deadlocks between reservations).
 */
export const mergeLines = (lines: ReadonlyArray<{ readonly variantId: string; readonly quantity: number }>): ReadonlyArray<ReservationLine> =>
  lineTotals(lines).map(([variantId, quantity]) => new ReservationLine({ variantId, quantity }))

/** [variantId, summed quantity] in variant-id order. */
const lineTotals = (lines: ReadonlyArray<{ readonly variantId: string; readonly quantity: number }>) => {
  const totals = new Map<string, number>()
  for (const line of lines) totals.set(line.variantId, (totals.get(line.variantId) ?? 0) + line.quantity)
  return [...totals.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** Same variants with the same quantities, whatever the order or splitting of the lines. */
export const sameLines = (
  a: ReadonlyArray<{ readonly variantId: string; readonly quantity: number }>,
  b: ReadonlyArray<{ readonly variantId: string; readonly quantity: number }>
): boolean => {
  const left = mergeLines(a)
  const right = mergeLines(b)
  return left.length === right.length && left.every((line, i) => line.variantId === right[i]!.variantId && line.quantity === right[i]!.quantity)
}

/** Body of `POST /v1/reservations`. A variant's merged quantity must still fit one line. */
export class ReservationRequest extends Schema.Class<ReservationRequest>("ReservationRequest")(
  Schema.Struct({
    orderId: OrderId,
    lines: Schema.Array(ReservationLine).check(Schema.isMinLength(1), Schema.isMaxLength(MAX_LINES)),
    ttlSeconds: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_TTL_SECONDS })))
  }).check(
    Schema.makeFilter((request) => {
      const tooLarge = lineTotals(request.lines).find(([, quantity]) => quantity > MAX_LINE_QUANTITY)
      return tooLarge === undefined
        ? true
        : { path: ["lines"], issue: `the quantities of variant ${tooLarge[0]} add up to more than ${MAX_LINE_QUANTITY}` }
    })
  )
) {}

export class Reservation extends Schema.Class<Reservation>("Reservation")({
  orderId: OrderId,
  status: ReservationStatus,
  lines: Schema.Array(ReservedLine),
  // ISO strings on the wire, DateTime.Utc in the service.
  expiresAt: Schema.DateTimeUtcFromString,
  createdAt: Schema.DateTimeUtcFromString,
  updatedAt: Schema.DateTimeUtcFromString
}) {}

/**
 * The all-or-nothing decision of a v1 request (no line names a location): the allocation rule
 * (domain/Allocation.ts) with the default strategy, each line's allocations in location-id order.
 * Its failures keep the v1 shape: `available` is what the line could draw on, which with only the
 * location `default` and no safety stock is v1's `onHand - reserved`.
 */
export const decideReservation = (
  lines: ReadonlyArray<ReservationLine>,
  stock: AllocationStock
): Result.Result<ReadonlyArray<ReservedLine>, ReadonlyArray<ReservationFailure>> => {
  const decision = allocateLines(lines, DEFAULT_ALLOCATION, stock)
  if (decision._tag === "Refused") {
    return Result.fail(
      decision.failures.map((f) =>
        new ReservationFailure({
          variantId: f.variantId,
          requested: f.requested,
          available: f.available,
          // UNKNOWN_LOCATION needs a line that names a location, which a v1 request cannot.
          reason: f.reason === "UNKNOWN_VARIANT" ? "UNKNOWN_VARIANT" : "INSUFFICIENT_STOCK"
        })
      )
    )
  }
  return Result.succeed(
    decision.lines.map((line) =>
      new ReservedLine({
        variantId: line.variantId,
        quantity: line.quantity,
        allocations: sortAllocations(line.allocations).map((a) => new LineAllocation(a))
      })
    )
  )
}

/** Allocations in location-id order (code units): how answers list them, stable whatever the priorities later. */
export const sortAllocations = <A extends { readonly locationId: string }>(allocations: ReadonlyArray<A>): ReadonlyArray<A> =>
  [...allocations].sort((a, b) => (a.locationId < b.locationId ? -1 : a.locationId > b.locationId ? 1 : 0))

/** What the single-location view needs of a variant's stock level. */
export interface Availability {
  readonly onHand: number
  readonly reserved: number
}

/** The v1 rule on single-location stock: `decideReservation` with every variant at `default` only. */
export const decideLines = (
  lines: ReadonlyArray<ReservationLine>,
  stock: ReadonlyMap<string, Availability>
): Result.Result<ReadonlyArray<ReservedLine>, ReadonlyArray<ReservationFailure>> =>
  decideReservation(lines, {
    rows: [...stock].map(([variantId, level]) => ({
      variantId,
      locationId: DEFAULT_LOCATION,
      onHand: level.onHand,
      reserved: level.reserved,
      safetyStock: 0,
      active: true,
      priority: 0
    })),
    variants: new Set(stock.keys()),
    locations: new Map([[DEFAULT_LOCATION, { active: true }]])
  })

/**
 * What happens to a stored reservation. A reservation past `expiresAt` counts as expired even before
 * the sweeper reaches it, so answers never depend on the sweeper's timing.
 */
export type Transition = "release" | "commit" | "expire" | "unchanged"

export const isDue = (reservation: { readonly status: ReservationStatus; readonly expiresAt: Date }, nowMillis: number) =>
  reservation.status === "ACTIVE" && reservation.expiresAt.getTime() <= nowMillis

/**
 * The status every answer states at `nowMillis` (the database's clock): an ACTIVE reservation past
 * `expiresAt` is EXPIRED whether or not the sweeper has reached it yet, so GET, a repeated create,
 * release and commit always agree; the sweeper only makes the stock and the events follow.
 */
export const statusAt = (reservation: { readonly status: ReservationStatus; readonly expiresAt: Date }, nowMillis: number): ReservationStatus =>
  isDue(reservation, nowMillis) ? "EXPIRED" : reservation.status

/** Release: ACTIVE → RELEASED (or EXPIRED when due); RELEASED/EXPIRED stay as they are; COMMITTED is refused. */
export const releaseTransition = (
  orderId: string,
  reservation: { readonly status: ReservationStatus; readonly expiresAt: Date },
  nowMillis: number
): Result.Result<Transition, ReservationNotActive> => {
  switch (reservation.status) {
    case "ACTIVE":
      return Result.succeed(isDue(reservation, nowMillis) ? "expire" : "release")
    case "RELEASED":
    case "EXPIRED":
      return Result.succeed("unchanged")
    case "COMMITTED":
      return Result.fail(new ReservationNotActive({ orderId, reservationStatus: reservation.status }))
  }
}

/** Commit: ACTIVE → COMMITTED; COMMITTED stays; RELEASED/EXPIRED (or due) are refused. */
export const commitTransition = (
  orderId: string,
  reservation: { readonly status: ReservationStatus; readonly expiresAt: Date },
  nowMillis: number
): Result.Result<Transition, ReservationNotActive> => {
  switch (reservation.status) {
    case "ACTIVE":
      return isDue(reservation, nowMillis) ? Result.succeed("expire") : Result.succeed("commit")
    case "COMMITTED":
      return Result.succeed("unchanged")
    case "RELEASED":
    case "EXPIRED":
      return Result.fail(new ReservationNotActive({ orderId, reservationStatus: reservation.status }))
  }
}

/** The status a transition leads to. */
export const statusAfter = (transition: Exclude<Transition, "unchanged">): ReservationStatus =>
  transition === "release" ? "RELEASED" : transition === "commit" ? "COMMITTED" : "EXPIRED"

/** How a transition moves the stock an allocation holds: history type and the change of onHand / reserved. */
export const lineChange = (transition: Exclude<Transition, "unchanged"> | "reserve", quantity: number) => {
  switch (transition) {
    case "reserve":
      return { type: "RESERVE", onHandChange: 0, reservedChange: quantity } as const
    case "release":
      return { type: "RELEASE", onHandChange: 0, reservedChange: -quantity } as const
    case "expire":
      return { type: "EXPIRE", onHandChange: 0, reservedChange: -quantity } as const
    case "commit":
      return { type: "COMMIT", onHandChange: -quantity, reservedChange: -quantity } as const
  }
}
