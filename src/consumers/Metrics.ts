import { Effect, Metric } from "effect"

/** The consumers' metrics (names agreed across the team; counters get `_total` from the exporter). */
export const eventsConsumed = Metric.counter("inventory_events_consumed", {
  description: "Consumed messages by event type and outcome (applied, duplicate, ignored, dead_lettered)",
  incremental: true
})
export const messagesDeadLettered = Metric.counter("inventory_messages_dead_lettered", {
  description: "Messages moved to inventory.dead-letter, by the queue they came from",
  incremental: true
})
export const consumerRetries = Metric.counter("inventory_consumer_retries", {
  description: "Failed attempts at a consumed message that will be retried, by queue and kind (transient, unknown)",
  incremental: true
})

/** The consumed event types and dead-letter queues at 0 from the start (alerts need a baseline). */
export const initConsumerMetrics = (queues: ReadonlyArray<string>, eventTypes: ReadonlyArray<string>) =>
  Effect.all(
    [
      ...queues.map((queue) => Metric.update(Metric.withAttributes(messagesDeadLettered, { queue }), 0)),
      ...queues.flatMap((queue) =>
        ["transient", "unknown"].map((kind) => Metric.update(Metric.withAttributes(consumerRetries, { queue, kind }), 0))
      ),
      ...eventTypes.flatMap((type) =>
        ["applied", "duplicate", "dead_lettered"].map((outcome) =>
          Metric.update(Metric.withAttributes(eventsConsumed, { event_type: type, outcome }), 0)
        )
      )
    ],
    { discard: true }
  )
