import { Effect, Metric } from "effect"

export const reservationOutcomes = ["created", "refused", "released", "committed", "expired"] as const
export type ReservationOutcome = (typeof reservationOutcomes)[number]

/** `inventory_reservations_total{outcome}` once exported: reservation changes by outcome. */
const reservations = Metric.counter("inventory_reservations", {
  description: "Reservations created, refused, released, committed and expired",
  incremental: true
})

const reservationsWith = (outcome: ReservationOutcome) => Metric.withAttributes(reservations, { outcome })

export const countReservations = (outcome: ReservationOutcome, count = 1) =>
  count > 0 ? Metric.update(reservationsWith(outcome), count) : Effect.void

/** Every outcome at 0 from the start, so rates and alerts see the series before the first reservation. */
export const initReservationMetrics = Effect.forEach(
  reservationOutcomes,
  (outcome) => Metric.update(reservationsWith(outcome), 0),
  { discard: true }
)
