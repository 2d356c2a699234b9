import { Schema } from "effect"

/**
 * An opaque keyset cursor: the base64url text of the last key a page ended on. Clients pass it back
 * unchanged; anything that does not decode is a 400.
 */
export const Cursor = Schema.transform(
  Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]{1,400}$/, { message: () => "must be a cursor returned by a previous page" })),
  Schema.String,
  {
    strict: true,
    decode: (encoded) => Buffer.from(encoded, "base64url").toString("utf8"),
    encode: (key) => Buffer.from(key, "utf8").toString("base64url")
  }
).annotations({ identifier: "Cursor", description: "Opaque cursor from a previous page's nextCursor" })

export const PageLimit = Schema.NumberFromString.pipe(
  Schema.int(),
  Schema.between(1, 200),
  Schema.annotations({ description: "Page size, 1-200 (default 50)" })
)

export const DEFAULT_PAGE_LIMIT = 50
