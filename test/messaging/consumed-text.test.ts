// Consumed envelopes are held to the free-text rules of the HTTP API (issue 10, item 3): a sku with a
// control character is dead-lettered at once naming the field (not after retries, with a SQL error),
// and a correlation id that is not well-formed is replaced, as the X-Correlation-Id header is, instead
// of costing the event its effect.
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { query } from "../support/database.js"

const envelope = (eventType: string, data: unknown, extra: Record<string, unknown> = {}) => ({
  eventId: randomUUID(),
  eventType,
  eventVersion: 1,
  occurredAt: new Date().toISOString(),
  data,
  ...extra
})

describe("consumed events with text PostgreSQL refuses", () => {
  let vhost: TestVhost
  let app: TestApp
  let peer: Peer

  beforeAll(async () => {
    vhost = await createTestVhost("consumed-text")
    app = await startTestApp({ label: "consumed-text", env: { AMQP_URL: vhost.url(), AMQP_CONSUMER_MAX_ATTEMPTS: "3", RATE_LIMIT_RPS: "0" } })
    await eventually(async () => ((await app.api.get("/health/ready")).body?.checks?.broker?.status === "up" ? true : undefined))
    peer = await connectPeer(vhost.url())
  })
  afterAll(async () => {
    await peer?.close()
    await app?.close()
    await vhost?.drop()
  })

  it("dead-letters a ProductVariantCreatedEvent whose sku holds a NUL at once, naming the field", async () => {
    const message = envelope("ProductVariantCreatedEvent", { variantId: "ct-1", sku: "a\u0000b" })
    await peer.publish("product.events", "product.variant_created", message, { messageId: message.eventId })
    const [dead] = await eventually(async () => {
      const found = await peer.drain("inventory.dead-letter")
      return found.length > 0 ? found : undefined
    })
    expect(dead!.properties.messageId).toBe(message.eventId)
    expect(String(dead!.properties.headers!["x-dead-letter-reason"])).toMatch(/invalid ProductVariantCreatedEvent data.*sku.*control characters/)
    expect((await app.api.get("/v1/stock-levels/ct-1")).status).toBe(404)
  })

  it("applies an OrderCancelledEvent whose correlationId (or header) is not well-formed, under a replacement id", async () => {
    for (const [orderId, extra, headers] of [
      ["ct-order-1", { correlationId: "bad\u0000id" }, {}],
      ["ct-order-2", {}, { "x-correlation-id": "bad\u0000header" }]
    ] as const) {
      expect((await app.api.put(`/v1/stock-levels/${orderId}-v`, {})).status).toBe(201)
      expect((await app.api.post(`/v1/stock-levels/${orderId}-v/adjustments`, { type: "PURCHASE", quantity: 5 })).status).toBe(200)
      expect((await app.api.post("/v1/reservations", { orderId, lines: [{ variantId: `${orderId}-v`, quantity: 2 }] })).status).toBe(201)
      const message = envelope("OrderCancelledEvent", { orderId }, extra)
      await peer.publish("order.events", "order.cancelled", message, { messageId: message.eventId, headers })
      await eventually(async () => ((await app.api.get(`/v1/reservations/${orderId}`)).body.status === "RELEASED" ? true : undefined))
      const [entry] = await query<{ correlation_id: string }>(
        app.database.url,
        "SELECT correlation_id FROM inventory_history WHERE variant_id = $1 AND type = 'RELEASE'",
        [`${orderId}-v`]
      )
      expect(entry!.correlation_id).toBe(message.eventId)
    }
    expect(await peer.drain("inventory.dead-letter")).toEqual([])
  })
})
