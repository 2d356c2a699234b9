import { Data, Duration, Effect, Exit, Metric, Random, Result } from "effect"
import { type IncomingEnvelope, parseEnvelope } from "../domain/ConsumedEvents.js"
import { wellFormedCorrelationId } from "../domain/Ids.js"
import type { LoopControl } from "../layers/BackgroundLoop.js"
import { AppConfig } from "../layers/Config.js"
import { consumeSpan, type Delivery, Messaging } from "../layers/Messaging.js"
import { CurrentRequest } from "../services/RequestContext.js"
import { Transactions } from "../services/Transactions.js"
import { Inbox } from "./Inbox.js"
import { classifyCause, retryDelay } from "./Failure.js"
import { consumerRetries, eventsConsumed, messagesDeadLettered } from "./Metrics.js"

/**
 * `applied`: done (possibly a no-op by the rules); `ignored`: an event type this queue does not act on;
 * `refused`: the rules say no (e.g. shipping a released reservation), acknowledged and logged.
 */
export type Outcome = "applied" | "ignored" | "refused"

/** A message that can never succeed (bad data): dead-lettered at once, without retries. */
export class Unprocessable extends Data.TaggedError("Unprocessable")<{ readonly reason: string }> {}

export interface EventHandler<R> {
  /** Recorded in the inbox; also the span and log name. */
  readonly name: string
  readonly queue: string
  /** Runs inside the transaction that records the message id in the inbox. */
  readonly handle: (envelope: IncomingEnvelope) => Effect.Effect<Outcome, { readonly _tag: string; readonly message: string }, R>
}

const stringHeaders = (headers: Readonly<Record<string, unknown>>) =>
  Object.fromEntries(Object.entries(headers).flatMap(([k, v]) => (typeof v === "string" ? [[k, v]] : [])))

/**
 * Consumes one queue: parse → (inbox + effect in one transaction) → ack after commit. What can never
 * succeed (unparseable, schema-invalid, refused by the domain, a data exception) goes to the
 * dead-letter queue at once with its reason. A transient failure (database away, timeouts, contention)
 * keeps the message unacknowledged and is retried without limit with capped backoff: the worker takes
 * nothing new meanwhile, so later messages wait on the broker. Unknown failures (defects included) are
 * dead-lettered after AMQP_CONSUMER_MAX_ATTEMPTS, so a bug in one message never stops the consumer.
 */
export const runConsumer = <R>(handler: EventHandler<R>) =>
  Effect.gen(function* () {
    const messaging = yield* Messaging
    const transactions = yield* Transactions
    const inbox = yield* Inbox
    const config = yield* AppConfig
    const deadLetter = (delivery: Delivery, eventType: string, reason: string, attempts: number) =>
      Effect.gen(function* () {
        yield* delivery.deadLetter(reason, attempts)
        yield* Metric.update(Metric.withAttributes(messagesDeadLettered, { queue: handler.queue }), 1)
        yield* Metric.update(Metric.withAttributes(eventsConsumed, { event_type: eventType, outcome: "dead_lettered" }), 1)
        yield* Effect.logError("consumer: message dead-lettered").pipe(Effect.annotateLogs({ reason, attempts }))
      })

    const process = (delivery: Delivery, envelope: IncomingEnvelope, loop: LoopControl) =>
      Effect.gen(function* () {
        const messageId = delivery.messageId ?? envelope.eventId
        const once = transactions.run(
          Effect.gen(function* () {
            const first = yield* inbox.record(messageId, handler.name, envelope.eventType)
            if (!first) return "duplicate" as const
            return yield* handler.handle(envelope)
          })
        )
        let unknownFailures = 0
        for (let attempt = 1; ; attempt++) {
          const exit = yield* Effect.exit(once)
          if (Exit.isSuccess(exit)) {
            yield* delivery.ack
            yield* Metric.update(Metric.withAttributes(eventsConsumed, { event_type: envelope.eventType, outcome: exit.value }), 1)
            yield* Effect.logInfo("consumer: message processed").pipe(Effect.annotateLogs({ outcome: exit.value, attempts: attempt }))
            return
          }
          const failure = classifyCause(exit.cause)
          if (failure.kind === "unknown") unknownFailures++
          if (failure.kind === "unprocessable" || unknownFailures >= config.amqpConsumerMaxAttempts) {
            return yield* deadLetter(delivery, envelope.eventType, failure.reason, attempt)
          }
          const delay = retryDelay(attempt, yield* Random.next)
          yield* Metric.update(Metric.withAttributes(consumerRetries, { queue: handler.queue, kind: failure.kind }), 1)
          yield* Effect.logWarning(
            failure.kind === "transient" ? "consumer: database unavailable, message kept for retry" : "consumer: attempt failed, retrying"
          ).pipe(Effect.annotateLogs({ reason: failure.reason, attempt, retryInMs: Duration.toMillis(delay) }))
          // The handler runs uninterruptibly; only this wait may be cut short by shutdown, leaving the
          // message unacknowledged for the broker to redeliver. Waiting out an outage is not a stall
          // (liveness must not restart the pod for a database that is away).
          yield* Effect.interruptible(loop.idle(Effect.sleep(delay)))
        }
      })

    const onDelivery = (delivery: Delivery, loop: LoopControl): Effect.Effect<void, never, R> => {
      const parsed = parseEnvelope(delivery.content.toString("utf8"))
      const base = { consumer: handler.name, queue: handler.queue, messageId: delivery.messageId ?? null }
      if (Result.isFailure(parsed)) {
        return deadLetter(delivery, delivery.type ?? "unknown", `unparseable: ${parsed.failure}`, 0).pipe(Effect.annotateLogs(base))
      }
      const envelope = parsed.success
      const headers = stringHeaders(delivery.headers)
      const correlationId = envelope.correlationId ?? wellFormedCorrelationId(headers["x-correlation-id"]) ?? envelope.eventId
      // Continues the trace of the transaction that wrote the event (its traceparent header).
      const traced = Effect.withSpan(process(delivery, envelope, loop), ...consumeSpan(delivery, envelope.eventType))
      return traced.pipe(
        Effect.provideService(CurrentRequest, { correlationId, actor: `consumer:${handler.name}` }),
        Effect.annotateLogs({ ...base, eventType: envelope.eventType, correlationId, redelivered: delivery.redelivered })
      )
    }

    const context = yield* Effect.context<R>()
    yield* messaging.consume(handler.queue, (delivery, loop) => Effect.provide(onDelivery(delivery, loop), context))
  })
