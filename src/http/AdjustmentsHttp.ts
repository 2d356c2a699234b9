import { Effect, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { BulkAdjustments } from "../services/BulkAdjustments.js"
import { InventoryApi } from "./Api.js"
import { buildGroupWith } from "./GroupContext.js"
import { databaseFailures, Problems } from "./Problem.js"
import { Authentication } from "./Security.js"

export const AdjustmentsHttpLive = HttpApiBuilder.group(InventoryApi, "adjustments", (handlers) =>
  Effect.gen(function* () {
    const bulkAdjustments = yield* BulkAdjustments
    return handlers.handle("bulk", ({ payload, headers }) =>
      databaseFailures(bulkAdjustments.adjust(payload, Option.fromNullishOr(headers["idempotency-key"])))
    )
  })
).pipe(buildGroupWith(BulkAdjustments, Authentication, Problems))
