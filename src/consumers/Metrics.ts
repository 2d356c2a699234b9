import { Metric } from "effect"

/** The consumers' metrics (names agreed across the team; counters get `_total` from the exporter). */
export const eventsConsumed = Metric.counter("inventory_events_consumed", {
  description: "Consumed messages by event type and outcome (applied, duplicate, ignored, dead_lettered)",
  incremental: true
})
export const messagesDeadLettered = Metric.counter("inventory_messages_dead_lettered", {
  description: "Messages moved to inventory.dead-letter, by the queue they came from",
  incremental: true
})
