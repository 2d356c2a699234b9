import { Effect, Metric } from "effect"

export type ReservationOutcome = "created" | "refused" | "released" | "committed" | "expired"

/** `inventory_reservations_total{outcome}` once exported: reservation changes by outcome. */
const reservations = Metric.counter("inventory_reservations", {
  description: "Reservations created, refused, released, committed and expired",
  incremental: true
})

export const countReservations = (outcome: ReservationOutcome, count = 1) =>
  count > 0 ? Metric.incrementBy(Metric.tagged(reservations, "outcome", outcome), count) : Effect.void
