import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { BulkAdjustmentRequest, BulkAdjustmentResults } from "../domain/BulkAdjustment.js"
import { BatchRefused, IdempotencyKeyReused } from "../domain/Errors.js"
import { printableText } from "../domain/Text.js"
import { Authentication, RequiredScope } from "./Security.js"

/** As on the single adjustment (Api.ts documents the header by name on every endpoint that takes it). */
const IdempotencyHeaders = { "idempotency-key": Schema.optionalKey(printableText(255).annotate({ title: "Idempotency-Key" })) }

/**
 * API.md "Bulk adjustments" (handlers: http/AdjustmentsHttp.ts). `disableCodecs: true` as in Api.ts:
 * an optional field sent as `null` is a 400.
 */
export class AdjustmentsApi extends HttpApiGroup.make("adjustments")
  .add(
    HttpApiEndpoint.post("bulk", "/v1/adjustments", {
      disableCodecs: true,
      headers: IdempotencyHeaders,
      payload: BulkAdjustmentRequest,
      success: BulkAdjustmentResults,
      error: [BatchRefused, IdempotencyKeyReused]
    })
      .annotate(RequiredScope, "inventory:adjust")
      .annotate(
        OpenApi.Description,
        "1-1,000 adjustments of any variants and locations. atomic (default true): all applied in one transaction, " +
          "or none and 409 batch-refused listing every refused item. atomic false: each item applied or refused on its own, " +
          "results in request order with the status (and problem) the single adjustment would have answered."
      )
  )
  .middleware(Authentication) {}
