import { randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../../scripts/otlp-receiver.mjs"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

const hex = (bytes: number) => randomBytes(bytes).toString("hex")

/** The spans of one trace, with helpers to walk from a span up to its ancestors. */
const traceOf = (spans: ReadonlyArray<ReceivedSpan>, traceId: string) => {
  const mine = spans.filter((s) => s.traceId === traceId)
  const byId = new Map(mine.map((s) => [s.spanId, s]))
  const ancestors = (span: ReceivedSpan): Array<ReceivedSpan> => {
    const parent = span.parentSpanId === null ? undefined : byId.get(span.parentSpanId)
    return parent === undefined ? [] : [parent, ...ancestors(parent)]
  }
  return { spans: mine, ancestors }
}

describe("tracing: one request, one trace, exported over OTLP/HTTP", () => {
  let receiver: OtlpReceiver
  let app: TestApp
  // The caller's trace (W3C traceparent): the service must continue it, not start its own.
  const traceId = hex(16)
  const callerSpanId = hex(8)
  const refusedTraceId = hex(16)
  let outboxTraceparents: Array<string | null> = []

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    app = await startTestApp({ label: "tracing", env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, DEPLOYMENT_ENVIRONMENT: "ci" } })
    const api = client(app.baseUrl)
    expect((await api.put("/v1/stock-levels/traced-1", {})).status).toBe(201)
    const applied = await api.post(
      "/v1/stock-levels/traced-1/adjustments",
      { type: "PURCHASE", quantity: 3 },
      { traceparent: `00-${traceId}-${callerSpanId}-01` }
    )
    expect(applied.status).toBe(200)
    const refused = await api.post(
      "/v1/stock-levels/traced-1/adjustments",
      { type: "SALE", quantity: 99 },
      { traceparent: `00-${refusedTraceId}-${hex(8)}-01` }
    )
    expect(refused.status).toBe(409)
    expect((await api.get("/health/ready")).status).toBe(200)
    expect((await api.get("/metrics")).status).toBe(200)
    if (process.env["PRINT_TRACES"]) console.log(JSON.stringify(receiver.spans, null, 1))
    outboxTraceparents = (await query<{ traceparent: string | null }>(app.database.url, "SELECT traceparent FROM outbox")).map(
      (r) => r.traceparent
    )
    // Closing the app flushes the span processor: every span has reached the receiver afterwards.
    await app.close()
  })
  afterAll(() => receiver?.close())

  it("continues the caller's traceparent: the server span is a child of the caller's span", () => {
    const { spans } = traceOf(receiver.spans, traceId)
    const server = spans.find((s) => s.kind === "SERVER")
    expect(server).toBeDefined()
    expect(server!.parentSpanId).toBe(callerSpanId)
    expect(server!.attributes).toMatchObject({
      "http.request.method": "POST",
      "http.route": "/v1/stock-levels/:variantId/adjustments",
      "http.response.status_code": 200
    })
  })

  it("chains HTTP → service operation → SQL statements, with their attributes", () => {
    const { spans, ancestors } = traceOf(receiver.spans, traceId)
    const server = spans.find((s) => s.kind === "SERVER")!
    const operation = spans.find((s) => s.name === "Adjustments.adjust")
    expect(operation).toBeDefined()
    expect(ancestors(operation!).map((s) => s.spanId)).toContain(server.spanId)
    expect(operation!.attributes).toMatchObject({ "inventory.variant_id": "traced-1", "inventory.outcome": "applied" })
    const statements = spans.filter((s) => s.name === "sql.execute")
    expect(statements.length).toBeGreaterThan(0)
    for (const statement of statements) {
      expect(statement.kind).toBe("CLIENT")
      expect(statement.attributes["db.system"]).toBe("postgresql")
      expect(ancestors(statement).map((s) => s.spanId)).toContain(operation!.spanId)
    }
    // The UPDATE of the stock level is one of them, with its text (parameters are never inlined).
    expect(statements.some((s) => String(s.attributes["db.query.text"]).includes("UPDATE stock_levels"))).toBe(true)
  })

  it("names the service, its version and the environment on every span", () => {
    const { spans } = traceOf(receiver.spans, traceId)
    for (const span of spans) {
      expect(span.resource).toMatchObject({ "service.name": "inventory-service", "deployment.environment": "ci" })
      expect(span.resource["service.version"]).toMatch(/^\d+\.\d+\.\d+/)
    }
  })

  it("records a refused operation on its span: error status, the typed failure, the outcome", () => {
    const { spans } = traceOf(receiver.spans, refusedTraceId)
    const operation = spans.find((s) => s.name === "Adjustments.adjust")!
    expect(operation.status.code).toBe("ERROR")
    expect(operation.attributes).toMatchObject({ "inventory.outcome": "refused", "inventory.refusal": "InsufficientStock" })
    expect(operation.events.some((e) => e.name === "exception")).toBe(true)
    const server = spans.find((s) => s.kind === "SERVER")!
    expect(server.attributes["http.response.status_code"]).toBe(409)
  })

  it("stores the transaction's traceparent with each outbox event, so its consumer continues the trace", () => {
    const ofTrace = outboxTraceparents.filter((tp) => tp?.split("-")[1] === traceId)
    expect(ofTrace.length).toBeGreaterThan(0)
    const spanIds = new Set(traceOf(receiver.spans, traceId).spans.map((s) => s.spanId))
    for (const tp of ofTrace) expect(spanIds.has(tp!.split("-")[2]!)).toBe(true)
  })

  it("does not trace probes and scrapes", () => {
    expect(receiver.spans.length).toBeGreaterThan(0)
    const paths = receiver.spans.map((s) => String(s.attributes["url.path"] ?? ""))
    expect(paths.filter((p) => p.startsWith("/health") || p === "/metrics")).toEqual([])
  })
})
