import { Either, ParseResult, Schema } from "effect"
import { OrderId, VariantId } from "./Ids.js"
import { Sku } from "./StockLevel.js"

/** The envelope of EVENTS.md as our peers send it; `data` is decoded per event type. */
export const IncomingEnvelope = Schema.Struct({
  eventId: Schema.String.pipe(Schema.minLength(1)),
  eventType: Schema.String.pipe(Schema.minLength(1)),
  eventVersion: Schema.optional(Schema.Number),
  occurredAt: Schema.optional(Schema.String),
  aggregateType: Schema.optional(Schema.String),
  aggregateId: Schema.optional(Schema.String),
  correlationId: Schema.optional(Schema.NullOr(Schema.String)),
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
