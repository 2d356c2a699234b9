import { Result, Schema } from "effect"
import { ALLOCATION_STRATEGIES, allocateLines, DEFAULT_ALLOCATION, type AllocationStock, type AllocationStrategy } from "./Allocation.js"
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

/** A requested line; `locationId` reserves it only there (click-and-collect). */
export class ReservationLine extends Schema.Class<ReservationLine>("ReservationLine")({
  variantId: VariantId,
  quantity: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_LINE_QUANTITY })),
  locationId: Schema.optionalKey(LocationId)
}) {}

/** `allocation` of `POST /v1/reservations` (default PRIORITY). */
export const AllocationStrategySchema = Schema.Literals(ALLOCATION_STRATEGIES).annotate({ identifier: "AllocationStrategy" })

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
 * The canonical form of the requested lines, decided in this order and locked in variant-id order (a
 * fixed lock order rules out deadlocks between reservations). Lines without `locationId` are summed
 * per variant, as in v1; lines naming a location are summed per (variant, location), since each
 * pin is its own constraint. Per variant: the pinned lines first (location-id order), then the
 * unpinned one, so a line free to draw anywhere never takes the units a pinned line can only find at
 * its location. A reservation stores one line per variant: `decideReservation` joins them again.
 */
export const mergeLines = (
  lines: ReadonlyArray<{ readonly variantId: string; readonly quantity: number; readonly locationId?: string | undefined }>
): ReadonlyArray<ReservationLine> => {
  const totals = new Map<string, { variantId: string; locationId: string | undefined; quantity: number }>()
  for (const line of lines) {
    const key = `${line.variantId} ${line.locationId ?? ""}`
    const merged = totals.get(key)
    if (merged === undefined) totals.set(key, { variantId: line.variantId, locationId: line.locationId, quantity: line.quantity })
    else merged.quantity += line.quantity
  }
  const order = (a: string | undefined, b: string | undefined) =>
    a === b ? 0 : a === undefined ? 1 : b === undefined ? -1 : a < b ? -1 : 1
  return [...totals.values()]
    .sort((a, b) => (a.variantId < b.variantId ? -1 : a.variantId > b.variantId ? 1 : order(a.locationId, b.locationId)))
    .map(({ variantId, quantity, locationId }) =>
      new ReservationLine(locationId === undefined ? { variantId, quantity } : { variantId, quantity, locationId })
    )
}

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
  const left = lineTotals(a)
  const right = lineTotals(b)
  return left.length === right.length && left.every(([variantId, quantity], i) => variantId === right[i]![0] && quantity === right[i]![1])
}

/**
 * Whether a request repeats a stored reservation: the same quantities per variant, and each
 * location a line names holds at least the units pinned there (so a request pinned elsewhere is a
 * different request). The strategy is not stored: a repeat answers the reservation as made.
 */
export const repeatsReservation = (stored: ReadonlyArray<ReservedLine>, requested: ReadonlyArray<ReservationLine>): boolean => {
  if (!sameLines(stored, requested)) return false
  const pinned = new Map<string, number>()
  for (const line of requested) {
    if (line.locationId === undefined) continue
    const key = `${line.variantId} ${line.locationId}`
    pinned.set(key, (pinned.get(key) ?? 0) + line.quantity)
  }
  const held = new Map<string, number>(stored.flatMap((line) => line.allocations.map((a) => [`${line.variantId} ${a.locationId}`, a.quantity] as const)))
  return [...pinned].every(([key, quantity]) => (held.get(key) ?? 0) >= quantity)
}

/** Body of `POST /v1/reservations`. A variant's merged quantity must still fit one line. */
export class ReservationRequest extends Schema.Class<ReservationRequest>("ReservationRequest")(
  Schema.Struct({
    orderId: OrderId,
    lines: Schema.Array(ReservationLine).check(Schema.isMinLength(1), Schema.isMaxLength(MAX_LINES)),
    ttlSeconds: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: MAX_TTL_SECONDS }))),
    allocation: Schema.optionalKey(AllocationStrategySchema)
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
 * The all-or-nothing decision on merged lines (`mergeLines`): the allocation rule
 * (domain/Allocation.ts) with the request's strategy. The lines of a variant (pinned and not) become
 * its one stored line, with one allocation per location (summed), in location-id order. Failures
 * list every failing merged line, naming its location when it named one; with only the location
 * `default` and no safety stock, `available` is v1's `onHand - reserved`.
 */
export const decideReservation = (
  lines: ReadonlyArray<ReservationLine>,
  stock: AllocationStock,
  strategy: AllocationStrategy = DEFAULT_ALLOCATION
): Result.Result<ReadonlyArray<ReservedLine>, ReadonlyArray<ReservationFailure>> => {
  const decision = allocateLines(lines, strategy, stock)
  if (decision._tag === "Refused") {
    return Result.fail(
      decision.failures.map((f) =>
        new ReservationFailure({
          variantId: f.variantId,
          requested: f.requested,
          available: f.available,
          reason: f.reason,
          ...(f.locationId === undefined ? {} : { locationId: f.locationId })
        })
      )
    )
  }
  const byVariant = new Map<string, { quantity: number; at: Map<string, number> }>()
  for (const line of decision.lines) {
    const entry = byVariant.get(line.variantId) ?? { quantity: 0, at: new Map<string, number>() }
    entry.quantity += line.quantity
    for (const a of line.allocations) entry.at.set(a.locationId, (entry.at.get(a.locationId) ?? 0) + a.quantity)
    byVariant.set(line.variantId, entry)
  }
  return Result.succeed(
    [...byVariant].map(([variantId, { quantity, at }]) =>
      new ReservedLine({
        variantId,
        quantity,
        allocations: sortAllocations([...at].map(([locationId, q]) => ({ locationId, quantity: q }))).map((a) => new LineAllocation(a))
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
