import { Schema } from "effect"

/** Opaque identifiers shared by variants and orders: 1–128 chars of `[A-Za-z0-9._:-]` (API.md). */
const opaqueId = (identifier: string) =>
  Schema.String.check(
    Schema.isPattern(/^[A-Za-z0-9._:-]{1,128}$/u, {
      message: "must be 1-128 characters of A-Z a-z 0-9 . _ : -"
    })
  ).annotate({ identifier })

export const VariantId = opaqueId("VariantId")
export type VariantId = typeof VariantId.Type

/** A warehouse or store (API.md Locations): the same characters as a variant id. */
export const LocationId = opaqueId("LocationId")
export type LocationId = typeof LocationId.Type

export const OrderId = opaqueId("OrderId")
export type OrderId = typeof OrderId.Type

/**
 * A correlation id, from the `X-Correlation-Id` header or a consumed envelope: the same characters,
 * so it is safe in logs, headers and SQL. One that is not well-formed is replaced, never refused: it
 * must not cost a request or an event its effect.
 */
export const CorrelationId = opaqueId("CorrelationId")
export type CorrelationId = typeof CorrelationId.Type
const isCorrelationId = Schema.is(CorrelationId)

/** The given correlation id when it is well-formed, else undefined (the caller picks a replacement). */
export const wellFormedCorrelationId = (u: unknown): CorrelationId | undefined => (isCorrelationId(u) ? u : undefined)

/** A non-negative integer quantity stored in an `integer` column. */
export const MAX_QUANTITY = 1_000_000_000
