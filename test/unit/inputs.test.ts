import { Result, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { decodeData, parseEnvelope, ProductVariantCreated } from "../../src/domain/ConsumedEvents.js"
import { wellFormedCorrelationId } from "../../src/domain/Ids.js"
import { FreeText, unprintable } from "../../src/domain/Text.js"
import { allowedMethods } from "../../src/http/Routes.js"
import { classifySqlError } from "../../src/services/Transactions.js"
import { connectionError, pgError } from "../support/sqlError.js"

describe("free text (API.md Conventions)", () => {
  const accepts = Schema.is(FreeText)
  it("accepts 1-512 characters of printable Unicode", () => {
    for (const s of ["a", "SKU 12/ä", "🎁", "x".repeat(512), "\u00a0nbsp", "\u0080c1"]) expect(accepts(s), JSON.stringify(s)).toBe(true)
  })
  it("refuses control characters U+0000-U+001F and U+007F, lone surrogates, empty and longer text", () => {
    for (const s of ["a\u0000b", "\t", "\n", "\r", "\u001f", "\u007f", "a\ud800", "\udc00b", "\udbff\udbff", "", "x".repeat(513)]) {
      expect(accepts(s), JSON.stringify(s)).toBe(false)
    }
    expect(unprintable("a\u0000")).toMatch(/control characters/)
    expect(unprintable("a\ud800")).toMatch(/surrogate/)
    expect(unprintable("ok")).toBeUndefined()
  })
})

describe("consumed envelopes", () => {
  const envelope = (over: Record<string, unknown>) =>
    JSON.stringify({ eventId: "e-1", eventType: "ProductVariantCreatedEvent", correlationId: "c-1", data: { variantId: "v-1", sku: "S-1" }, ...over })

  it("refuses a sku with a control character, naming the field", () => {
    const parsed = Result.getOrThrow(parseEnvelope(envelope({ data: { variantId: "v-1", sku: "a\u0000b" } })))
    const data = decodeData(ProductVariantCreated, parsed)
    expect(Result.isFailure(data) && data.failure).toMatch(/sku.*control characters/)
  })

  it("refuses an eventId or eventType that is not printable text", () => {
    expect(Result.isFailure(parseEnvelope(envelope({ eventId: "e\u0000" })))).toBe(true)
    expect(Result.isFailure(parseEnvelope(envelope({ eventType: "x".repeat(513) })))).toBe(true)
  })

  it("keeps a well-formed correlationId and drops one the X-Correlation-Id header rule refuses, without refusing the event", () => {
    expect(Result.getOrThrow(parseEnvelope(envelope({}))).correlationId).toBe("c-1")
    for (const bad of ["c\u0000", "x".repeat(129), "with space", 42, ""]) {
      expect(Result.getOrThrow(parseEnvelope(envelope({ correlationId: bad }))).correlationId, JSON.stringify(bad)).toBeNull()
    }
    expect(wellFormedCorrelationId("abc-1:2.3_4")).toBe("abc-1:2.3_4")
    expect(wellFormedCorrelationId("a\u0000")).toBeUndefined()
  })
})

describe("what a SQL error means", () => {
  it("takes data exceptions (class 22) for bad input", () => {
    for (const code of ["22021", "22P02", "22003", "22001", "22007"]) expect(classifySqlError(pgError(code)), code).toBe("bad-data")
  })
  it("takes resource exhaustion, lost connections, shutdowns, timeouts and leftover contention for unavailability", () => {
    for (const code of ["53000", "53100", "53200", "53300", "53400", "08006", "08003", "57P01", "57P02", "57P03", "57014", "55P03", "25006", "40001", "40P01"]) {
      expect(classifySqlError(pgError(code)), code).toBe("unavailable")
    }
    expect(classifySqlError(connectionError("connect ECONNREFUSED 127.0.0.1:5432"))).toBe("unavailable")
    expect(classifySqlError(pgError("25P03", "terminating connection due to idle-in-transaction timeout"))).toBe("unavailable")
  })
  it("takes anything else for a bug", () => {
    for (const code of ["42601", "42P01", "23505", "XX000"]) expect(classifySqlError(pgError(code)), code).toBe("bug")
  })
})

describe("allowed methods of a path", () => {
  const allowed = allowedMethods([
    { method: "GET", path: "/v1/things/:id" },
    { method: "PUT", path: "/v1/things/:id" },
    { method: "POST", path: "/v1/things/:id/actions" }
  ])
  it("lists every method a path template serves, HEAD with GET, and none for an unknown path", () => {
    expect(allowed("/v1/things/a")).toEqual(["GET", "HEAD", "PUT"])
    expect(allowed("/v1/things/a/actions")).toEqual(["POST"])
    expect(allowed("/v1/things")).toEqual([])
    expect(allowed("/v1/things/a/b/c")).toEqual([])
  })
})
