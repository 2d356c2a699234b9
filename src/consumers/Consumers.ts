import { Duration, Effect, Layer, Schedule } from "effect"
import { AppConfig } from "../layers/Config.js"
import { Transactions } from "../services/Transactions.js"
import { runConsumer } from "./Consumer.js"
import { Inbox } from "./Inbox.js"
import { productEvents } from "./ProductEvents.js"

const INBOX_SWEEP_INTERVAL = Duration.minutes(10)

/** The event consumers of EVENTS.md, and the sweep that forgets inbox ids past INBOX_RETENTION_HOURS. */
export const ConsumersLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const inbox = yield* Inbox
    const config = yield* AppConfig
    yield* runConsumer(yield* productEvents)
    yield* Effect.forkScoped(
      inbox.deleteOlderThan(config.inboxRetentionHours).pipe(
        Effect.catchAll((error) => Effect.logWarning("inbox: retention delete failed", error.message)),
        Effect.repeat(Schedule.spaced(INBOX_SWEEP_INTERVAL))
      )
    )
  })
).pipe(Layer.provide([Inbox.Default, Transactions.Default]))
