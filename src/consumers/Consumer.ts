import { Cause, Data, Duration, Effect, Either, Metric, Option, Ref, Schedule } from "effect"
import { type IncomingEnvelope, parseEnvelope } from "../domain/ConsumedEvents.js"
import { wellFormedCorrelationId } from "../domain/Ids.js"
import { AppConfig } from "../layers/Config.js"
import { consumeSpan, type Delivery, Messaging } from "../layers/Messaging.js"
import { CurrentRequest } from "../services/RequestContext.js"
import { Transactions } from "../services/Transactions.js"
import { Inbox } from "./Inbox.js"
import { eventsConsumed, messagesDeadLettered } from "./Metrics.js"

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

const firstLine = (text: string) => text.split("\n")[0]!.slice(0, 500)

/** `Tag: message (cause)`: a SqlError's own message is generic, its cause says what happened. */
const describeFailure = (error: { readonly _tag: string; readonly message: string; readonly cause?: unknown }) => {
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : ""
  return firstLine(`${error._tag}: ${error.message}${cause}`)
}

/**
 * Consumes one queue: parse → (inbox + effect in one transaction) → ack after commit. Failures are
 * retried with backoff, AMQP_CONSUMER_MAX_ATTEMPTS times in all; what cannot be parsed or keeps
 * failing goes to the dead-letter queue with its reason. Defects count as failures, so a bug in one
 * message never stops the consumer.
 */
export const runConsumer = <R>(handler: EventHandler<R>) =>
  Effect.gen(function* () {
    const messaging = yield* Messaging
    const transactions = yield* Transactions
    const inbox = yield* Inbox
    const config = yield* AppConfig
    const retry = Schedule.exponential(Duration.millis(200), 2).pipe(
      Schedule.jittered,
      Schedule.union(Schedule.spaced(Duration.seconds(5))),
      Schedule.intersect(Schedule.recurs(config.amqpConsumerMaxAttempts - 1))
    )

    const deadLetter = (delivery: Delivery, eventType: string, reason: string, attempts: number) =>
      Effect.gen(function* () {
        yield* delivery.deadLetter(reason, attempts)
        yield* Metric.increment(Metric.tagged(messagesDeadLettered, "queue", handler.queue))
        yield* Metric.increment(Metric.tagged(Metric.tagged(eventsConsumed, "event_type", eventType), "outcome", "dead_lettered"))
        yield* Effect.logError("consumer: message dead-lettered").pipe(Effect.annotateLogs({ reason, attempts }))
      })

    const process = (delivery: Delivery, envelope: IncomingEnvelope) =>
      Effect.gen(function* () {
        const messageId = delivery.messageId ?? envelope.eventId
        const attempts = yield* Ref.make(0)
        const once = Effect.gen(function* () {
          yield* Ref.update(attempts, (n) => n + 1)
          return yield* transactions.run(
            Effect.gen(function* () {
              const first = yield* inbox.record(messageId, handler.name, envelope.eventType)
              if (!first) return "duplicate" as const
              return yield* handler.handle(envelope)
            })
          )
        })
        const result = yield* once.pipe(
          Effect.sandbox,
          Effect.retry({
            schedule: retry,
            while: (cause) => !Cause.failureOption(cause).pipe(Option.exists((e) => e._tag === "Unprocessable"))
          }),
          Effect.either
        )
        if (Either.isRight(result)) {
          yield* delivery.ack
          yield* Metric.increment(Metric.tagged(Metric.tagged(eventsConsumed, "event_type", envelope.eventType), "outcome", result.right))
          yield* Effect.logInfo("consumer: message processed").pipe(Effect.annotateLogs("outcome", result.right))
          return
        }
        const failure = Cause.failureOption(result.left)
        const reason = Option.match(failure, {
          onSome: (e) => (e._tag === "Unprocessable" ? (e as Unprocessable).reason : describeFailure(e)),
          onNone: () => `defect: ${firstLine(Cause.pretty(result.left))}`
        })
        yield* deadLetter(delivery, envelope.eventType, reason, yield* Ref.get(attempts))
      })

    const onDelivery = (delivery: Delivery): Effect.Effect<void, never, R> => {
      const parsed = parseEnvelope(delivery.content.toString("utf8"))
      const base = { consumer: handler.name, queue: handler.queue, messageId: delivery.messageId ?? null }
      if (Either.isLeft(parsed)) {
        return deadLetter(delivery, delivery.type ?? "unknown", `unparseable: ${parsed.left}`, 0).pipe(Effect.annotateLogs(base))
      }
      const envelope = parsed.right
      const headers = stringHeaders(delivery.headers)
      const correlationId = envelope.correlationId ?? wellFormedCorrelationId(headers["x-correlation-id"]) ?? envelope.eventId
      // Continues the trace of the transaction that wrote the event (its traceparent header).
      const traced = Effect.withSpan(process(delivery, envelope), ...consumeSpan(delivery, envelope.eventType))
      return traced.pipe(
        Effect.locally(CurrentRequest, { correlationId, actor: `consumer:${handler.name}` }),
        Effect.annotateLogs({ ...base, eventType: envelope.eventType, correlationId, redelivered: delivery.redelivered })
      )
    }

    const context = yield* Effect.context<R>()
    yield* messaging.consume(handler.queue, (delivery) => Effect.provide(onDelivery(delivery), context))
  })
