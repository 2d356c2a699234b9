import { Schema, SchemaTransformation } from "effect"

/**
 * An opaque keyset cursor: the base64url text of the last key a page ended on. Clients pass it back
 * unchanged; anything that does not decode is a 400.
 */
export const Cursor = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_-]{1,400}$/u, { message: "must be a cursor returned by a previous page" })
).pipe(
  Schema.decodeTo(
    Schema.String,
    SchemaTransformation.transform({
      decode: (encoded: string) => Buffer.from(encoded, "base64url").toString("utf8"),
      encode: (key: string) => Buffer.from(key, "utf8").toString("base64url")
    })
  )
).annotate({ identifier: "Cursor", description: "Opaque cursor from a previous page's nextCursor" })

export const PageLimit = Schema.NumberFromString.check(
  Schema.isInt(),
  Schema.isBetween({ minimum: 1, maximum: 200 })
).annotate({ description: "Page size, 1-200 (default 50)" })

export const DEFAULT_PAGE_LIMIT = 50
