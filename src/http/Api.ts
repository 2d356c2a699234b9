import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { Adjustment, AdjustmentResult, Transfer, TransferResult } from "../domain/Adjustment.js"
import {
  IdempotencyKeyReused,
  InsufficientStock,
  LocationNotFound,
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
import { AdjustmentsApi } from "./AdjustmentsApi.js"
import { LocationsApi } from "./LocationsApi.js"
import { documentProblems, stableComponentNames } from "./OpenApiProblems.js"
import { Problems } from "./Problem.js"
import { Authentication, documentScopes, RequiredScope, scopesByRoute } from "./Security.js"

/** The token scope an endpoint needs (API.md); `Authentication` enforces it (http/Auth.ts). */
export { Authentication, RequiredScope }

const VariantPath = { variantId: VariantId }

export const MAX_BATCH_IDS = 100

export class StockLevelBatch extends Schema.Class<StockLevelBatch>("StockLevelBatch")({
  items: Schema.Array(StockLevel),
  missing: Schema.Array(Schema.String)
}) {}

/**
 * Listing pages continue after a variant id; history pages before an entry id. Both travel as the
 * same opaque `Cursor` (the identifier names their shared wire form in the OpenAPI document).
 */
const VariantCursor = Cursor.pipe(Schema.decodeTo(VariantId)).annotate({ identifier: "Cursor" })
const HistoryCursor = Cursor.pipe(
  Schema.decodeTo(Schema.String.check(Schema.isPattern(/^[0-9]{1,18}$/u, { message: "must be a cursor returned by a previous page" })))
).annotate({ identifier: "Cursor" })

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
  variantId: Schema.optional(Schema.Array(VariantId).check(Schema.isMinLength(1), Schema.isMaxLength(MAX_BATCH_IDS))),
  status: Schema.optional(StockStatus),
  limit: Schema.optional(PageLimit),
  cursor: Schema.optional(VariantCursor)
}).check(
  Schema.makeFilter((query) =>
    query.variantId !== undefined && (query.status !== undefined || query.limit !== undefined || query.cursor !== undefined)
      ? { path: ["variantId"], issue: "variantId cannot be combined with status, limit or cursor" }
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

const IdempotencyHeaders = {
  "idempotency-key": Schema.optionalKey(printableText(255).annotate({ title: "Idempotency-Key", description: IDEMPOTENCY_KEY }))
}

/** What the document says of a parameter, beside its schema (Effect 4 describes parameters by schema only). */
const PARAMETER_DOCS: Record<string, { readonly title: string; readonly description: string }> = {
  "idempotency-key": { title: "Idempotency-Key", description: IDEMPOTENCY_KEY }
}

type Json = Record<string, unknown>

/** Each parameter of `PARAMETER_DOCS` gets its title and description, on itself and on its schema. */
const documentParameters = (spec: Json): Json => {
  for (const item of Object.values((spec["paths"] as Json | undefined) ?? {})) {
    for (const operation of Object.values(item as Json)) {
      for (const parameter of ((operation as Json)["parameters"] as Array<Json> | undefined) ?? []) {
        const docs = PARAMETER_DOCS[String(parameter["name"])]
        if (docs === undefined) continue
        parameter["schema"] = { ...(parameter["schema"] as Json | undefined), ...docs }
        parameter["description"] = docs.description
      }
    }
  }
  return spec
}

// Endpoints use `disableCodecs: true`: the schemas are JSON-ready as declared (as in Effect 3). The
// automatic JSON codec would also accept `null` for an optional field, which the contract refuses (400).
export class StockLevelsApi extends HttpApiGroup.make("stockLevels")
  .add(
    HttpApiEndpoint.put("configure", "/v1/stock-levels/:variantId", {
      disableCodecs: true,
      params: VariantPath,
      payload: VariantSettings,
      success: [StockLevel, StockLevel.pipe(HttpApiSchema.status(201)).annotate({ description: "Created with onHand 0" })]
    })
      .annotate(RequiredScope, "inventory:adjust")
      .annotate(OpenApi.Summary, "Create a variant's stock level, or change its sku / lowStockThreshold")
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/stock-levels/:variantId", {
      disableCodecs: true,
      params: VariantPath,
      success: StockLevel,
      error: VariantNotFound
    })
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "One variant's stock level")
  )
  .add(
    // The one endpoint with the automatic string codecs: its query is checked as a whole (variantId
    // excludes the listing parameters), which the codec-less form does not accept; it has no body.
    HttpApiEndpoint.get("list", "/v1/stock-levels", {
      query: StockLevelQuery,
      success: Schema.Union([StockLevelBatch, StockLevelPage])
    })
      .annotate(RequiredScope, "inventory:read")
      .annotate(
        OpenApi.Description,
        "With variantId (repeatable, at most 100): those levels and the ids that do not exist. " +
          "Otherwise: every level (optionally of one status) by variant id, with keyset pagination."
      )
  )
  .add(
    HttpApiEndpoint.post("adjust", "/v1/stock-levels/:variantId/adjustments", {
      disableCodecs: true,
      params: VariantPath,
      headers: IdempotencyHeaders,
      payload: Adjustment,
      success: AdjustmentResult,
      error: [VariantNotFound, LocationNotFound, InsufficientStock, VersionConflict, StockLimitExceeded, IdempotencyKeyReused]
    })
      .annotate(RequiredScope, "inventory:adjust")
      .annotate(OpenApi.Summary, "PURCHASE, SALE, RETURN, ADJUSTMENT or RECOUNT, at a location (default: `default`)")
  )
  .add(
    HttpApiEndpoint.post("transfer", "/v1/stock-levels/:variantId/transfers", {
      disableCodecs: true,
      params: VariantPath,
      headers: IdempotencyHeaders,
      payload: Transfer,
      success: TransferResult,
      error: [VariantNotFound, LocationNotFound, InsufficientStock, StockLimitExceeded, IdempotencyKeyReused]
    })
      .annotate(RequiredScope, "inventory:adjust")
      .annotate(OpenApi.Summary, "Move onHand from one location to another (TRANSFER_OUT and TRANSFER_IN, one transaction)")
  )
  .add(
    HttpApiEndpoint.get("history", "/v1/stock-levels/:variantId/history", {
      disableCodecs: true,
      params: VariantPath,
      query: { limit: Schema.optionalKey(PageLimit), cursor: Schema.optionalKey(HistoryCursor) },
      success: HistoryPage,
      error: VariantNotFound
    })
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "A variant's history, newest first")
  )
  .middleware(Authentication) {}

const OrderPath = { orderId: OrderId }

export class ReservationsApi extends HttpApiGroup.make("reservations")
  .add(
    HttpApiEndpoint.post("create", "/v1/reservations", {
      disableCodecs: true,
      payload: ReservationRequest,
      success: [
        Reservation.annotate({ description: "The same orderId with the same lines again: the stored reservation, nothing reserved twice" }),
        Reservation.pipe(HttpApiSchema.status(201)).annotate({ description: "Reserved: every line, in one transaction" })
      ],
      error: [ReservationRefused, ReservationConflict]
    })
      .annotate(RequiredScope, "inventory:reserve")
      .annotate(OpenApi.Summary, "Reserve every line of an order, or none (409 lists every failing line)")
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/reservations/:orderId", {
      disableCodecs: true,
      params: OrderPath,
      success: Reservation,
      error: ReservationNotFound
    })
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "An order's reservation")
  )
  .add(
    HttpApiEndpoint.post("release", "/v1/reservations/:orderId/release", {
      disableCodecs: true,
      params: OrderPath,
      success: Reservation,
      error: [ReservationNotFound, ReservationNotActive]
    })
      .annotate(RequiredScope, "inventory:reserve")
      .annotate(OpenApi.Summary, "Free the reserved units (idempotent; an EXPIRED reservation is answered as is)")
  )
  .add(
    HttpApiEndpoint.post("commit", "/v1/reservations/:orderId/commit", {
      disableCodecs: true,
      params: OrderPath,
      success: Reservation,
      error: [ReservationNotFound, ReservationNotActive]
    })
      .annotate(RequiredScope, "inventory:reserve")
      .annotate(OpenApi.Summary, "The reserved units leave reserved and onHand (idempotent)")
  )
  .middleware(Authentication) {}

export const DependencyState = Schema.Struct({
  status: Schema.Literals(["up", "down", "disabled"]),
  detail: Schema.optionalKey(Schema.String)
})

export class Readiness extends Schema.Class<Readiness>("Readiness")({
  status: Schema.Literals(["ready", "not-ready"]),
  checks: Schema.Record(Schema.String, DependencyState)
}) {}

const LIVE_FAILING = "A background loop (outbox relay, sweepers, broker connection, consumers) ended or is stuck: restart"
const LiveFailing = Schema.Struct({ status: Schema.Literal("failing"), loops: Schema.Array(Schema.String) }).annotate({ description: LIVE_FAILING })
const NOT_READY = "Not ready: shutting down or the database is unavailable"

export class HealthApi extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("live", "/health/live", {
      disableCodecs: true,
      success: [Schema.Struct({ status: Schema.Literal("ok") }), LiveFailing.pipe(HttpApiSchema.status(503))]
    })
  )
  .add(
    HttpApiEndpoint.get("ready", "/health/ready", {
      disableCodecs: true,
      success: [Readiness, Readiness.pipe(HttpApiSchema.status(503)).annotate({ description: NOT_READY })]
    })
  )
  .annotate(OpenApi.Description, "Probes; no token needed") {}

/**
 * The probes answer 503 with their own bodies (loop and dependency states). Effect 4 documents a
 * status an endpoint both succeeds and fails with (here the API-wide 503 `unavailable` of
 * `Problems`) by the error alone; the document shows the probes' bodies, as the contract says.
 */
const documentProbes = (spec: Json): Json => {
  const paths = (spec["paths"] ?? {}) as Record<string, Record<string, Json>>
  const probes: ReadonlyArray<readonly [string, string, Json]> = [
    ["/health/live", LIVE_FAILING, { ...(Schema.toJsonSchemaDocument(LiveFailing).schema as Json), additionalProperties: false }],
    ["/health/ready", NOT_READY, { $ref: "#/components/schemas/Readiness" }]
  ]
  for (const [path, description, schema] of probes) {
    const responses = paths[path]?.["get"]?.["responses"] as Json | undefined
    if (responses !== undefined) responses["503"] = { description, content: { "application/json": { schema } } }
  }
  return spec
}

/** Every group of the contract (the OpenAPI transform below reads their scopes). */
const groups = HttpApi.make("inventory").add(StockLevelsApi, ReservationsApi, LocationsApi, AdjustmentsApi, HealthApi)

/**
 * The contract of API.md. Handlers live in *Http.ts files; this file says only what peers can call.
 * `Problems` (http/Problem.ts) goes on last, so it is every endpoint's outermost middleware: it
 * renders every failure as problem+json and declares the 503 `unavailable` and the 400 for data the
 * database refuses that any endpoint can answer. Payloads report every invalid field, not only the
 * first (`errors: "all"`, a schema annotation in Effect 3).
 */
export class InventoryApi extends groups
  .middleware(Problems)
  .annotate(HttpApi.PayloadParseOptions, { errors: "all" })
  .annotate(OpenApi.Title, "Inventory Service")
  .annotate(OpenApi.Version, "1.0.0")
  .annotate(OpenApi.Description, "Stock levels and reservations of product variants. Errors are RFC 9457 problem+json.")
  .annotate(OpenApi.Transform, (spec) =>
    documentScopes(documentProbes(documentProblems(documentParameters(stableComponentNames(spec)))), scopesByRoute(groups))) {}
