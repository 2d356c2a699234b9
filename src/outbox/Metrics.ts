import { Effect, Metric } from "effect"
import { routingKeys, type EventType } from "../domain/Events.js"

/** The relay's metrics (names agreed across the team; counters get `_total` from the exporter). */
export const eventsPublished = Metric.counter("inventory_events_published", {
  description: "Events confirmed by the broker (or written by the log publisher)",
  incremental: true
})
export const outboxPendingRows = Metric.gauge("inventory_outbox_pending_rows", {
  description: "Outbox rows neither published nor parked"
})
export const outboxOldestPendingAge = Metric.gauge("inventory_outbox_oldest_pending_age_seconds", {
  description: "Age of the oldest pending outbox row"
})
export const publishLatency = Metric.histogram("inventory_outbox_publish_latency_seconds", {
  description: "From the event's transaction to the broker's confirm",
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
})
export const publishFailures = Metric.counter("inventory_outbox_publish_failures", {
  description: "Publishes the broker refused or could not confirm",
  incremental: true
})
export const outboxParked = Metric.counter("inventory_outbox_parked", {
  description: "Outbox rows parked after OUTBOX_MAX_ATTEMPTS refusals",
  incremental: true
})

/** Every series at 0 from the start, so alerts on failures and parked rows have a baseline. */
export const initOutboxMetrics = Effect.all(
  [
    Metric.update(publishFailures, 0),
    Metric.update(outboxParked, 0),
    ...(Object.keys(routingKeys) as Array<EventType>).map((type) => Metric.update(Metric.withAttributes(eventsPublished, { event_type: type }), 0))
  ],
  { discard: true }
)
