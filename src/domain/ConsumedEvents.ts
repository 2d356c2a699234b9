import { Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { CorrelationId, OrderId, VariantId, wellFormedCorrelationId } from "./Ids.js"
import { Sku } from "./StockLevel.js"
import { FreeText } from "./Text.js"

/** A peer's correlation id, kept when well-formed (as the X-Correlation-Id header is), else dropped. */
const PeerCorrelationId = Schema.Unknown.pipe(
  Schema.decodeTo(
    Schema.NullOr(CorrelationId),
    SchemaTransformation.transform({
      decode: (u: unknown) => wellFormedCorrelationId(u) ?? null,
      encode: (id: CorrelationId | null): unknown => id
    })
  )
)

/**
 * The envelope of EVENTS.md as our peers send it; `data` is decoded per event type. `eventId` and
 * `eventType` are stored (inbox) and logged, so they are held to the free-text rule.
 */
export const IncomingEnvelope = Schema.Struct({
  eventId: FreeText,
  eventType: FreeText,
  eventVersion: Schema.optional(Schema.Number),
  occurredAt: Schema.optional(Schema.String),
  aggregateType: Schema.optional(Schema.String),
  aggregateId: Schema.optional(Schema.String),
  correlationId: Schema.optional(PeerCorrelationId),
  data: Schema.Unknown
})
export type IncomingEnvelope = typeof IncomingEnvelope.Type

export const OrderCancelled = Schema.Struct({ orderId: OrderId })
export const OrderShipped = Schema.Struct({ orderId: OrderId })
export const ProductVariantCreated = Schema.Struct({ variantId: VariantId, sku: Schema.optional(Schema.NullOr(Sku)) })

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** Why a message body cannot be used, as one line for the dead-letter reason: `["field"] message; ...`. */
const describe = (error: Schema.SchemaError) =>
  formatIssues(error.issue)
    .issues.map((issue) => {
      const path = (issue.path ?? []).map((p) => JSON.stringify(String(typeof p === "object" ? p.key : p)))
      return path.length === 0 ? issue.message : `[${path.join("][")}] ${issue.message}`
    })
    .join("; ")
    .replace(/\s+/g, " ")

/** Parses a message body into the envelope, or says why it cannot. */
export const parseEnvelope = (body: string): Result.Result<IncomingEnvelope, string> => {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch (error) {
    return Result.fail(`body is not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  return Schema.decodeUnknownResult(IncomingEnvelope)(json).pipe(Result.mapError((e) => `not an event envelope: ${describe(e)}`))
}

/** Decodes the `data` of an event, or says why it cannot. */
export const decodeData = <A>(schema: Schema.Decoder<A>, envelope: IncomingEnvelope): Result.Result<A, string> =>
  Schema.decodeUnknownResult(schema)(envelope.data).pipe(
    Result.mapError((e) => `invalid ${envelope.eventType} data: ${describe(e)}`)
  )
