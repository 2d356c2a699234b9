import { Effect, Layer } from "effect"
import { Transactions } from "../services/Transactions.js"
import { runConsumer } from "./Consumer.js"
import { Inbox } from "./Inbox.js"
import { orderEvents } from "./OrderEvents.js"
import { productEvents } from "./ProductEvents.js"

/** The event consumers of EVENTS.md, one fiber per queue. */
export const ConsumersLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    yield* runConsumer(yield* orderEvents)
    yield* runConsumer(yield* productEvents)
  })
).pipe(Layer.provide([Inbox.Default, Transactions.Default]))
