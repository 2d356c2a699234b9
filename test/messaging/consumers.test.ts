import { randomUUID } from "node:crypto"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { query } from "../support/database.js"

const envelope = (eventType: string, data: unknown, eventId = randomUUID()) => ({
  eventId,
  eventType,
  eventVersion: 1,
  occurredAt: new Date().toISOString(),
  aggregateType: "Product",
  aggregateId: "p-1",
  correlationId: `corr-${eventId.slice(0, 8)}`,
  data
})

describe("event consumers against RabbitMQ", () => {
  let vhost: TestVhost
  let app: TestApp
  let peer: Peer

  const inboxCount = async (messageId: string) =>
    Number((await query<{ n: string }>(app.database.url, "SELECT count(*) AS n FROM inbox WHERE message_id = $1", [messageId]))[0]!.n)

  const queueDepth = async (queue: string) => (await peer.channel.checkQueue(queue)).messageCount

  /** Waits until the service has taken and acknowledged everything in its queue. */
  const settled = (queue: string) =>
    eventually(async () => {
      const { messageCount } = await peer.channel.checkQueue(queue)
      return messageCount === 0 ? true : undefined
    }, 30_000, `${queue} empty`)

  beforeAll(async () => {
    vhost = await createTestVhost("consumers")
    app = await startTestApp({ label: "consumers", env: { AMQP_URL: vhost.url(), AMQP_CONSUMER_MAX_ATTEMPTS: "2", DB_STATEMENT_TIMEOUT_MS: "1000" } })
    await eventually(async () => ((await app.api.get("/health/ready")).body?.checks?.broker?.status === "up" ? true : undefined))
    peer = await connectPeer(vhost.url())
  })
  afterAll(async () => {
    await peer?.close()
    await app?.close()
    await vhost?.drop()
  })

  it("creates the stock level of a ProductVariantCreatedEvent, and a redelivery of it changes nothing", async () => {
    const message = envelope("ProductVariantCreatedEvent", { variantId: "pv-1", sku: "SKU-PV-1" })
    await peer.publish("product.events", "product.variant_created", message, { messageId: message.eventId, type: message.eventType })
    const created = await eventually(async () => {
      const res = await app.api.get("/v1/stock-levels/pv-1")
      return res.status === 200 ? res.body : undefined
    })
    expect(created).toMatchObject({ variantId: "pv-1", sku: "SKU-PV-1", onHand: 0, reserved: 0 })
    expect((await app.api.post("/v1/stock-levels/pv-1/adjustments", { type: "PURCHASE", quantity: 4 })).status).toBe(200)

    // The same message again (a redelivery): recorded once, the stock untouched.
    await peer.publish("product.events", "product.variant_created", message, { messageId: message.eventId, type: message.eventType })
    await settled("inventory-service.product-events")
    expect(await inboxCount(message.eventId)).toBe(1)
    expect((await app.api.get("/v1/stock-levels/pv-1")).body).toMatchObject({ onHand: 4, version: 2 })
    expect(await queueDepth("inventory.dead-letter")).toBe(0)
  })

  it("moves an unparseable message to the dead-letter queue with the reason", async () => {
    await peer.publish("product.events", "product.variant_created", "{not json", { messageId: "poison-1" })
    const [dead] = await eventually(async () => {
      const found = await peer.drain("inventory.dead-letter")
      return found.length > 0 ? found : undefined
    })
    expect(dead!.content.toString()).toBe("{not json")
    expect(dead!.properties.messageId).toBe("poison-1")
    expect(dead!.properties.headers).toMatchObject({
      "x-original-queue": "inventory-service.product-events",
      "x-original-routing-key": "product.variant_created"
    })
    expect(String(dead!.properties.headers!["x-dead-letter-reason"])).toMatch(/^unparseable: body is not JSON/)
    expect(await inboxCount("poison-1")).toBe(0)
  })

  it("dead-letters an event whose data breaks the contract, naming the field", async () => {
    const message = envelope("ProductVariantCreatedEvent", { variantId: "has spaces", sku: "X" })
    await peer.publish("product.events", "product.variant_created", message, { messageId: message.eventId })
    const [dead] = await eventually(async () => {
      const found = await peer.drain("inventory.dead-letter")
      return found.length > 0 ? found : undefined
    })
    expect(dead!.properties.messageId).toBe(message.eventId)
    expect(String(dead!.properties.headers!["x-dead-letter-reason"])).toMatch(/invalid ProductVariantCreatedEvent data.*variantId/)
    expect((await app.api.get("/v1/stock-levels/has%20spaces")).status).not.toBe(200)
  })

  it("keeps consuming after a poison message", async () => {
    const message = envelope("ProductVariantCreatedEvent", { variantId: "pv-2", sku: null })
    await peer.publish("product.events", "product.variant_created", message, { messageId: message.eventId })
    const level = await eventually(async () => {
      const res = await app.api.get("/v1/stock-levels/pv-2")
      return res.status === 200 ? res.body : undefined
    })
    expect(level).toMatchObject({ variantId: "pv-2", sku: null, onHand: 0 })
  })

  describe("order events", () => {
    const api = () => app.api
    const reserve = async (orderId: string, variantId: string, quantity: number) => {
      expect((await api().put(`/v1/stock-levels/${variantId}`, {})).status).toBeLessThan(300)
      expect((await api().post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: 10 })).status).toBe(200)
      const res = await api().post("/v1/reservations", { orderId, lines: [{ variantId, quantity }] })
      expect(res.status).toBe(201)
    }
    const reservationStatus = (orderId: string) => api().get(`/v1/reservations/${orderId}`).then((res) => res.body.status)
    const historyCount = async (variantId: string) =>
      Number((await query<{ n: string }>(app.database.url, "SELECT count(*) AS n FROM inventory_history WHERE variant_id = $1", [variantId]))[0]!.n)

    it("an OrderCancelledEvent releases the reservation, and its redelivery changes nothing", async () => {
      await reserve("order-cancel-1", "oc-1", 3)
      expect((await api().get("/v1/stock-levels/oc-1")).body).toMatchObject({ onHand: 10, reserved: 3 })
      const message = envelope("OrderCancelledEvent", { orderId: "order-cancel-1" })
      await peer.publish("order.events", "order.cancelled", message, { messageId: message.eventId, type: message.eventType })
      await eventually(async () => ((await reservationStatus("order-cancel-1")) === "RELEASED" ? true : undefined))
      expect((await api().get("/v1/stock-levels/oc-1")).body).toMatchObject({ onHand: 10, reserved: 0, available: 10 })
      const entries = await historyCount("oc-1")

      await peer.publish("order.events", "order.cancelled", message, { messageId: message.eventId, type: message.eventType })
      await settled("inventory-service.order-events")
      expect(await inboxCount(message.eventId)).toBe(1)
      expect(await historyCount("oc-1")).toBe(entries)
      expect((await api().get("/v1/stock-levels/oc-1")).body).toMatchObject({ onHand: 10, reserved: 0 })
    })

    it("an OrderShippedEvent commits the reservation: the units leave reserved and onHand", async () => {
      await reserve("order-ship-1", "os-1", 4)
      const message = envelope("OrderShippedEvent", { orderId: "order-ship-1" })
      await peer.publish("order.events", "order.shipped", message, { messageId: message.eventId, type: message.eventType })
      await eventually(async () => ((await reservationStatus("order-ship-1")) === "COMMITTED" ? true : undefined))
      expect((await api().get("/v1/stock-levels/os-1")).body).toMatchObject({ onHand: 6, reserved: 0, available: 6 })
    })

    it("publishes the reservation's events with the correlation id of the order event that caused them", async () => {
      const { queue, messages } = await peer.collect("inventory.events", "inventory.reservation_released")
      await reserve("order-cancel-2", "oc-2", 1)
      const message = envelope("OrderCancelledEvent", { orderId: "order-cancel-2" })
      await peer.publish("order.events", "order.cancelled", message, { messageId: message.eventId })
      const released = await eventually(() => messages.find((m) => JSON.parse(m.content.toString()).aggregateId === "order-cancel-2"))
      expect(released.properties.headers!["x-correlation-id"]).toBe(message.correlationId)
      expect(JSON.parse(released.content.toString()).data).toMatchObject({ orderId: "order-cancel-2", reason: "RELEASED" })
      await peer.channel.deleteQueue(queue)
    })

    it("acknowledges a shipment of an order without reservation as refused, without dead-lettering it", async () => {
      const message = envelope("OrderShippedEvent", { orderId: "order-unknown" })
      await peer.publish("order.events", "order.shipped", message, { messageId: message.eventId })
      await settled("inventory-service.order-events")
      await eventually(async () => ((await inboxCount(message.eventId)) === 1 ? true : undefined))
      expect(await peer.drain("inventory.dead-letter")).toEqual([])
    })

    it("keeps retrying an order event blocked by a lock (statement timeout), and applies it once the lock is gone", async () => {
      await reserve("order-locked", "ol-1", 1)
      // Another transaction holds the reservation: every attempt runs into the statement timeout (57014),
      // which passes by itself, so the message is kept and retried instead of dead-lettered.
      const locker = new pg.Client({ connectionString: app.database.url })
      await locker.connect()
      const message = envelope("OrderCancelledEvent", { orderId: "order-locked" })
      try {
        await locker.query("BEGIN")
        await locker.query("SELECT * FROM reservations WHERE order_id = $1 FOR UPDATE", ["order-locked"])
        await peer.publish("order.events", "order.cancelled", message, { messageId: message.eventId })
        // Well past AMQP_CONSUMER_MAX_ATTEMPTS (2) attempts of 1 s each.
        await eventually(
          () => (app.logs().filter((line) => line.includes("message kept for retry") && line.includes(message.eventId)).length >= 3 ? true : undefined),
          30_000,
          "three retried attempts"
        )
        expect(await reservationStatus("order-locked")).toBe("ACTIVE")
      } finally {
        await locker.query("ROLLBACK")
        await locker.end()
      }
      await eventually(async () => ((await reservationStatus("order-locked")) === "RELEASED" ? true : undefined))
      expect(await inboxCount(message.eventId)).toBe(1)
      expect((await peer.drain("inventory.dead-letter")).map((m) => m.properties.messageId)).not.toContain(message.eventId)
    })

    it("dead-letters at once an event whose data the database refuses (a NUL byte: data exception, class 22)", async () => {
      const message = envelope("ProductVariantCreatedEvent", { variantId: "pv-nul", sku: "SKU\u0000NUL" })
      await peer.publish("product.events", "product.variant_created", message, { messageId: message.eventId })
      const dead = await eventually(async () => (await peer.drain("inventory.dead-letter")).find((m) => m.properties.messageId === message.eventId))
      expect(dead.properties.headers).toMatchObject({ "x-original-queue": "inventory-service.product-events", "x-attempts": "1" })
      expect(String(dead.properties.headers!["x-dead-letter-reason"])).toMatch(/sku|22021/i)
      expect((await api().get("/v1/stock-levels/pv-nul")).status).toBe(404)
    })
  })
})
