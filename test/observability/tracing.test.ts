import type { ConsumeMessage } from "amqplib"
import { randomBytes, randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../../scripts/otlp-receiver.mjs"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { query } from "../support/database.js"

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

/**
 * The group-commit batch that decided a request (its own trace, linked both ways with the request's
 * span), with the SQL statements it ran.
 */
const batchOf = (spans: ReadonlyArray<ReceivedSpan>, request: ReceivedSpan) => {
  const batch = spans.find((s) => s.name === "ReservationBatch" && s.links.some((l) => l.spanId === request.spanId && l.traceId === request.traceId))
  if (batch === undefined) return undefined
  const { spans: batchTrace, ancestors } = traceOf(spans, batch.traceId)
  const statements = batchTrace.filter((s) => s.name === "sql.execute" && ancestors(s).some((a) => a.spanId === batch.spanId))
  return { batch, statements }
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
    const api = app.api
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
    // The UPDATE of the location's stock row is one of them, with its text (parameters are never inlined).
    expect(statements.some((s) => String(s.attributes["db.query.text"]).includes("UPDATE location_stock"))).toBe(true)
  })

  it("names the service, its version and the environment on every span", () => {
    const { spans } = traceOf(receiver.spans, traceId)
    for (const span of spans) {
      expect(span.resource).toMatchObject({ "service.name": "inventory-service", "deployment.environment.name": "ci" })
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

describe("tracing across messaging: reservation → outbox publish → RabbitMQ → consumer", () => {
  let receiver: OtlpReceiver
  let vhost: TestVhost
  let peer: Peer
  let app: TestApp
  // The reservation's trace (from the HTTP caller), a refused reservation's, and the order service's.
  const reserveTrace = hex(16)
  const reserveCallerSpan = hex(8)
  const refusedTrace = hex(16)
  const cancelTrace = hex(16)
  const cancelPublisherSpan = hex(8)
  const cancelEventId = randomUUID()
  let published: Array<ConsumeMessage> = []
  let reservedMessage: ConsumeMessage
  let releasedMessage: ConsumeMessage

  const eventOf = (m: ConsumeMessage) => JSON.parse(m.content.toString()) as { eventType: string; aggregateId: string }

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    vhost = await createTestVhost("tracing")
    app = await startTestApp({
      label: "tracing-messaging",
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, AMQP_URL: vhost.url() }
    })
    await eventually(async () => ((await app.api.get("/health/ready")).body?.checks?.broker?.status === "up" ? true : undefined))
    peer = await connectPeer(vhost.url())
    const collected = await peer.collect("inventory.events")
    published = collected.messages

    const api = app.api
    expect((await api.put("/v1/stock-levels/traced-r1", {})).status).toBe(201)
    expect((await api.post("/v1/stock-levels/traced-r1/adjustments", { type: "PURCHASE", quantity: 5 })).status).toBe(200)
    const reserved = await api.post(
      "/v1/reservations",
      { orderId: "traced-order-1", lines: [{ variantId: "traced-r1", quantity: 2 }] },
      { traceparent: `00-${reserveTrace}-${reserveCallerSpan}-01` }
    )
    expect(reserved.status).toBe(201)
    const refused = await api.post(
      "/v1/reservations",
      { orderId: "traced-order-2", lines: [{ variantId: "traced-r1", quantity: 50 }] },
      { traceparent: `00-${refusedTrace}-${hex(8)}-01` }
    )
    expect(refused.status).toBe(409)
    reservedMessage = await eventually(
      () => published.find((m) => eventOf(m).eventType === "InventoryReservedEvent"),
      30_000,
      "InventoryReservedEvent"
    )

    // The order service cancels the order, in its own trace: the release continues that trace.
    await peer.publish(
      "order.events",
      "order.cancelled",
      {
        eventId: cancelEventId,
        eventType: "OrderCancelledEvent",
        eventVersion: 1,
        occurredAt: new Date().toISOString(),
        aggregateType: "Order",
        aggregateId: "traced-order-1",
        correlationId: "traced-cancel",
        data: { orderId: "traced-order-1" }
      },
      { messageId: cancelEventId, type: "OrderCancelledEvent", headers: { traceparent: `00-${cancelTrace}-${cancelPublisherSpan}-01` } }
    )
    releasedMessage = await eventually(
      () => published.find((m) => eventOf(m).eventType === "InventoryReservationReleasedEvent"),
      30_000,
      "InventoryReservationReleasedEvent"
    )
    if (process.env["PRINT_TRACES"]) console.log(JSON.stringify(receiver.spans, null, 1))
    // Closing the app flushes the span processor: every span has reached the receiver afterwards.
    await app.close()
  })
  afterAll(async () => {
    await peer?.close()
    await vhost?.drop()
    await receiver?.close()
  })

  it("chains a reservation's HTTP span → Reservations.create (order id, outcome), linked to its batch and the batch's SQL statements", () => {
    const { spans, ancestors } = traceOf(receiver.spans, reserveTrace)
    const server = spans.find((s) => s.kind === "SERVER")!
    expect(server.parentSpanId).toBe(reserveCallerSpan)
    expect(server.attributes).toMatchObject({ "http.route": "/v1/reservations", "http.response.status_code": 201 })
    const create = spans.find((s) => s.name === "Reservations.create")!
    expect(create).toBeDefined()
    expect(ancestors(create).map((s) => s.spanId)).toContain(server.spanId)
    expect(create.attributes).toMatchObject({ "inventory.order_id": "traced-order-1", "inventory.outcome": "created" })
    const decided = batchOf(receiver.spans, create)
    expect(decided).toBeDefined()
    const { batch, statements } = decided!
    // The request's span links back to the batch, so ops can walk from either side.
    expect(create.links).toContainEqual({ traceId: batch.traceId, spanId: batch.spanId })
    expect(batch.attributes["inventory.batch.size"]).toBeGreaterThanOrEqual(1)
    expect(statements.length).toBeGreaterThan(0)
    for (const statement of statements) expect(statement.attributes["db.system"]).toBe("postgresql")
    expect(statements.some((s) => String(s.attributes["db.query.text"]).includes("INSERT INTO reservations"))).toBe(true)
  })

  it("records a refused reservation on its span: error status, the typed failure, the outcome", () => {
    const { spans } = traceOf(receiver.spans, refusedTrace)
    const create = spans.find((s) => s.name === "Reservations.create")!
    expect(create.status.code).toBe("ERROR")
    expect(create.attributes).toMatchObject({
      "inventory.order_id": "traced-order-2",
      "inventory.outcome": "refused",
      "inventory.refusal": "ReservationRefused"
    })
    expect(create.events.some((e) => e.name === "exception")).toBe(true)
  })

  it("publishes the InventoryReservedEvent under a producer span in the reservation's trace", () => {
    expect(String(reservedMessage.properties.headers!["traceparent"]).split("-")[1]).toBe(reserveTrace)
    const { spans, ancestors } = traceOf(receiver.spans, reserveTrace)
    const publish = spans.find((s) => s.name === "publish InventoryReservedEvent")
    expect(publish).toBeDefined()
    expect(publish!.kind).toBe("PRODUCER")
    expect(publish!.status.code).not.toBe("ERROR")
    expect(publish!.attributes).toMatchObject({
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "send",
      "messaging.operation.name": "publish",
      "messaging.destination.name": "inventory.events",
      "messaging.rabbitmq.destination.routing_key": "inventory.reserved",
      "messaging.message.id": reservedMessage.properties.messageId
    })
    // Its parent is the transaction that wrote the event, under the reservation's HTTP span.
    const server = spans.find((s) => s.kind === "SERVER")!
    expect(ancestors(publish!).map((s) => s.spanId)).toContain(server.spanId)
  })

  it("continues the order service's trace in the consume span; the release is its child, linked to the batch that ran its SQL", () => {
    const { spans, ancestors } = traceOf(receiver.spans, cancelTrace)
    const consume = spans.find((s) => s.name === "consume OrderCancelledEvent")
    expect(consume).toBeDefined()
    expect(consume!.kind).toBe("CONSUMER")
    expect(consume!.parentSpanId).toBe(cancelPublisherSpan)
    expect(consume!.attributes).toMatchObject({
      "messaging.system": "rabbitmq",
      "messaging.operation.type": "process",
      "messaging.destination.name": "inventory-service.order-events",
      "messaging.message.id": cancelEventId
    })
    const release = spans.find((s) => s.name === "Reservations.release")!
    expect(ancestors(release).map((s) => s.spanId)).toContain(consume!.spanId)
    expect(release.attributes).toMatchObject({ "inventory.order_id": "traced-order-1", "inventory.outcome": "released" })
    const decided = batchOf(receiver.spans, release)
    expect(decided).toBeDefined()
    expect(decided!.statements.some((s) => String(s.attributes["db.query.text"]).includes("UPDATE reservations"))).toBe(true)
  })

  it("publishes the resulting InventoryReservationReleasedEvent in that same trace", () => {
    const traceparent = String(releasedMessage.properties.headers!["traceparent"])
    expect(traceparent.split("-")[1]).toBe(cancelTrace)
    const { spans, ancestors } = traceOf(receiver.spans, cancelTrace)
    const consume = spans.find((s) => s.name === "consume OrderCancelledEvent")!
    // The stored traceparent names a span of the consumer's transaction, which the publish span continues.
    const writer = spans.find((s) => s.spanId === traceparent.split("-")[2])
    expect(writer).toBeDefined()
    expect(ancestors(writer!).map((s) => s.spanId)).toContain(consume.spanId)
    const publish = spans.find((s) => s.name === "publish InventoryReservationReleasedEvent")!
    expect(publish.parentSpanId).toBe(writer!.spanId)
  })
})
