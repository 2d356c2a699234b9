import { Effect, Result } from "effect"
import { decodeData, ProductVariantCreated } from "../domain/ConsumedEvents.js"
import { Topology } from "../layers/Messaging.js"
import { StockLevels } from "../services/StockLevels.js"
import { type EventHandler, Unprocessable } from "./Consumer.js"

/** ProductVariantCreatedEvent → the variant's stock level, onHand 0, unless it exists (EVENTS.md). */
export const productEvents = Effect.gen(function* () {
  const stockLevels = yield* StockLevels
  return {
    name: "product-events",
    queue: Topology.productQueue,
    handle: (envelope) =>
      Effect.gen(function* () {
        if (envelope.eventType !== "ProductVariantCreatedEvent") return "ignored" as const
        const data = decodeData(ProductVariantCreated, envelope)
        if (Result.isFailure(data)) return yield* new Unprocessable({ reason: data.failure })
        const created = yield* stockLevels.createIfAbsent(data.success.variantId, data.success.sku ?? null)
        yield* Effect.logInfo(created ? "variant created from product event" : "variant already exists").pipe(
          Effect.annotateLogs("variantId", data.success.variantId)
        )
        return "applied" as const
      })
  } satisfies EventHandler<never>
})
