import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options } from "amqplib"
import { Clock, Context, Data, Deferred, Duration, Effect, Exit, Layer, Option, Queue, Redacted, Ref, Result, Schedule, Scope, Stream, SubscriptionRef, type Tracer } from "effect"
import { Headers, HttpTraceContext } from "effect/http"
import { hostname } from "node:os"
import { AppConfig, type AppConfigShape } from "./Config.js"
import { exportsTraces } from "./Telemetry.js"
import { type LoopControl, runBackgroundLoop } from "./BackgroundLoop.js"
import { Lifecycle } from "./Lifecycle.js"

/** The broker objects of EVENTS.md. The peers' exchanges are configurable (ORDER_/PRODUCT_EVENTS_EXCHANGE). */
export const Topology = {
  eventsExchange: "inventory.events",
  /** Alternate exchange of `inventory.events`: events no queue is bound for are kept, not dropped. */
  unroutedExchange: "inventory.unrouted",
  unroutedQueue: "inventory.unrouted",
  deadLetterExchange: "inventory.dlx",
  deadLetterQueue: "inventory.dead-letter",
  orderQueue: "inventory-service.order-events",
  productQueue: "inventory-service.product-events"
} as const

export const APP_ID = "inventory-service"

/** One message to publish; `publish` resolves once the broker has confirmed it. */
export interface OutgoingMessage {
  readonly exchange: string
  readonly routingKey: string
  readonly body: string
  readonly messageId: string
  readonly type: string
  /** Seconds since the epoch (the AMQP `timestamp` property). */
  readonly timestamp: number
  readonly headers: Readonly<Record<string, string>>
}

/**
 * `unavailable`: no connection, or it dropped before the confirm (the row is simply tried again once
 * the broker is back; not the message's fault). `refused`: the broker nacked or returned it.
 */
export class PublishFailed extends Data.TaggedError("PublishFailed")<{
  /** `timeout`: no confirm in time, the broker may or may not have the message (the relay counts it like a refusal). */
  readonly reason: "unavailable" | "refused" | "timeout"
  readonly message: string
}> {}

/** A message taken from one of our queues; settle it with `ack` or `deadLetter` exactly once. */
export interface Delivery {
  readonly queue: string
  readonly content: Buffer
  readonly messageId: string | undefined
  readonly type: string | undefined
  readonly headers: Readonly<Record<string, unknown>>
  readonly routingKey: string
  readonly redelivered: boolean
  readonly ack: Effect.Effect<void>
  /** Moves the message to `inventory.dead-letter` with the reason in its headers, then acks it. */
  readonly deadLetter: (reason: string, attempts: number) => Effect.Effect<void>
}

export type BrokerStatus =
  | { readonly status: "up" }
  | { readonly status: "down"; readonly detail: string }
  | { readonly status: "disabled"; readonly detail: string }

export interface MessagingShape {
  readonly kind: "amqp" | "log"
  readonly status: Effect.Effect<BrokerStatus>
  /** Returns when a broker connection is open (at once for the log publisher). */
  readonly awaitConnected: Effect.Effect<void>
  readonly publish: (message: OutgoingMessage) => Effect.Effect<void, PublishFailed>
  /** Publishes in order, pipelined (one broker round trip for all); one outcome per message, in order. */
  readonly publishAll: (messages: ReadonlyArray<OutgoingMessage>) => Effect.Effect<ReadonlyArray<Result.Result<void, PublishFailed>>>
  /**
   * Consumes `queue` (declared with the topology) on every connection, one message at a time per
   * queue; each handler run is uninterruptible. Closing the scope cancels the consumer and waits for
   * the message in hand.
   */
  /** `handle` gets the worker loop's control: a wait it runs through `idle` (a retry's backoff) is never a stall. */
  readonly consume: (queue: string, handle: (delivery: Delivery, loop: LoopControl) => Effect.Effect<void>) => Effect.Effect<void, never, Scope.Scope>
}

/** The trace a message belongs to: the W3C `traceparent` (and `tracestate`) in its headers. */
const parentOf = (headers: Readonly<Record<string, unknown>>) =>
  HttpTraceContext.fromHeaders(
    Headers.fromInput(Object.fromEntries(Object.entries(headers).flatMap(([k, v]) => (typeof v === "string" ? [[k, v]] : []))))
  )

/**
 * The producer span of one published message (OpenTelemetry messaging conventions), a child of the
 * transaction that wrote the event (its stored `traceparent`); without one, of the current span.
 */
export const publishSpan = (message: OutgoingMessage, system: "rabbitmq" | "log") =>
  [
    `publish ${message.type}`,
    {
      kind: "producer",
      attributes: {
        "messaging.system": system,
        // Semantic conventions 1.28+: `operation.type` is the generic kind, `operation.name` the system's verb.
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": message.exchange,
        "messaging.rabbitmq.destination.routing_key": message.routingKey,
        "messaging.message.id": message.messageId
      },
      ...Option.match(parentOf(message.headers), { onNone: () => ({}), onSome: (parent) => ({ parent }) })
    }
  ] as const satisfies readonly [string, Tracer.SpanOptions]

/** The consumer span of one delivery, continuing the producer's trace when the message carries one. */
export const consumeSpan = (delivery: Delivery, eventType: string) =>
  [
    `consume ${eventType}`,
    {
      kind: "consumer",
      attributes: {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": delivery.queue,
        "messaging.rabbitmq.destination.routing_key": delivery.routingKey,
        ...(delivery.messageId === undefined ? {} : { "messaging.message.id": delivery.messageId })
      },
      ...Option.match(parentOf(delivery.headers), { onNone: () => ({}), onSome: (parent) => ({ parent }) })
    }
  ] as const satisfies readonly [string, Tracer.SpanOptions]

/** Declares everything of EVENTS.md; idempotent, run on every (re)connection. */
const declareTopology = async (channel: Channel, config: AppConfigShape) => {
  await channel.assertExchange(Topology.unroutedExchange, "fanout", { durable: true })
  await channel.assertQueue(Topology.unroutedQueue, { durable: true })
  await channel.bindQueue(Topology.unroutedQueue, Topology.unroutedExchange, "")
  await channel.assertExchange(Topology.eventsExchange, "topic", {
    durable: true,
    alternateExchange: Topology.unroutedExchange
  })
  await channel.assertExchange(Topology.deadLetterExchange, "topic", { durable: true })
  await channel.assertQueue(Topology.deadLetterQueue, { durable: true })
  await channel.bindQueue(Topology.deadLetterQueue, Topology.deadLetterExchange, "#")
  // The peers own their exchanges; asserting them (topic, durable) lets us bind before they start.
  await channel.assertExchange(config.orderEventsExchange, "topic", { durable: true })
  await channel.assertExchange(config.productEventsExchange, "topic", { durable: true })
  const queueOptions: Options.AssertQueue = { durable: true, deadLetterExchange: Topology.deadLetterExchange }
  await channel.assertQueue(Topology.orderQueue, queueOptions)
  await channel.bindQueue(Topology.orderQueue, config.orderEventsExchange, "order.cancelled")
  await channel.bindQueue(Topology.orderQueue, config.orderEventsExchange, "order.shipped")
  await channel.assertQueue(Topology.productQueue, queueOptions)
  await channel.bindQueue(Topology.productQueue, config.productEventsExchange, "product.variant_created")
}

/** One open connection with its confirm channel (publishing) and consumer channel. */
interface Session {
  readonly connection: ChannelModel
  readonly publisher: ConfirmChannel
  readonly consumer: Channel
  /** Message ids the broker returned as unroutable; their ack then counts as a failure. */
  readonly returned: Set<string>
  /** Set while the publisher's buffer is full (publish returned false); publishes wait for `drain`. */
  readonly gate: { drained: Deferred.Deferred<void> | undefined }
  readonly closed: Deferred.Deferred<void>
}

type ConnectionState = { readonly _tag: "Connected"; readonly session: Session } | { readonly _tag: "Down"; readonly reason: string }

interface Subscription {
  readonly queue: string
  readonly mailbox: Queue.Queue<Delivery>
}

const errorText = (u: unknown) => (u instanceof Error ? u.message : String(u))

/** Reconnection: 200 ms doubling with jitter, at most 10 s apart, forever (`min` = Effect 3's `union`: the shorter delay). */
const reconnectSchedule = Schedule.min([
  Schedule.exponential(Duration.millis(200), 2).pipe(Schedule.jittered),
  Schedule.spaced(Duration.seconds(10))
])

const CONFIRM_TIMEOUT = Duration.seconds(15)
const CLOSE_TIMEOUT = Duration.seconds(2)

const closeQuietly = (label: string, close: () => Promise<void>) =>
  Effect.tryPromise(close).pipe(
    Effect.timeout(CLOSE_TIMEOUT),
    Effect.catch((error) => Effect.logDebug(`broker: closing ${label}`, errorText(error)))
  )

/** The AMQP properties of every event we publish (EVENTS.md): persistent, mandatory, ids and trace. */
export const publishOptions = (message: OutgoingMessage): Options.Publish => ({
  persistent: true,
  mandatory: true,
  messageId: message.messageId,
  type: message.type,
  contentType: "application/json",
  contentEncoding: "utf-8",
  timestamp: message.timestamp,
  appId: APP_ID,
  headers: message.headers
})

/** What `coalesceWrites` needs of amqplib's internal connection (2.x: `Connection#muxer`, `Mux#out`). */
interface MuxInternals {
  readonly muxer?: { _readIncoming?: () => void; readonly out?: { cork?: () => void; uncork?: () => void } }
}

/**
 * amqplib's muxer writes every frame chunk to the socket on its own (one `write` syscall per
 * published message: with TCP_NODELAY, one packet each); it runs once per event-loop turn over all
 * that its channels have queued. Corking the socket for that run sends a relay batch's messages in
 * one `writev` per 16 KiB (the socket's high-water mark) instead. Same bytes, same order. Reaches into
 * amqplib's internals (pinned in package-lock.json); if they are not there, writes stay as they were.
 */
export const coalesceWrites = (connection: ChannelModel): boolean => {
  const muxer = (connection.connection as unknown as MuxInternals).muxer
  const readIncoming = muxer?._readIncoming
  const out = muxer?.out
  const cork = out?.cork?.bind(out)
  const uncork = out?.uncork?.bind(out)
  if (muxer === undefined || readIncoming === undefined || cork === undefined || uncork === undefined) return false
  muxer._readIncoming = function (this: unknown) {
    cork()
    try {
      readIncoming.call(this)
    } finally {
      uncork()
    }
  }
  return true
}

/** amqplib's connect, made interruptible: a connection that opens after interruption is closed. */
const openConnection = (url: string) =>
  Effect.callback<ChannelModel, Error>((resume) => {
    let cancelled = false
    // Heartbeats find a silently dead TCP connection within ~20 s; a URL may set its own.
    const target = new URL(url)
    if (!target.searchParams.has("heartbeat")) target.searchParams.set("heartbeat", "10")
    amqp
      .connect(target.toString(), {
        noDelay: true,
        timeout: 5_000,
        clientProperties: { connection_name: `${APP_ID}@${hostname()}:${process.pid}` }
      })
      .then(
        (connection) => {
          if (cancelled) connection.close().catch(() => undefined)
          else resume(Effect.succeed(connection))
        },
        (error: unknown) => resume(Effect.fail(error instanceof Error ? error : new Error(String(error))))
      )
    return Effect.sync(() => {
      cancelled = true
    })
  })

const amqpMessaging = (url: string, config: AppConfigShape) =>
  Effect.gen(function* () {
    const traced = exportsTraces(config)
    // amqplib's event callbacks run their log lines with the services (logger, annotations) of this layer.
    const context = yield* Effect.context<never>()
    const runFork = Effect.runForkWith(context)
    const lifecycle = yield* Lifecycle
    const state = yield* SubscriptionRef.make<ConnectionState>({ _tag: "Down", reason: "connecting" })
    const subscriptions = yield* Ref.make<ReadonlyArray<Subscription>>([])
    /** Consumer tags of the current session, by queue, so a consumer can be cancelled at shutdown. */
    const consumerTags = yield* Ref.make<ReadonlyMap<string, { readonly channel: Channel; readonly tag: string }>>(new Map())

    /**
     * Writes one message on the confirm channel now (synchronously, so call order is wire order) and
     * returns what settles with the broker's confirm: ack and no basic.return, or a failure.
     */
    const send = (session: Session, message: OutgoingMessage) => {
      const confirm = Deferred.makeUnsafe<void, PublishFailed>()
      const settle = (exit: Exit.Exit<void, PublishFailed>) => {
        clearTimeout(timer)
        Deferred.doneUnsafe(confirm, exit)
      }
      const fail = (reason: PublishFailed["reason"], text: string) => settle(Exit.fail(new PublishFailed({ reason, message: text })))
      // A plain timer, not Effect.timeout: this runs for every event and must stay cheap.
      const timer = setTimeout(() => fail("timeout", "no confirm from the broker in time"), Duration.toMillis(CONFIRM_TIMEOUT))
      try {
        const ok = session.publisher.publish(
          message.exchange,
          message.routingKey,
          Buffer.from(message.body, "utf8"),
          publishOptions(message),
          (error: unknown) => {
            // basic.return arrives before the ack of the same message, so the set is current here.
            const returned = session.returned.delete(message.messageId)
            if (error) {
              const text = errorText(error)
              fail(text === "channel closed" ? "unavailable" : "refused", text)
            } else if (returned) {
              fail("refused", "returned by the broker as unroutable")
            } else {
              settle(Exit.void)
            }
          }
        )
        if (!ok && session.gate.drained === undefined) session.gate.drained = Deferred.makeUnsafe<void>()
      } catch (error) {
        fail("unavailable", errorText(error))
      }
      return confirm
    }

    /**
     * Publishes in the given order, pipelined: every message is written before the first confirm is
     * awaited, so one broker round trip serves the whole batch. One outcome per message, in order.
     */
    const publishAll = (messages: ReadonlyArray<OutgoingMessage>) =>
      Effect.gen(function* () {
        const current = yield* SubscriptionRef.get(state)
        if (current._tag !== "Connected") {
          const down = new PublishFailed({ reason: "unavailable", message: `broker unavailable: ${current.reason}` })
          return messages.map(() => Result.fail(down))
        }
        const { session } = current
        const inFlight: Array<{ readonly span: Tracer.Span | undefined; readonly confirm: Deferred.Deferred<void, PublishFailed> }> = []
        let blocked = false
        for (const message of messages) {
          // Back-pressure: wait for `drain` while amqplib's buffer is full instead of piling up; a
          // broker that neither drains nor closes (a blocked connection) fails the rest after a while.
          const drained = session.gate.drained
          if (drained !== undefined && !blocked) {
            const freed = yield* Effect.raceFirst(Deferred.await(drained), Deferred.await(session.closed)).pipe(
              Effect.timeout(CONFIRM_TIMEOUT),
              Effect.option
            )
            blocked = Option.isNone(freed)
          }
          if (blocked) {
            const failed = yield* Deferred.make<void, PublishFailed>()
            yield* Deferred.fail(failed, new PublishFailed({ reason: "unavailable", message: "the broker took no more messages in time" }))
            inFlight.push({ span: traced ? yield* Effect.makeSpan(...publishSpan(message, "rabbitmq")) : undefined, confirm: failed })
            continue
          }
          // One span per message from the write to its confirm (a span per batch would hide the trace);
          // none when no tracer exports them (nobody could see it, and it costs on every event). The
          // message's traceparent header is the stored one either way.
          const span = traced ? yield* Effect.makeSpan(...publishSpan(message, "rabbitmq")) : undefined
          inFlight.push({ span, confirm: send(session, message) })
        }
        return yield* Effect.forEach(inFlight, ({ confirm, span }) =>
          span === undefined
            ? Effect.result(Deferred.await(confirm))
            : Deferred.await(confirm).pipe(
              Effect.onExit((exit) => Effect.flatMap(Clock.currentTimeNanos, (now) => Effect.sync(() => span.end(now, exit)))),
              Effect.result
            )
        )
      })

    const publish = (message: OutgoingMessage) =>
      Effect.flatMap(publishAll([message]), ([outcome]) => (Result.isFailure(outcome!) ? Effect.fail(outcome.failure) : Effect.void))

    const toDelivery = (session: Session, queue: string, msg: ConsumeMessage): Delivery => {
      const ack = Effect.try(() => session.consumer.ack(msg)).pipe(
        // The channel is gone: the broker redelivers the message and the inbox makes that harmless.
        Effect.catch((error) => Effect.logWarning("broker: ack failed, the message will be redelivered", errorText(error)))
      )
      const headers = (msg.properties.headers ?? {}) as Record<string, unknown>
      return {
        queue,
        content: msg.content,
        messageId: msg.properties.messageId as string | undefined,
        type: msg.properties.type as string | undefined,
        headers,
        routingKey: msg.fields.routingKey,
        redelivered: msg.fields.redelivered,
        ack,
        deadLetter: (reason, attempts) =>
          publish({
            exchange: Topology.deadLetterExchange,
            routingKey: msg.fields.routingKey,
            body: msg.content.toString("utf8"),
            messageId: (msg.properties.messageId as string | undefined) ?? "",
            type: (msg.properties.type as string | undefined) ?? "",
            timestamp: Math.floor(Date.now() / 1000),
            headers: {
              ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)])),
              "x-dead-letter-reason": reason,
              "x-original-queue": queue,
              "x-original-exchange": msg.fields.exchange,
              "x-original-routing-key": msg.fields.routingKey,
              "x-attempts": String(attempts)
            }
          }).pipe(
            Effect.andThen(ack),
            // Without the dead-letter exchange, reject: the queue's own DLX keeps the message (without our reason).
            Effect.catch((error) =>
              Effect.logWarning("broker: dead-lettering by publish failed, rejecting instead", error.message).pipe(
                Effect.andThen(Effect.try(() => session.consumer.nack(msg, false, false)).pipe(Effect.ignore))
              )
            )
          )
      }
    }

    const startConsumer = (session: Session, subscription: Subscription) =>
      Effect.tryPromise(() =>
        session.consumer.consume(subscription.queue, (msg) => {
          if (msg === null) {
            runFork(Effect.logWarning("broker: consumer cancelled by the broker").pipe(Effect.annotateLogs("queue", subscription.queue)))
            return
          }
          Queue.offerUnsafe(subscription.mailbox, toDelivery(session, subscription.queue, msg))
        })
      ).pipe(
        Effect.flatMap(({ consumerTag }) =>
          Ref.update(consumerTags, (tags) => new Map(tags).set(subscription.queue, { channel: session.consumer, tag: consumerTag }))
        )
      )

    /** Opens a connection, its channels and the topology; the scope closes them in order. */
    const acquireSession = Effect.gen(function* () {
      const connection = yield* Effect.acquireRelease(openConnection(url), (connection) =>
        closeQuietly("connection", () => connection.close())
      )
      const closed = yield* Deferred.make<void>()
      const markClosed = () => Deferred.doneUnsafe(closed, Exit.void)
      connection.on("error", (error: Error) => runFork(Effect.logWarning("broker: connection error", error.message)))
      connection.on("close", markClosed)
      connection.on("blocked", (reason: string) => runFork(Effect.logWarning("broker: connection blocked", reason)))
      if (!coalesceWrites(connection)) yield* Effect.logDebug("broker: amqplib internals changed; each message is its own socket write")
      const publisher = yield* Effect.acquireRelease(
        Effect.tryPromise(() => connection.createConfirmChannel()),
        (channel) => closeQuietly("publisher channel", () => channel.close())
      )
      const consumer = yield* Effect.acquireRelease(
        Effect.tryPromise(() => connection.createChannel()),
        (channel) => closeQuietly("consumer channel", () => channel.close())
      )
      const session: Session = { connection, publisher, consumer, returned: new Set(), gate: { drained: undefined }, closed }
      for (const channel of [publisher, consumer]) {
        channel.on("error", (error: Error) => runFork(Effect.logWarning("broker: channel error", error.message)))
        channel.on("close", markClosed)
      }
      publisher.on("return", (msg: ConsumeMessage) => {
        const id = msg.properties.messageId as string | undefined
        if (id !== undefined) session.returned.add(id)
      })
      publisher.on("drain", () => {
        const drained = session.gate.drained
        session.gate.drained = undefined
        if (drained !== undefined) Deferred.doneUnsafe(drained, Exit.void)
      })
      yield* Effect.tryPromise(() => declareTopology(publisher, config))
      yield* Effect.tryPromise(() => consumer.prefetch(config.amqpPrefetch))
      return session
    })

    /** One broker session: connect (retrying), consume, wait for the connection to go, clean up. */
    const sessionOnce = (loop: LoopControl) =>
      Effect.gen(function* () {
        yield* Effect.scoped(
          Effect.gen(function* () {
            // Waiting for the broker (each attempt bounded by the connect timeout) is not a stall.
            const session = yield* loop.idle(acquireSession.pipe(
              Effect.tapError((error) =>
                Effect.andThen(
                  SubscriptionRef.set(state, { _tag: "Down", reason: errorText(error.cause ?? error) }),
                  Effect.logWarning("broker: cannot connect, retrying", errorText(error.cause ?? error))
                )
              ),
              Effect.retry(reconnectSchedule)
            ))
            for (const subscription of yield* Ref.get(subscriptions)) yield* startConsumer(session, subscription)
            yield* SubscriptionRef.set(state, { _tag: "Connected", session })
            yield* Effect.logInfo("broker: connected").pipe(Effect.annotateLogs("prefetch", config.amqpPrefetch))
            yield* loop.idle(Deferred.await(session.closed))
            yield* SubscriptionRef.set(state, { _tag: "Down", reason: "connection lost, reconnecting" })
            yield* Ref.set(consumerTags, new Map())
            // Unacked deliveries of the dead channel come again on the next one (`clear` takes what is
            // buffered without waiting; `takeAll` waits for one in Effect 4).
            for (const subscription of yield* Ref.get(subscriptions)) yield* Queue.clear(subscription.mailbox)
            yield* Effect.logWarning("broker: connection lost, reconnecting")
          }).pipe(Effect.catch((error) => Effect.logWarning("broker: session failed", errorText(error))))
        )
        yield* loop.idle(Effect.sleep(Duration.millis(100)))
      })

    // Supervised: a defect in a session is logged and counted and the loop reconnects, never ends.
    yield* runBackgroundLoop({ name: "broker-connection", stallAfter: Duration.minutes(2) }, sessionOnce)

    const consume = (queue: string, handle: (delivery: Delivery, loop: LoopControl) => Effect.Effect<void>) =>
      Effect.gen(function* () {
        const mailbox = yield* Effect.acquireRelease(Queue.unbounded<Delivery>(), Queue.shutdown)
        const subscription: Subscription = { queue, mailbox }
        // Supervised, so a defect escaping `handle` cannot end the queue's consumer.
        yield* runBackgroundLoop({ name: `consumer:${queue}`, stallAfter: Duration.minutes(5) }, (loop) =>
          Effect.flatMap(loop.idle(Queue.take(mailbox)), (d) => Effect.uninterruptible(handle(d, loop)))
        ).pipe(Effect.provideService(Lifecycle, lifecycle))
        // Runs before the worker is interrupted: no new deliveries, then the worker ends after its current one.
        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            yield* Ref.update(subscriptions, (all) => all.filter((s) => s !== subscription))
            const tag = (yield* Ref.get(consumerTags)).get(queue)
            if (tag) yield* closeQuietly(`consumer of ${queue}`, () => tag.channel.cancel(tag.tag).then(() => undefined))
          })
        )
        yield* Ref.update(subscriptions, (all) => [...all, subscription])
        const current = yield* SubscriptionRef.get(state)
        if (current._tag === "Connected") yield* startConsumer(current.session, subscription).pipe(Effect.ignore)
      })

    return {
      kind: "amqp" as const,
      status: Effect.map(
        SubscriptionRef.get(state),
        (current): BrokerStatus =>
          current._tag === "Connected"
            ? { status: "up" }
            : { status: "down", detail: `${current.reason}; events wait in the outbox` }
      ),
      awaitConnected: SubscriptionRef.changes(state).pipe(
        Stream.filter((s) => s._tag === "Connected"),
        Stream.take(1),
        Stream.runDrain
      ),
      publish,
      publishAll,
      consume
    } satisfies MessagingShape
  })

/** AMQP_URL unset: each event becomes one structured log line and counts as published. */
const logPublish = (message: OutgoingMessage) =>
  Effect.logInfo("event published (log publisher)").pipe(
    Effect.annotateLogs({
      correlationId: message.headers["x-correlation-id"] ?? null,
      exchange: message.exchange,
      routingKey: message.routingKey,
      messageId: message.messageId,
      eventType: message.type,
      headers: message.headers,
      event: JSON.parse(message.body) as unknown
    }),
    // In the trace of the transaction that wrote the event, like a real publish.
    Effect.withSpan(...publishSpan(message, "log"))
  )

const logMessaging: MessagingShape = {
  kind: "log",
  status: Effect.succeed({ status: "disabled", detail: "AMQP_URL is unset: events are written to the log" }),
  awaitConnected: Effect.void,
  publish: logPublish,
  publishAll: (messages) => Effect.forEach(messages, (message) => Effect.as(logPublish(message), Result.succeed<void>(undefined))),
  consume: (queue) => Effect.logInfo("AMQP_URL is unset: not consuming").pipe(Effect.annotateLogs("queue", queue))
}

/**
 * The Messaging Layer: one broker connection with a confirm channel that reconnects by itself, or
 * the log publisher when AMQP_URL is unset. Registers the (non-critical) "broker" readiness check.
 */
export class Messaging extends Context.Service<Messaging>()("inventory/Messaging", {
  make: Effect.gen(function* () {
    const config = yield* AppConfig
    const lifecycle = yield* Lifecycle
    const messaging: MessagingShape = Option.isSome(config.amqpUrl)
      ? yield* amqpMessaging(Redacted.value(config.amqpUrl.value), config)
      : logMessaging
    yield* lifecycle.register({ name: "broker", critical: false, check: messaging.status })
    return messaging
  })
}) {
  /** Was `Messaging.Default`; needs AppConfig and Lifecycle (its scope is the layer's: the connection closes with it). */
  static readonly layer = Layer.effect(this, this.make)
}
