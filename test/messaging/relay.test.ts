import { SqlClient } from "effect/sql"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  inventoryReservationCommitted,
  inventoryReservationFailed,
  inventoryReservationReleased,
  inventoryReserved,
  routingKeys
} from "../../src/domain/Events.js"
import { Outbox } from "../../src/outbox/Outbox.js"
import { CurrentRequest } from "../../src/services/RequestContext.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
const traceparent = `00-${TRACE_ID}-00f067aa0ba902b7-01`

const brokerUp = (app: TestApp) =>
  eventually(async () => {
    const res = await app.api.get("/health/ready")
    return res.body?.checks?.broker?.status === "up" ? true : undefined
  }, 30_000, "broker connection")

const pendingRows = async (app: TestApp) =>
  Number((await query<{ n: string }>(app.database.url, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL"))[0]!.n)

describe("outbox relay against RabbitMQ", () => {
  let vhost: TestVhost
  let app: TestApp
  let peer: Peer

  beforeAll(async () => {
    vhost = await createTestVhost("relay")
    app = await startTestApp({ label: "relay", env: { AMQP_URL: vhost.url(), OUTBOX_POLL_INTERVAL_MS: "100" } })
    await brokerUp(app)
    peer = await connectPeer(vhost.url())
  })
  afterAll(async () => {
    await peer?.close()
    await app?.close()
    await vhost?.drop()
  })

  it("publishes every event type once with the envelope and AMQP properties of EVENTS.md", async () => {
    const { queue, messages } = await peer.collect("inventory.events")
    const api = client(app.baseUrl, { ...app.authHeaders,  traceparent, "x-correlation-id": "corr-stock" })
    expect((await api.put("/v1/stock-levels/ev-1", { sku: "SKU-1" })).status).toBe(201)
    expect((await api.post("/v1/stock-levels/ev-1/adjustments", { type: "PURCHASE", quantity: 7 })).status).toBe(200)
    expect((await api.put("/v1/locations/ev-store", { name: "Event store" })).status).toBe(201)
    await app.run(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const outbox = yield* Outbox
        const lines = [{ variantId: "ev-1", quantity: 2 }]
        yield* sql.withTransaction(
          outbox.write([
            inventoryReserved("order-1", lines, new Date("2026-01-01T00:15:00.000Z")),
            inventoryReservationReleased("order-1", lines, "RELEASED"),
            inventoryReservationFailed("order-2", [{ variantId: "ev-1", requested: 99, available: 7, reason: "INSUFFICIENT_STOCK" }]),
            inventoryReservationCommitted("order-3", lines)
          ])
        )
        yield* outbox.committed
      }).pipe(Effect.provideService(CurrentRequest, { correlationId: "corr-res", actor: null }), Effect.withSpan("test.write"))
    )
    await eventually(() => (messages.length >= 7 ? true : undefined), 20_000, "seven events")
    await eventually(async () => ((await pendingRows(app)) === 0 ? true : undefined), 20_000, "outbox drained")

    expect(messages.map((m) => m.properties.type).sort()).toEqual(Object.keys(routingKeys).sort())
    const rows = await query<{ event_id: string; published_at: Date | null }>(app.database.url, "SELECT event_id, published_at FROM outbox")
    expect(new Set(messages.map((m) => m.properties.messageId))).toEqual(new Set(rows.map((r) => r.event_id)))
    expect(rows.every((r) => r.published_at !== null)).toBe(true)
    // One log line per confirmed event: type, id, destination, correlation.
    const published = app.logs().map((l) => JSON.parse(l)).filter((l) => l.message === "event published")
    expect(new Set(published.map((l) => l.eventId))).toEqual(new Set(rows.map((r) => r.event_id)))
    expect(published.find((l) => l.eventType === "StockLevelChangedEvent")).toMatchObject({
      exchange: "inventory.events",
      routingKey: "inventory.stock_level_changed",
      correlationId: "corr-stock",
      level: "info"
    })

    for (const message of messages) {
      const body = JSON.parse(message.content.toString("utf8"))
      const type = message.properties.type as keyof typeof routingKeys
      expect(Object.keys(body).sort()).toEqual(
        ["aggregateId", "aggregateType", "correlationId", "data", "eventId", "eventType", "eventVersion", "occurredAt"]
      )
      expect(body.eventType).toBe(type)
      expect(body.eventVersion).toBe(1)
      expect(message.fields.exchange).toBe("inventory.events")
      expect(message.fields.routingKey).toBe(routingKeys[type])
      expect(message.properties).toMatchObject({
        messageId: body.eventId,
        contentType: "application/json",
        deliveryMode: 2,
        appId: "inventory-service",
        timestamp: Math.floor(Date.parse(body.occurredAt) / 1000)
      })
      expect(message.properties.headers!["x-correlation-id"]).toBe(body.correlationId)
      expect(message.properties.headers!["traceparent"]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
    }

    const byType = new Map(messages.map((m) => [m.properties.type as string, m]))
    expect(JSON.parse(byType.get("LocationUpsertedEvent")!.content.toString())).toMatchObject({
      aggregateType: "Location",
      aggregateId: "ev-store",
      data: { locationId: "ev-store", name: "Event store", priority: 100, active: true }
    })
    const stock = byType.get("StockLevelChangedEvent")!
    expect(JSON.parse(stock.content.toString())).toMatchObject({
      aggregateType: "StockLevel",
      aggregateId: "ev-1",
      correlationId: "corr-stock",
      data: { variantId: "ev-1", onHand: 7, reserved: 0, available: 7, version: 2, changeType: "PURCHASE", onHandChange: 7, reservedChange: 0 }
    })
    // The HTTP request's trace continues into the event.
    expect(stock.properties.headers!["traceparent"]).toContain(TRACE_ID)
    expect(JSON.parse(byType.get("StockStatusChangedEvent")!.content.toString()).data).toEqual({
      variantId: "ev-1",
      oldStatus: "OUT_OF_STOCK",
      newStatus: "IN_STOCK",
      available: 7
    })
    expect(JSON.parse(byType.get("InventoryReservedEvent")!.content.toString())).toMatchObject({
      aggregateType: "Reservation",
      aggregateId: "order-1",
      correlationId: "corr-res",
      data: { orderId: "order-1", lines: [{ variantId: "ev-1", quantity: 2 }], expiresAt: "2026-01-01T00:15:00.000Z" }
    })
    expect(JSON.parse(byType.get("InventoryReservationReleasedEvent")!.content.toString()).data.reason).toBe("RELEASED")
    await peer.channel.deleteQueue(queue)
  })

  it("keeps unroutable events in inventory.unrouted instead of dropping them", async () => {
    // Nothing is bound for this routing key; the alternate exchange keeps the message.
    await app.run(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const outbox = yield* Outbox
        yield* sql.withTransaction(outbox.write([inventoryReservationCommitted("order-unrouted", [])]))
        yield* outbox.committed
      })
    )
    const kept = await eventually(async () => {
      const all = await peer.drain("inventory.unrouted")
      const hit = all.find((m) => JSON.parse(m.content.toString()).aggregateId === "order-unrouted")
      return hit
    }, 20_000, "the unrouted event")
    expect(kept.properties.type).toBe("InventoryReservationCommittedEvent")
    await eventually(async () => ((await pendingRows(app)) === 0 ? true : undefined), 20_000, "outbox drained")
  })
})
