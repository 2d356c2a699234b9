import { Effect, Layer, Tracer } from "effect"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { AccessLog, LoggingLive, PublishedEventsLog } from "../../src/layers/Logging.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { bearer } from "../support/auth.js"
import { client } from "../support/http.js"
import { secretsIn } from "../support/redaction.js"

const CORE = ["timestamp", "level", "message", "service", "correlationId", "traceId", "spanId"]

describe("logging: JSON lines with correlation and trace ids", () => {
  let app: TestApp
  const password = "pw-Zr8qLx2"
  // A real token the service accepts (test/support/auth.ts), so the requests below do their work.
  let token = ""

  beforeAll(async () => {
    token = (await bearer("inventory:read inventory:adjust", "order-service")).authorization.slice("Bearer ".length)
    // A password in the database URL (trust authentication ignores it) must never reach a log line.
    const withPassword = (database: { url: string }) => {
      const url = new URL(database.url)
      url.password = password
      return url.toString()
    }
    app = await startTestApp({ label: "logging", secrets: [password, token], databaseUrl: withPassword })
    const api = client(app.baseUrl, { authorization: `Bearer ${token}`, cookie: "session=s3cr3t" })
    await api.put("/v1/stock-levels/log-1", { lowStockThreshold: 1 }, { "x-correlation-id": "corr-log-create" })
    await api.post("/v1/stock-levels/log-1/adjustments", { type: "PURCHASE", quantity: 3 }, { "x-correlation-id": "corr-log-purchase" })
    await api.post("/v1/stock-levels/log-1/adjustments", { type: "SALE", quantity: 9 }, { "x-correlation-id": "corr-log-refused" })
    await api.raw("POST", "/v1/stock-levels/log-1/adjustments", `{"password":"${password}"`, { "content-type": "application/json" })
  })
  afterAll(() => app?.close())

  const lines = () => app.logs().map((line) => JSON.parse(line) as Record<string, unknown>)

  it("writes every line as JSON with timestamp, level, message, service, correlationId, traceId, spanId", () => {
    expect(lines().length).toBeGreaterThan(5)
    for (const line of lines()) {
      for (const key of CORE) expect(line, JSON.stringify(line)).toHaveProperty(key)
      expect(line["service"]).toBe("inventory-service")
    }
  })

  it("writes one access line per request with method, route template, status and duration, no headers", () => {
    const access = lines().filter((l) => l["message"] === "http request" && l["correlationId"] === "corr-log-purchase")
    expect(access).toHaveLength(1)
    expect(access[0]).toMatchObject({ method: "POST", route: "/v1/stock-levels/:variantId/adjustments", status: 200 })
    expect(typeof access[0]!["durationMs"]).toBe("number")
    expect(JSON.stringify(access[0])).not.toMatch(/authorization|cookie|user-agent/i)
  })

  it("carries the request's correlation id and trace id on the business lines", () => {
    const ofPurchase = lines().filter((l) => l["correlationId"] === "corr-log-purchase")
    const updated = ofPurchase.find((l) => l["message"] === "stock updated")
    expect(updated).toMatchObject({ variantId: "log-1", type: "PURCHASE", onHandChange: 3, onHand: 3 })
    expect(ofPurchase.find((l) => l["message"] === "stock status changed")).toMatchObject({
      oldStatus: "OUT_OF_STOCK",
      newStatus: "IN_STOCK"
    })
    // One request, one trace: every line of it names the same trace.
    const traces = new Set(ofPurchase.map((l) => l["traceId"]))
    expect(traces.size).toBe(1)
    expect([...traces][0]).toMatch(/^[0-9a-f]{32}$/)
    const refused = lines().find((l) => l["correlationId"] === "corr-log-refused" && l["message"] === "stock adjustment refused")
    expect(refused).toMatchObject({ refusal: "InsufficientStock", quantity: 9 })
  })

  it("logs no token, password, Authorization or cookie value", () => {
    expect(secretsIn(app.logs(), [password, token, "s3cr3t"])).toEqual([])
  })
})

describe("logging: LOG_LEVEL", () => {
  it("drops lines below the configured level", () => {
    const written: Array<string> = []
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      written.push(String(chunk))
      return true
    })
    try {
      Effect.runSync(
        Effect.all([Effect.logDebug("d"), Effect.logInfo("i"), Effect.logWarning("w"), Effect.logError("e")]).pipe(
          Effect.provide(Layer.mergeAll(LoggingLive("Warn")))
        )
      )
    } finally {
      spy.mockRestore()
    }
    const levels = written.map((line) => JSON.parse(line).level)
    expect(levels).toEqual(["warn", "error"])
  })
})

/** What `run` writes to stdout, one entry per write. */
const written = (run: () => void) => {
  const chunks: Array<string> = []
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    chunks.push(String(chunk))
    return true
  })
  try {
    run()
  } finally {
    spy.mockRestore()
  }
  return chunks
}

describe("logging: the access line's own writer", () => {
  const fields = {
    correlationId: 'c-"1"',
    traceId: null,
    spanId: null,
    actor: "order-service",
    method: "GET",
    route: "/v1/stock-levels/:variantId",
    path: "/v1/stock-levels/v-\u00e9",
    status: 200,
    durationMs: 1.234
  }

  it("writes the same JSON line as the Effect logger would for `http request`", () => {
    const fast = written(() =>
      Effect.runSync(Effect.flatMap(Effect.service(AccessLog), (write) => Effect.sync(() => write!(fields))).pipe(Effect.provide(LoggingLive("Info"))))
    )
    const { traceId: _t, spanId: _s, correlationId, ...annotations } = fields
    const viaLogger = written(() =>
      Effect.runSync(Effect.logInfo("http request").pipe(Effect.annotateLogs({ correlationId, ...annotations }), Effect.provide(LoggingLive("Info"))))
    )
    expect(fast).toHaveLength(1)
    const strip = (line: string) => line.replace(/"timestamp":"[^"]*"/, "")
    expect(strip(fast[0]!)).toBe(strip(viaLogger[0]!))
  })

  it("writes nothing above info", () => {
    expect(written(() => Effect.runSync(Effect.flatMap(Effect.service(AccessLog), (write) => Effect.sync(() => write!(fields))).pipe(Effect.provide(LoggingLive("Warn")))))).toEqual([])
  })
})

describe("logging: the relay's event published lines", () => {
  const events = [
    { correlationId: "c-1", eventId: "e-1", eventType: "InventoryReservedEvent", aggregateId: 'order "1"', exchange: "inventory.events", routingKey: "inventory.reserved" },
    { correlationId: null, eventId: "e-2", eventType: "StockLevelChangedEvent", aggregateId: "v-\u00e9", exchange: "inventory.events", routingKey: "inventory.stock_level_changed" }
  ]
  const span = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" }
  const fastWrite = (minimum: "Info" | "Warn") =>
    written(() =>
      Effect.runSync(
        Effect.flatMap(Effect.service(PublishedEventsLog), (write) => Effect.sync(() => write!(events, span))).pipe(Effect.provide(LoggingLive(minimum)))
      )
    )

  it("writes, in one write, the same JSON lines as the Effect logger would in the batch's span", () => {
    const fast = fastWrite("Info")
    expect(fast).toHaveLength(1)
    const viaLogger = written(() =>
      Effect.runSync(
        Effect.forEach(events, ({ correlationId, ...fields }) =>
          Effect.logInfo("event published").pipe(Effect.annotateLogs({ ...fields, correlationId }))
        ).pipe(Effect.withParentSpan(Tracer.externalSpan(span)), Effect.provide(LoggingLive("Info")))
      )
    )
    const strip = (text: string) => text.replace(/"timestamp":"[^"]*"/g, "")
    expect(viaLogger).toHaveLength(2)
    expect(strip(fast[0]!)).toBe(strip(viaLogger.join("")))
    expect(fast[0]!.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line).eventId)).toEqual(["e-1", "e-2"])
  })

  it("writes nothing above info", () => {
    expect(fastWrite("Warn")).toEqual([])
  })
})
