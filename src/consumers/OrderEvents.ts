import { Effect, Result } from "effect"
import { decodeData, OrderCancelled, OrderShipped } from "../domain/ConsumedEvents.js"
import { Topology } from "../layers/Messaging.js"
import { Reservations } from "../services/Reservations.js"
import { type EventHandler, Unprocessable } from "./Consumer.js"

/**
 * OrderCancelledEvent → release the order's reservation; OrderShippedEvent → commit it (EVENTS.md),
 * through the same service as `POST /v1/reservations/{orderId}/release|commit`. A reservation that is
 * missing or no longer active is the order service's news, not a failure: retrying cannot change it,
 * so it is acknowledged as `refused` and logged as a warning for the operators.
 */
export const orderEvents = Effect.gen(function* () {
  const reservations = yield* Reservations
  return {
    name: "order-events",
    queue: Topology.orderQueue,
    handle: (envelope) =>
      Effect.gen(function* () {
        const action =
          envelope.eventType === "OrderCancelledEvent"
            ? { schema: OrderCancelled, apply: reservations.release }
            : envelope.eventType === "OrderShippedEvent"
              ? { schema: OrderShipped, apply: reservations.commit }
              : undefined
        if (action === undefined) return "ignored" as const
        const data = decodeData(action.schema, envelope)
        if (Result.isFailure(data)) return yield* new Unprocessable({ reason: data.failure })
        const { orderId } = data.success
        return yield* action.apply(orderId).pipe(
          Effect.as("applied" as const),
          Effect.catchTags({
            ReservationNotFound: (error) => refused(orderId, error.message),
            ReservationNotActive: (error) => refused(orderId, error.message)
          })
        )
      })
  } satisfies EventHandler<never>
})

const refused = (orderId: string, why: string) =>
  Effect.logWarning("order event cannot be applied to the reservation").pipe(
    Effect.annotateLogs({ orderId, why }),
    Effect.as("refused" as const)
  )
