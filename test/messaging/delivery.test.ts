import type { ConsumeMessage } from "amqplib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { type BrokerProxy, connectPeer, createTestVhost, eventually, type Peer, startBrokerProxy, type TestVhost } from "../support/broker.js"
import { query } from "../support/database.js"

const brokerStatus = async (app: TestApp) => (await app.api.get("/health/ready")).body?.checks?.broker?.status

const outboxEvents = (app: TestApp) =>
  query<{ event_id: string; published_at: Date | null }>(app.database.url, "SELECT event_id::text, published_at FROM outbox ORDER BY id")

const drained = (app: TestApp) =>
  eventually(async () => ((await outboxEvents(app)).every((row) => row.published_at !== null) ? true : undefined), 60_000, "outbox drained")

/** Runs `count` tasks with at most `concurrency` at a time. */
const pool = async (count: number, concurrency: number, task: (i: number) => Promise<void>) => {
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await task(next++)
    })
  )
}

/** Per variant, the `version`s of its StockLevelChangedEvents in arrival order, first copies only. */
const versionsByVariant = (messages: ReadonlyArray<ConsumeMessage>) => {
  const seen = new Set<string>()
  const out = new Map<string, Array<number>>()
  for (const message of messages) {
    const body = JSON.parse(message.content.toString())
    if (seen.has(body.eventId)) continue
    seen.add(body.eventId)
    if (body.eventType !== "StockLevelChangedEvent") continue
    out.set(body.aggregateId, [...(out.get(body.aggregateId) ?? []), body.data.version])
  }
  return out
}

const ascending = (xs: ReadonlyArray<number>) => xs.every((x, i) => i === 0 || xs[i - 1]! < x)

describe("delivery guarantees against RabbitMQ", () => {
  let vhost: TestVhost
  let peer: Peer
  beforeAll(async () => {
    vhost = await createTestVhost("delivery")
    peer = await connectPeer(vhost.url())
    // The service declares the exchange; a peer binding first needs it to exist with the same arguments.
    await peer.channel.assertExchange("inventory.unrouted", "fanout", { durable: true })
    await peer.channel.assertExchange("inventory.events", "topic", { durable: true, alternateExchange: "inventory.unrouted" })
  })
  afterAll(async () => {
    await peer?.close()
    await vhost?.drop()
  })

  it("publishes each event once and in order per variant with two replicas relaying at once", async () => {
    const { messages } = await peer.collect("inventory.events")
    const env = { AMQP_URL: vhost.url(), OUTBOX_BATCH_SIZE: "16", OUTBOX_POLL_INTERVAL_MS: "50" }
    const a = await startTestApp({ label: "order", env })
    const b = await startTestApp({ database: a.database, env })
    try {
      const variants = Array.from({ length: 6 }, (_, i) => `ord-${i}`)
      for (const id of variants) expect((await a.api.put(`/v1/stock-levels/${id}`, {})).status).toBe(201)
      await pool(240, 12, async (i) => {
        const app = i % 2 === 0 ? a : b
        const res = await app.api.post(`/v1/stock-levels/${variants[i % variants.length]}/adjustments`, {
          type: "PURCHASE",
          quantity: 1
        })
        expect(res.status).toBe(200)
      })
      await drained(a)
      const rows = await outboxEvents(a)
      await eventually(() => (messages.length >= rows.length ? true : undefined), 30_000, "every event")
      const ids = messages.map((m) => m.properties.messageId as string)
      expect(ids.length).toBe(rows.length)
      expect(new Set(ids)).toEqual(new Set(rows.map((r) => r.event_id)))
      const versions = versionsByVariant(messages)
      for (const id of variants) {
        expect(versions.get(id)!.length).toBe(40) // one per purchase, every one in order
        expect(ascending(versions.get(id)!)).toBe(true)
      }
    } finally {
      await b.close()
      await a.close()
    }
  })

  it("loses nothing when the broker connection drops in the middle of a stream of reservations, and drains after it returns", async () => {
    const { messages } = await peer.collect("inventory.events")
    const proxy: BrokerProxy = await startBrokerProxy()
    const app = await startTestApp({ label: "outage", env: { AMQP_URL: vhost.url(proxy.port), OUTBOX_POLL_INTERVAL_MS: "50" } })
    try {
      await eventually(async () => ((await brokerStatus(app)) === "up" ? true : undefined), 30_000, "broker up")
      const variants = Array.from({ length: 4 }, (_, i) => `out-${i}`)
      for (const id of variants) {
        expect((await app.api.put(`/v1/stock-levels/${id}`, {})).status).toBe(201)
        expect((await app.api.post(`/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: 1000 })).status).toBe(200)
      }
      let readyWhileDown: { status: number; broker: string } | undefined
      await pool(200, 4, async (i) => {
        if (i === 60) proxy.cut()
        if (i === 120) {
          const res = await app.api.get("/health/ready")
          readyWhileDown = { status: res.status, broker: res.body.checks.broker.status }
        }
        if (i === 140) proxy.restore()
        const res = await app.api.post("/v1/reservations", {
          orderId: `outage-order-${i}`,
          lines: [{ variantId: variants[i % variants.length], quantity: 1 }]
        })
        expect(res.status).toBe(201)
      })
      // The outbox absorbed the outage: the service stayed ready and said why the broker was down.
      expect(readyWhileDown).toEqual({ status: 200, broker: "down" })
      await drained(app)
      const rows = await outboxEvents(app)
      await eventually(
        () => (new Set(messages.map((m) => m.properties.messageId)).size >= rows.length ? true : undefined),
        30_000,
        "every event after the outage"
      )
      expect(new Set(messages.map((m) => m.properties.messageId))).toEqual(new Set(rows.map((r) => r.event_id)))
      const reserved = new Set(
        messages.filter((m) => m.properties.type === "InventoryReservedEvent").map((m) => JSON.parse(m.content.toString()).aggregateId)
      )
      expect(reserved.size).toBe(200)
      const versions = versionsByVariant(messages)
      for (const id of variants) {
        expect(versions.get(id)!.length).toBe(51) // the purchase and 50 reservations, in order
        expect(ascending(versions.get(id)!)).toBe(true)
      }
      expect(await brokerStatus(app)).toBe("up")
    } finally {
      await app.close()
      await proxy.close()
    }
  })
})
