// Property-based fuzzing of every endpoint (fast-check): malformed JSON, wrong types, huge, negative
// and fractional numbers, integers at and beyond the int4 limits, unicode, control characters, lone
// surrogates, 10 kB and over-long strings and ids, invalid percent-encodings, duplicated and missing
// fields, random query parameters, headers and methods. Whatever a client sends: never a 5xx, every
// refusal is problem+json, and the database's invariants hold afterwards.
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { InventoryApi } from "../../src/http/Api.js"
import { scopesByRoute } from "../../src/http/Security.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { request } from "../support/http.js"
import { brokenInvariants } from "../support/snapshot.js"

const routes = [...scopesByRoute(InventoryApi).map(({ method, path }) => ({ method, path })), { method: "GET", path: "/health/live" }, { method: "GET", path: "/health/ready" }]
const KNOWN_IDS = ["fz-1", "fz-2"]

/** C0 controls and DEL (refused in free text), and lone UTF-16 surrogates (no UTF-8 encoding). */
// NUL most often: it is the one PostgreSQL refuses outright (22021).
const control = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.integer({ min: 1, max: 0x1f }), fc.constant(0x7f)).map((c) => String.fromCharCode(c))
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))

/** Strings PostgreSQL, the router or the logs could choke on, beside ordinary ones. */
const shortText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: fc.oneof(fc.constantFrom("a", "ü", "🙂", " "), control, loneSurrogate), maxLength: 20 }),
  fc.tuple(fc.string({ maxLength: 5 }), fc.oneof(control, loneSurrogate), fc.string({ maxLength: 5 })).map((parts) => parts.join("")),
  fc.constantFrom("a\u0000b", "\u0000", "\ud800", "x\udc00", "\ud83c\udf81", "x".repeat(512), "x".repeat(513))
)
/** In bodies also 10 kB strings (in a URL, Node refuses those with 431 before the service sees them). */
const text = fc.oneof({ weight: 5, arbitrary: shortText }, { weight: 1, arbitrary: fc.constantFrom("x".repeat(10_240), "ü".repeat(10_240), "\u0000".repeat(10_240)) })

const id = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...KNOWN_IDS) },
  fc.constantFrom("unknown-id", "", ".", "..", "a".repeat(128), "a".repeat(129), "%00", "%2F", "ü", "🙂", "a b", "-1", "1e9"),
  shortText,
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ minLength: 120, maxLength: 400 })
)

/** A path segment: an id percent-encoded (lone surrogates as their invalid UTF-8), or a broken encoding as such. */
const pathSegment = fc.oneof(
  { weight: 5, arbitrary: id.map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, "\ufffd")).replace(/%EF%BF%BD/g, "%ED%A0%80")) },
  { weight: 1, arbitrary: fc.constantFrom("%ZZ", "%", "a%2", "%E0%A4%A", "%C0%AF", "%ED%A0%80", "%FF", "%00", "%7F") }
)

/** int4 (PostgreSQL `integer`) is ±2,147,483,647/8; JavaScript integers are exact to 2^53. */
const INT4_EDGES = [2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32, 2 ** 53, -(2 ** 53), 2 ** 53 + 1, 2 ** 63, 1e21]

const number = fc.oneof(
  fc.integer({ min: -5, max: 20 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom(...INT4_EDGES),
  fc.integer({ min: -3, max: 3 }).chain((delta) => fc.constantFrom(2 ** 31 - 1 + delta, -(2 ** 31) + delta)),
  fc.constantFrom(0, -0, 1.5, -1, 1e308, -1e308, 1_000_000_001, Number.MAX_SAFE_INTEGER),
  fc.constantFrom("1", "NaN", "Infinity", null, true, [], {})
)

const adjustmentType = fc.oneof(fc.constantFrom("PURCHASE", "SALE", "RETURN", "ADJUSTMENT", "RECOUNT", "RESERVE", "purchase", ""), fc.string({ maxLength: 12 }))

const field = fc.oneof(text, fc.string({ maxLength: 600 }), number, fc.constant(null), fc.jsonValue({ maxDepth: 2 }))

const line = fc.record({ variantId: fc.oneof(fc.constantFrom(...KNOWN_IDS), id, field), quantity: number }, { requiredKeys: [] })

/** A JSON object near the real payloads of every endpoint: right and wrong fields, any subset of them. */
const payload = fc.record(
  {
    type: fc.oneof(adjustmentType, field),
    quantity: number,
    reason: fc.oneof(text, field),
    reference: fc.oneof(text, field),
    expectedVersion: number,
    sku: fc.oneof(text, field),
    lowStockThreshold: number,
    orderId: fc.oneof(id, field),
    lines: fc.oneof(fc.array(line, { maxLength: 3 }), field),
    ttlSeconds: number,
    extra: field
  },
  { requiredKeys: [] }
)

/** A valid body of some endpoint with one field replaced by a hostile value: reaches the handlers and SQL. */
const VALID_BODIES: ReadonlyArray<Record<string, unknown>> = [
  { sku: "SKU-1", lowStockThreshold: 2 },
  { type: "PURCHASE", quantity: 1, reason: "restock", reference: "po-1" },
  { type: "RECOUNT", quantity: 5, reason: "count" },
  { orderId: "fz-order", lines: [{ variantId: "fz-1", quantity: 1 }], ttlSeconds: 60 }
]
const nearValid = fc
  .tuple(fc.constantFrom(...VALID_BODIES), fc.oneof(text, number, field))
  .chain(([valid, value]) => fc.constantFrom(...Object.keys(valid)).map((key) => JSON.stringify({ ...valid, [key]: value })))

const body = fc.oneof(
  { weight: 4, arbitrary: payload.map((p) => JSON.stringify(p)) },
  { weight: 4, arbitrary: nearValid },
  // duplicated keys: the last one wins in JSON.parse
  fc.tuple(number, number).map(([a, b]) => `{"type":"PURCHASE","quantity":${JSON.stringify(a)},"quantity":${JSON.stringify(b)}}`),
  fc.string({ maxLength: 200 }),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.constantFrom("", "{", "[]", "null", "{\"type\":", "\u0000", "{\"type\":\"PURCHASE\",\"quantity\":1e999}", "{\"__proto__\":{\"quantity\":5}}")
)

const queryPart = fc.oneof(
  fc.tuple(fc.constantFrom("variantId", "status", "limit", "cursor", "x"), fc.oneof(pathSegment, fc.string({ maxLength: 30 }).map(encodeURIComponent))).map(([k, v]) => `${k}=${v}`),
  fc.string({ maxLength: 20 })
)

const headerName = fc.stringMatching(/^x-[a-z0-9-]{1,20}$/)
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,100}$/)
const headers = fc.record(
  {
    // Mostly JSON, so that bodies get past the 415 gate to the schemas and the database.
    "content-type": fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom("application/json", "application/json; charset=utf-8") },
      { weight: 1, arbitrary: fc.constantFrom("text/plain", "application/merge-patch+json", "", "application/x-www-form-urlencoded") }
    ),
    // Tabs and Latin-1 are all a client can put in a header beside printable ASCII.
    "idempotency-key": fc.oneof(headerValue, fc.constantFrom("k".repeat(255), "k".repeat(256), "k".repeat(300), "a\tb", "\t", "caf\u00e9")),
    "x-correlation-id": fc.oneof(headerValue, fc.constantFrom("c".repeat(129), "a\tb", "caf\u00e9")),
    traceparent: headerValue,
    accept: headerValue
  },
  { requiredKeys: ["content-type"] }
).chain((known) => fc.dictionary(headerName, headerValue, { maxKeys: 3 }).map((extra) => ({ ...extra, ...known })))

const requestArb = fc.record({
  route: fc.constantFrom(...routes),
  method: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS") }),
  segment: pathSegment,
  query: fc.array(queryPart, { maxLength: 4 }),
  body: fc.option(body, { nil: undefined }),
  headers,
  auth: fc.oneof({ weight: 5, arbitrary: fc.constant("valid") }, { weight: 1, arbitrary: fc.oneof(fc.constant("none"), headerValue) })
})

describe("fuzzing every endpoint", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "fuzz", env: { RATE_LIMIT_RPS: "0" } })
    for (const known of KNOWN_IDS) {
      expect((await app.api.put(`/v1/stock-levels/${known}`, { lowStockThreshold: 2 })).status).toBe(201)
      expect((await app.api.post(`/v1/stock-levels/${known}/adjustments`, { type: "PURCHASE", quantity: 5 })).status).toBe(200)
    }
  })
  afterAll(() => app?.close())

  /** What every answer must be, whatever was sent. */
  const checkAnswer = (res: { status: number; headers: Headers; body: any }, context: string) => {
    expect(res.status, context).toBeLessThan(500)
    if (res.status >= 400) {
      expect(res.headers.get("content-type"), context).toBe("application/problem+json")
      expect(res.body, context).toMatchObject({ status: res.status, code: expect.any(String), correlationId: expect.any(String) })
    }
    if (res.status === 405) expect(res.headers.get("allow"), context).toMatch(/^[A-Z]+(, [A-Z]+)*$/)
    expect(JSON.stringify(res.body) ?? "", context).not.toMatch(/\bat .+\.(ts|js):\d+|SqlError|stack/)
  }

  it("never answers 5xx, always problem+json on refusal, and keeps the database consistent", async () => {
    const seen = new Map<number, number>()
    await fc.assert(
      fc.asyncProperty(requestArb, async (r) => {
        const method = r.method ?? r.route.method
        const path = r.route.path.replace(/:variantId|:orderId/, r.segment) + (r.query.length > 0 ? `?${r.query.join("&")}` : "")
        const auth = r.auth === "valid" ? app.authHeaders : r.auth === "none" ? {} : { authorization: r.auth }
        const hdrs: Record<string, string> = { ...r.headers, ...auth }
        const canHaveBody = method !== "GET" && method !== "HEAD"
        const res = await request(app.baseUrl, method, path, canHaveBody && r.body !== undefined ? { rawBody: r.body, headers: hdrs } : { headers: hdrs })
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1)
        checkAnswer(res, `${method} ${path} -> ${res.status} ${JSON.stringify(res.body)?.slice(0, 300)}`)
      }),
      { numRuns: 320 }
    )
    // The generator reaches the handlers, not only the gates in front of them.
    for (const status of [200, 400, 401, 404, 405]) expect(seen.get(status) ?? 0, JSON.stringify([...seen])).toBeGreaterThan(0)
    expect(await brokenInvariants(app.database.url)).toEqual([])
  })

  // The broad property above rarely gets a hostile value past every other check; this one sends a
  // valid request of each body-taking endpoint with one field (or the Idempotency-Key) made hostile.
  it("answers 400, not 5xx, to a valid request with one hostile field, and stores nothing it refuses", async () => {
    const targets = [
      { method: "PUT", path: "/v1/stock-levels/fz-new", body: VALID_BODIES[0]! },
      { method: "PUT", path: "/v1/stock-levels/fz-1", body: VALID_BODIES[0]! },
      { method: "POST", path: "/v1/stock-levels/fz-2/adjustments", body: VALID_BODIES[1]! },
      { method: "POST", path: "/v1/stock-levels/fz-2/adjustments", body: VALID_BODIES[2]! },
      { method: "POST", path: "/v1/reservations", body: VALID_BODIES[3]! }
    ]
    const hostile = fc.record({
      target: fc.constantFrom(...targets),
      value: fc.oneof({ weight: 3, arbitrary: shortText }, { weight: 1, arbitrary: text }, { weight: 2, arbitrary: number }),
      pick: fc.nat(),
      idempotencyKey: fc.option(fc.constantFrom("k\tk", "k".repeat(256), "caf\u00e9"), { nil: undefined })
    })
    await fc.assert(
      fc.asyncProperty(hostile, async ({ target, value, pick, idempotencyKey }) => {
        const keys = Object.keys(target.body)
        const sent = { ...target.body, [keys[pick % keys.length]!]: value }
        const headers = { ...app.authHeaders, "content-type": "application/json", ...(idempotencyKey === undefined ? {} : { "idempotency-key": idempotencyKey }) }
        const res = await request(app.baseUrl, target.method, target.path, { rawBody: JSON.stringify(sent), headers })
        checkAnswer(res, `${target.method} ${target.path} ${JSON.stringify(sent).slice(0, 200)} -> ${res.status} ${JSON.stringify(res.body)?.slice(0, 300)}`)
      }),
      { numRuns: 120 }
    )
    expect(await brokenInvariants(app.database.url)).toEqual([])
  })
})
