import { Effect, Layer } from "effect"
import { Transactions } from "../services/Transactions.js"
import { Topology } from "../layers/Messaging.js"
import { runConsumer } from "./Consumer.js"
import { Inbox } from "./Inbox.js"
import { initConsumerMetrics } from "./Metrics.js"
import { orderEvents } from "./OrderEvents.js"
import { productEvents } from "./ProductEvents.js"

/** The event consumers of EVENTS.md, one fiber per queue. */
export const ConsumersLive = Layer.effectDiscard(
  Effect.gen(function* () {
    yield* initConsumerMetrics(
      [Topology.orderQueue, Topology.productQueue],
      ["OrderCancelledEvent", "OrderShippedEvent", "ProductVariantCreatedEvent"]
    )
    yield* runConsumer(yield* orderEvents)
    yield* runConsumer(yield* productEvents)
  })
).pipe(Layer.provide([Inbox.layer, Transactions.layer]))
