import { Effect, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { BulkAdjustments } from "../services/BulkAdjustments.js"
import { InventoryApi } from "./Api.js"
import { databaseFailures } from "./Problem.js"

export const AdjustmentsHttpLive = HttpApiBuilder.group(InventoryApi, "adjustments", (handlers) =>
  Effect.gen(function* () {
    const bulkAdjustments = yield* BulkAdjustments
    return handlers.handle("bulk", ({ payload, headers }) =>
      databaseFailures(bulkAdjustments.adjust(payload, Option.fromNullishOr(headers["idempotency-key"])))
    )
  })
)
