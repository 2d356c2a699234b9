import { Either, ParseResult, Schema } from "effect"
import { CorrelationId, OrderId, VariantId, wellFormedCorrelationId } from "./Ids.js"
import { Sku } from "./StockLevel.js"
import { FreeText } from "./Text.js"

/** A peer's correlation id, kept when well-formed (as the X-Correlation-Id header is), else dropped. */
const PeerCorrelationId = Schema.transform(Schema.Unknown, Schema.NullOr(CorrelationId), {
  strict: true,
  decode: (u) => wellFormedCorrelationId(u) ?? null,
  encode: (id) => id
})

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

/** Why a message body cannot be used, as one line for the dead-letter reason. */
const describe = (error: ParseResult.ParseError) => ParseResult.TreeFormatter.formatErrorSync(error).replace(/\s+/g, " ")

/** Parses a message body into the envelope, or says why it cannot. */
export const parseEnvelope = (body: string): Either.Either<IncomingEnvelope, string> => {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch (error) {
    return Either.left(`body is not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  return Schema.decodeUnknownEither(IncomingEnvelope)(json).pipe(Either.mapLeft((e) => `not an event envelope: ${describe(e)}`))
}

/** Decodes the `data` of an event, or says why it cannot. */
export const decodeData = <A, I>(schema: Schema.Schema<A, I>, envelope: IncomingEnvelope): Either.Either<A, string> =>
  Schema.decodeUnknownEither(schema)(envelope.data).pipe(
    Either.mapLeft((e) => `invalid ${envelope.eventType} data: ${describe(e)}`)
  )
