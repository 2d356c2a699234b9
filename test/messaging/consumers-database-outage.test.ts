// The order consumer while the database is away: a 30 s cut (TCP proxy in front of the real
// PostgreSQL) while 50 order events arrive on the real RabbitMQ. Nothing may be dead-lettered (a
// dead-lettered OrderShippedEvent never commits its reservation, which then expires and is sold
// twice); once the database is back every event is applied, exactly once, within seconds.
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { ADMIN_URL, query } from "../support/database.js"
import { startTcpProxy, type TcpProxy } from "../support/tcpProxy.js"

const VARIANTS = 10
const ORDERS_PER_VARIANT = 5
const OUTAGE_MS = 30_000

describe("order consumer during a database outage", () => {
  let vhost: TestVhost
  let proxy: TcpProxy
  let app: TestApp
  let peer: Peer

  beforeAll(async () => {
    const admin = new URL(ADMIN_URL)
    proxy = await startTcpProxy({ host: admin.hostname, port: Number(admin.port || 5432) })
    vhost = await createTestVhost("consumeroutage")
    app = await startTestApp({
      label: "consumeroutage",
      env: { AMQP_URL: vhost.url(), DB_CONNECT_TIMEOUT_MS: "1000", DB_POOL_MAX: "4" },
      databaseUrl: (database) => {
        const url = new URL(database.url)
        url.host = `127.0.0.1:${proxy.port}`
        return url.toString()
      }
    })
    await eventually(async () => ((await app.api.get("/health/ready")).body?.checks?.broker?.status === "up" ? true : undefined))
    peer = await connectPeer(vhost.url())
  })
  afterAll(async () => {
    await proxy?.restore()
    await peer?.close()
    await app?.close()
    await proxy?.close()
    await vhost?.drop()
  })

  it("dead-letters nothing while the database is cut for 30 s, then applies all 50 events exactly once within 10 s", async () => {
    const orders: Array<{ readonly orderId: string; readonly variantId: string; readonly ship: boolean }> = []
    for (let v = 0; v < VARIANTS; v++) {
      const variantId = `dbo-${v}`
      expect((await app.api.put(`/v1/stock-levels/${variantId}`, {})).status).toBe(201)
      expect((await app.api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: 10 })).status).toBe(200)
      for (let o = 0; o < ORDERS_PER_VARIANT; o++) {
        const order = { orderId: `dbo-order-${v}-${o}`, variantId, ship: (v + o) % 2 === 0 }
        const res = await app.api.post("/v1/reservations", { orderId: order.orderId, lines: [{ variantId, quantity: 1 }] })
        expect(res.status).toBe(201)
        orders.push(order)
      }
    }
    const events = orders.map((order) => {
      const eventType = order.ship ? "OrderShippedEvent" : "OrderCancelledEvent"
      const eventId = randomUUID()
      return {
        order,
        eventId,
        eventType,
        body: {
          eventId,
          eventType,
          eventVersion: 1,
          occurredAt: new Date().toISOString(),
          aggregateType: "Order",
          aggregateId: order.orderId,
          correlationId: `corr-${eventId.slice(0, 8)}`,
          data: { orderId: order.orderId }
        }
      }
    })

    await proxy.cut("refuse")
    const cutAt = Date.now()
    // The events arrive during the outage, spread over its first seconds.
    for (const [i, event] of events.entries()) {
      await peer.publish("order.events", event.order.ship ? "order.shipped" : "order.cancelled", event.body, {
        messageId: event.eventId,
        type: event.eventType
      })
      if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 500))
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - cutAt))))
    // Still waiting on the broker (held by the consumer or queued), none in the dead-letter queue.
    expect((await peer.channel.checkQueue("inventory.dead-letter")).messageCount).toBe(0)
    expect(app.logs().filter((line) => line.includes("consumer: message dead-lettered"))).toEqual([])
    expect(app.logs().some((line) => line.includes("consumer: database unavailable, message kept for retry"))).toBe(true)

    await proxy.restore()
    const restoredAt = Date.now()
    const ids = events.map((e) => e.eventId)
    await eventually(
      async () => {
        const [row] = await query<{ n: string }>(app.database.url, "SELECT count(*) AS n FROM inbox WHERE message_id = ANY($1)", [ids])
        return Number(row!.n) === events.length ? true : undefined
      },
      20_000,
      "all 50 events in the inbox"
    )
    expect(Date.now() - restoredAt).toBeLessThan(10_000)

    // Each applied exactly once: its reservation settled as the event says, the stock counted once.
    const statuses = await query<{ order_id: string; status: string }>(
      app.database.url,
      "SELECT order_id, status FROM reservations WHERE order_id = ANY($1)",
      [orders.map((o) => o.orderId)]
    )
    const byOrder = new Map(statuses.map((r) => [r.order_id, r.status]))
    for (const order of orders) expect(byOrder.get(order.orderId), order.orderId).toBe(order.ship ? "COMMITTED" : "RELEASED")
    for (let v = 0; v < VARIANTS; v++) {
      const variantId = `dbo-${v}`
      const shipped = orders.filter((o) => o.variantId === variantId && o.ship).length
      expect((await app.api.get(`/v1/stock-levels/${variantId}`)).body).toMatchObject({ onHand: 10 - shipped, reserved: 0 })
    }
    expect(await peer.drain("inventory.dead-letter")).toEqual([])
    await eventually(async () => ((await peer.channel.checkQueue("inventory-service.order-events")).messageCount === 0 ? true : undefined))
  })
})
