import amqp, { type ConfirmChannel, type GetMessage } from "amqplib"
import { Data, Duration, Effect, Redacted, type Scope } from "effect"
import { hostname } from "node:os"
import { APP_ID, Topology } from "./Messaging.js"

/** The broker could not be reached or refused an operation on the dead-letter queue. */
export class DeadLetterQueueError extends Data.TaggedError("DeadLetterQueueError")<{ readonly message: string }> {}

/** One message in `inventory.dead-letter`, as an operator needs to see it. */
export interface DeadLetter {
  readonly messageId: string | null
  readonly type: string | null
  readonly routingKey: string
  /** The queue it was consumed from: our `x-original-queue`, else the broker's `x-death` record. */
  readonly originalQueue: string | null
  readonly reason: string | null
  readonly attempts: number | null
  readonly correlationId: string | null
  readonly bytes: number
}

/** Headers the dead-lettering added; a replay removes them so the consumer gets the message as first sent. */
const DEAD_LETTER_HEADERS = ["x-dead-letter-reason", "x-original-queue", "x-original-exchange", "x-original-routing-key", "x-attempts", "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"]

const text = (value: unknown): string | null => (value === undefined || value === null ? null : String(value))

const describe = (message: GetMessage): DeadLetter => {
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>
  const deaths = headers["x-death"]
  const death = Array.isArray(deaths) ? (deaths[0] as Record<string, unknown> | undefined) : undefined
  const attempts = Number(headers["x-attempts"])
  return {
    messageId: text(message.properties.messageId),
    type: text(message.properties.type),
    routingKey: text(headers["x-original-routing-key"]) ?? message.fields.routingKey,
    originalQueue: text(headers["x-original-queue"]) ?? text(death?.["queue"]),
    reason: text(headers["x-dead-letter-reason"]) ?? text(death?.["reason"]),
    attempts: Number.isFinite(attempts) ? attempts : null,
    correlationId: text(headers["x-correlation-id"]),
    bytes: message.content.length
  }
}

const attempt = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (e) => new DeadLetterQueueError({ message: `${what}: ${e instanceof Error ? e.message : String(e)}` }) })

/**
 * The dead-letter queue for the admin CLI: a short-lived connection of its own with a confirm
 * channel (a replay is acked off the dead-letter queue only after the broker confirmed the copy).
 * Messages taken but not settled go back to the queue when the channel closes, so a listing or a
 * dry run leaves the queue as it was.
 */
export const openDeadLetters = (url: Redacted.Redacted): Effect.Effect<DeadLettersShape, DeadLetterQueueError, Scope.Scope> =>
  Effect.gen(function* () {
    const connection = yield* Effect.acquireRelease(
      attempt("cannot connect to the broker", () =>
        amqp.connect(Redacted.value(url), { timeout: 5_000, clientProperties: { connection_name: `${APP_ID}-admin@${hostname()}:${process.pid}` } })
      ),
      (c) => Effect.promise(() => c.close().catch(() => undefined)).pipe(Effect.timeout(Duration.seconds(2)), Effect.ignore)
    )
    // Closed before the connection: the channel's close handshake is what makes the broker process
    // the acks sent on it; closing only the connection right after an ack lost it (the replayed
    // message then stayed in the dead-letter queue as well).
    const channel: ConfirmChannel = yield* Effect.acquireRelease(
      attempt("cannot open a channel", () => connection.createConfirmChannel()),
      (c) => Effect.promise(() => c.close().catch(() => undefined)).pipe(Effect.timeout(Duration.seconds(2)), Effect.ignore)
    )
    const depth = attempt(`cannot inspect ${Topology.deadLetterQueue}`, () => channel.checkQueue(Topology.deadLetterQueue)).pipe(
      Effect.map((q) => q.messageCount)
    )

    /** Takes (without settling) up to `limit` messages, at most as many as were queued at the start. */
    const take = (limit: number) =>
      Effect.gen(function* () {
        const bound = Math.min(limit, yield* depth)
        const taken: Array<GetMessage> = []
        while (taken.length < bound) {
          const message = yield* attempt("cannot read the dead-letter queue", () => channel.get(Topology.deadLetterQueue, { noAck: false }))
          if (message === false) break
          taken.push(message)
        }
        return taken
      })

    const list = (limit: number) => Effect.map(take(limit), (messages) => messages.map(describe))

    const replay = (options: { readonly type: string | null; readonly limit: number; readonly apply: boolean }) =>
      Effect.gen(function* () {
        const replayed: Array<DeadLetter> = []
        const skipped: Array<DeadLetter & { readonly why: string }> = []
        for (const message of yield* take(Number.MAX_SAFE_INTEGER)) {
          const letter = describe(message)
          if (replayed.length >= options.limit) break
          if (options.type !== null && letter.type !== options.type) continue
          if (letter.originalQueue === null) {
            skipped.push({ ...letter, why: "no original queue in its headers" })
            continue
          }
          if (options.apply) {
            const headers = { ...((message.properties.headers ?? {}) as Record<string, unknown>) }
            for (const name of DEAD_LETTER_HEADERS) delete headers[name]
            // Same messageId, type and headers as first delivered: the consumer's inbox de-duplicates
            // a message that had in fact been handled.
            channel.sendToQueue(letter.originalQueue, message.content, {
              persistent: true,
              messageId: message.properties.messageId,
              type: message.properties.type,
              contentType: message.properties.contentType ?? "application/json",
              timestamp: message.properties.timestamp,
              appId: message.properties.appId,
              correlationId: message.properties.correlationId,
              headers
            })
            yield* attempt("the broker did not confirm a replayed message", () => channel.waitForConfirms())
            channel.ack(message)
          }
          replayed.push(letter)
        }
        return { replayed, skipped }
      })

    const purge = (apply: boolean) =>
      apply
        ? attempt(`cannot purge ${Topology.deadLetterQueue}`, () => channel.purgeQueue(Topology.deadLetterQueue)).pipe(Effect.map((r) => r.messageCount))
        : depth

    return { depth, list, replay, purge }
  })

export interface DeadLettersShape {
  readonly depth: Effect.Effect<number, DeadLetterQueueError>
  readonly list: (limit: number) => Effect.Effect<ReadonlyArray<DeadLetter>, DeadLetterQueueError>
  readonly replay: (options: { readonly type: string | null; readonly limit: number; readonly apply: boolean }) => Effect.Effect<
    { readonly replayed: ReadonlyArray<DeadLetter>; readonly skipped: ReadonlyArray<DeadLetter & { readonly why: string }> },
    DeadLetterQueueError
  >
  /** How many messages were (or, in a dry run, would be) purged. */
  readonly purge: (apply: boolean) => Effect.Effect<number, DeadLetterQueueError>
}
