import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Adjustment, AdjustmentResult } from "../domain/Adjustment.js"
import {
  IdempotencyKeyReused,
  InsufficientStock,
  ReservationConflict,
  ReservationNotActive,
  ReservationNotFound,
  ReservationRefused,
  StockLimitExceeded,
  VariantNotFound,
  VersionConflict
} from "../domain/Errors.js"
import { HistoryEntry } from "../domain/History.js"
import { OrderId, VariantId } from "../domain/Ids.js"
import { Cursor, PageLimit } from "../domain/Pagination.js"
import { Reservation, ReservationRequest } from "../domain/Reservation.js"
import { StockLevel, StockStatus, VariantSettings } from "../domain/StockLevel.js"
import { printableText } from "../domain/Text.js"
import { documentProblems } from "./OpenApiProblems.js"
import { InvalidData, Unavailable } from "./Problem.js"
import { Authentication, documentScopes, RequiredScope, scopesByRoute } from "./Security.js"

/** The token scope an endpoint needs (API.md); `Authentication` enforces it (http/Auth.ts). */
export { Authentication, RequiredScope }

const VariantPath = Schema.Struct({ variantId: VariantId })

export const MAX_BATCH_IDS = 100

export class StockLevelBatch extends Schema.Class<StockLevelBatch>("StockLevelBatch")({
  items: Schema.Array(StockLevel),
  missing: Schema.Array(Schema.String)
}) {}

/** Listing pages continue after a variant id; history pages before an entry id. */
const VariantCursor = Cursor.pipe(Schema.compose(VariantId, { strict: false }))
const HistoryCursor = Cursor.pipe(
  Schema.compose(Schema.String.pipe(Schema.pattern(/^[0-9]{1,18}$/, { message: () => "must be a cursor returned by a previous page" })), { strict: false })
)

export class StockLevelPage extends Schema.Class<StockLevelPage>("StockLevelPage")({
  items: Schema.Array(StockLevel),
  nextCursor: Schema.NullOr(VariantCursor)
}) {}

export class HistoryPage extends Schema.Class<HistoryPage>("HistoryPage")({
  items: Schema.Array(HistoryEntry),
  nextCursor: Schema.NullOr(HistoryCursor)
}) {}

/** `?variantId=a&variantId=b` (batch read) or `?status=&limit=&cursor=` (listing); not both. */
export const StockLevelQuery = Schema.Struct({
  variantId: Schema.optional(Schema.Array(VariantId).pipe(Schema.minItems(1), Schema.maxItems(MAX_BATCH_IDS))),
  status: Schema.optional(StockStatus),
  limit: Schema.optional(PageLimit),
  cursor: Schema.optional(VariantCursor)
}).pipe(
  Schema.filter((query) =>
    query.variantId !== undefined && (query.status !== undefined || query.limit !== undefined || query.cursor !== undefined)
      ? { path: ["variantId"], message: "variantId cannot be combined with status, limit or cursor" }
      : true
  )
)

/** Stored with the answer, so held to the free-text rule (printable, at most 255 characters). The contract of `Idempotency-Key` (services/Idempotency.ts implements it), shown on every endpoint that takes it. */
const IDEMPOTENCY_KEY = [
  "Optional, 1-255 characters, e.g. a UUID per logical operation.",
  "Scope: per caller (token subject) and endpoint; another caller's key never matches.",
  "Replay: a retry with the same key and the same request (path and body) changes nothing and gets the stored answer,",
  "status and body as the first time, with the response header `Idempotent-Replayed: true`.",
  "The same key with a different request is refused with 422 `idempotency-key-reused`.",
  "Refusals (4xx) and failures (5xx) are not stored: a retry runs again.",
  "Two simultaneous first attempts run one after the other.",
  "Retention: answers are kept IDEMPOTENCY_KEY_RETENTION_HOURS (default 72 h); a retry after that runs again."
].join(" ")

const IdempotencyHeaders = Schema.Struct({
  "idempotency-key": Schema.optional(
    printableText(255).annotations({ title: "Idempotency-Key", description: IDEMPOTENCY_KEY, jsonSchema: { title: "Idempotency-Key", description: IDEMPOTENCY_KEY } })
  )
})

export class StockLevelsApi extends HttpApiGroup.make("stockLevels")
  .add(
    HttpApiEndpoint.put("configure", "/v1/stock-levels/:variantId")
      .setPath(VariantPath)
      .setPayload(VariantSettings)
      .addSuccess(StockLevel)
      .addSuccess(StockLevel.annotations({ description: "Created with onHand 0" }), { status: 201 })
      .annotate(RequiredScope, "inventory:adjust")
      .annotate(OpenApi.Summary, "Create a variant's stock level, or change its sku / lowStockThreshold")
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/stock-levels/:variantId")
      .setPath(VariantPath)
      .addSuccess(StockLevel)
      .addError(VariantNotFound)
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "One variant's stock level")
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/stock-levels")
      .setUrlParams(StockLevelQuery)
      .addSuccess(Schema.Union(StockLevelBatch, StockLevelPage))
      .annotate(RequiredScope, "inventory:read")
      .annotate(
        OpenApi.Description,
        "With variantId (repeatable, at most 100): those levels and the ids that do not exist. " +
          "Otherwise: every level (optionally of one status) by variant id, with keyset pagination."
      )
  )
  .add(
    HttpApiEndpoint.post("adjust", "/v1/stock-levels/:variantId/adjustments")
      .setPath(VariantPath)
      .setHeaders(IdempotencyHeaders)
      .setPayload(Adjustment)
      .addSuccess(AdjustmentResult)
      .addError(VariantNotFound)
      .addError(InsufficientStock)
      .addError(VersionConflict)
      .addError(StockLimitExceeded)
      .addError(IdempotencyKeyReused)
      .annotate(RequiredScope, "inventory:adjust")
      .annotate(OpenApi.Summary, "PURCHASE, SALE, RETURN, ADJUSTMENT or RECOUNT")
  )
  .add(
    HttpApiEndpoint.get("history", "/v1/stock-levels/:variantId/history")
      .setPath(VariantPath)
      .setUrlParams(Schema.Struct({ limit: Schema.optional(PageLimit), cursor: Schema.optional(HistoryCursor) }))
      .addSuccess(HistoryPage)
      .addError(VariantNotFound)
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "A variant's history, newest first")
  )
  .middleware(Authentication) {}

const OrderPath = Schema.Struct({ orderId: OrderId })

export class ReservationsApi extends HttpApiGroup.make("reservations")
  .add(
    HttpApiEndpoint.post("create", "/v1/reservations")
      .setPayload(ReservationRequest)
      .addSuccess(Reservation.annotations({ description: "The same orderId with the same lines again: the stored reservation, nothing reserved twice" }))
      .addSuccess(Reservation.annotations({ description: "Reserved: every line, in one transaction" }), { status: 201 })
      .addError(ReservationRefused)
      .addError(ReservationConflict)
      .annotate(RequiredScope, "inventory:reserve")
      .annotate(OpenApi.Summary, "Reserve every line of an order, or none (409 lists every failing line)")
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/reservations/:orderId")
      .setPath(OrderPath)
      .addSuccess(Reservation)
      .addError(ReservationNotFound)
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "An order's reservation")
  )
  .add(
    HttpApiEndpoint.post("release", "/v1/reservations/:orderId/release")
      .setPath(OrderPath)
      .addSuccess(Reservation)
      .addError(ReservationNotFound)
      .addError(ReservationNotActive)
      .annotate(RequiredScope, "inventory:reserve")
      .annotate(OpenApi.Summary, "Free the reserved units (idempotent; an EXPIRED reservation is answered as is)")
  )
  .add(
    HttpApiEndpoint.post("commit", "/v1/reservations/:orderId/commit")
      .setPath(OrderPath)
      .addSuccess(Reservation)
      .addError(ReservationNotFound)
      .addError(ReservationNotActive)
      .annotate(RequiredScope, "inventory:reserve")
      .annotate(OpenApi.Summary, "The reserved units leave reserved and onHand (idempotent)")
  )
  .middleware(Authentication) {}

export const DependencyState = Schema.Struct({
  status: Schema.Literal("up", "down", "disabled"),
  detail: Schema.optional(Schema.String)
})

export class Readiness extends Schema.Class<Readiness>("Readiness")({
  status: Schema.Literal("ready", "not-ready"),
  checks: Schema.Record({ key: Schema.String, value: DependencyState })
}) {}

export class HealthApi extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("live", "/health/live")
      .addSuccess(Schema.Struct({ status: Schema.Literal("ok") }))
      .addSuccess(
        Schema.Struct({ status: Schema.Literal("failing"), loops: Schema.Array(Schema.String) }).annotations({
          description: "A background loop (outbox relay, sweepers, broker connection, consumers) ended or is stuck: restart"
        }),
        { status: 503 }
      )
  )
  .add(
    HttpApiEndpoint.get("ready", "/health/ready")
      .addSuccess(Readiness)
      .addSuccess(Readiness.annotations({ description: "Not ready: shutting down or the database is unavailable" }), {
        status: 503
      })
  )
  .annotate(OpenApi.Description, "Probes; no token needed") {}

/** Every group of the contract (the OpenAPI transform below reads their scopes). */
const groups = HttpApi.make("inventory")
  .add(StockLevelsApi)
  .add(ReservationsApi)
  .add(HealthApi)

/** The contract of API.md. Handlers live in *Http.ts files; this file says only what peers can call. */
export class InventoryApi extends groups
  .addError(Unavailable)
  .addError(InvalidData)
  .annotate(OpenApi.Title, "Inventory Service")
  .annotate(OpenApi.Version, "1.0.0")
  .annotate(OpenApi.Description, "Stock levels and reservations of product variants. Errors are RFC 9457 problem+json.")
  .annotate(OpenApi.Transform, (spec) => documentScopes(documentProblems(spec), scopesByRoute(groups))) {}
