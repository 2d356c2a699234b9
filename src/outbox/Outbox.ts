import { Array as Arr, Context, Effect, Layer, Option, PubSub } from "effect"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import { type DomainEvent, type EventEnvelope, routingKeys } from "../domain/Events.js"
import { CurrentRequest } from "../services/RequestContext.js"

/** W3C `traceparent` of the current span, stored with the event so its consumer continues the trace. */
const currentTraceparent = Effect.map(Effect.currentSpan.pipe(Effect.option), (span) =>
  Option.match(span, {
    onNone: () => null,
    onSome: (s) => `00-${s.traceId}-${s.spanId}-${s.sampled ? "01" : "00"}`
  })
)

/**
 * The transactional outbox. `write` must run inside the transaction of the state change it describes;
 * `committed` is called after that transaction commits and wakes this process's relay at once. Every
 * replica's relay is also woken by the NOTIFY that the `outbox_notify` trigger (migration 0082) sends
 * at that commit, so writers do nothing more (docs/messaging.md).
 */
export class Outbox extends Context.Service<Outbox>()("inventory/Outbox", {
  make: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const commits = yield* PubSub.sliding<void>(1)

    /** The outbox rows of events, for writers that insert them together with other rows in one statement. */
    const rows = (events: ReadonlyArray<DomainEvent>) =>
      Effect.gen(function* () {
        const current = yield* CurrentRequest
        const traceparent = yield* currentTraceparent
        const occurredAt = new Date().toISOString()
        return events.map((event) => {
          const correlationId = event.correlationId !== undefined ? event.correlationId : current.correlationId
          const envelope: EventEnvelope = {
            eventId: randomUUID(),
            eventType: event.eventType,
            eventVersion: 1,
            occurredAt,
            aggregateType: event.aggregateType,
            aggregateId: event.aggregateId,
            correlationId,
            data: event.data
          }
          return {
            eventId: envelope.eventId,
            eventType: event.eventType,
            routingKey: routingKeys[event.eventType],
            aggregateType: event.aggregateType,
            aggregateId: event.aggregateId,
            payload: JSON.stringify(envelope),
            correlationId,
            traceparent
          }
        })
      })

    const write = (events: ReadonlyArray<DomainEvent>) =>
      Effect.gen(function* () {
        if (events.length === 0) return
        const all = yield* rows(events)
        // sql.insert takes a non-empty tuple in Effect 4; no events, no statement (as before).
        if (!Arr.isArrayNonEmpty(all)) return
        yield* sql`INSERT INTO outbox ${sql.insert(all)}`
      })

    return {
      write,
      rows,
      /** Signal that a transaction which wrote events has committed. */
      committed: PubSub.publish(commits, undefined).pipe(Effect.asVoid),
      /** Subscribe to commit signals (the relay's wake-up). */
      subscribe: PubSub.subscribe(commits)
    } as const
  })
}) {
  /** Was `Outbox.Default`; needs SqlClient. One instance per layer build: the relay hears the commits of this process. */
  static readonly layer = Layer.effect(this, this.make)
}
