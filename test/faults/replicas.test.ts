// Fault cases with two replicas of the service on one database and one vhost (child processes):
// one SIGKILLed and restarted mid-stream, a rolling SIGTERM of both under load, and order events
// redelivered around a SIGKILL. Classified by test/faults/checker.ts; reconciled with `npm run reconcile`.
import { randomUUID } from "node:crypto"
import { setTimeout as sleep } from "node:timers/promises"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"
import { brokenInvariants } from "../support/snapshot.js"
import { check, History, summary } from "./checker.js"
import { AFTER_KILL_DRAIN_MS, brokerUp, change, declareEventsExchange, diagnose, drained, reconcile, type Replica, sinkOn, startReplica, stream } from "./harness.js"

/** Starting service processes and vhosts is slow on a loaded 2-core machine. */
const HOOK_TIMEOUT_MS = 400_000

describe("faults: two replicas", { timeout: 300_000 }, () => {
  let database: TestDatabase
  let vhost: TestVhost
  let peer: Peer
  let a: Replica
  let b: Replica

  const env = () => ({
    DATABASE_URL: database.url,
    AMQP_URL: vhost.url(),
    DB_POOL_MAX: "4",
    OUTBOX_POLL_INTERVAL_MS: "100",
    OUTBOX_BATCH_SIZE: "50",
    REQUEST_TIMEOUT_MS: "30000"
  })

  beforeAll(async () => {
    database = await createTestDatabase("faultsreplicas")
    vhost = await createTestVhost("faultsreplicas")
    peer = await connectPeer(vhost.url())
    await declareEventsExchange(peer)
    a = await startReplica("a", env())
    b = await startReplica("b", env())
    await Promise.all([brokerUp(a.baseUrl()), brokerUp(b.baseUrl())])
  }, HOOK_TIMEOUT_MS)
  // A case that failed half-way may leave a replica down: the next one starts from two running.
  beforeEach(async () => {
    for (const replica of [a, b]) {
      if (replica.current.child.exitCode === null && replica.current.child.signalCode === null) continue
      await replica.restart()
      await brokerUp(replica.baseUrl())
    }
  }, HOOK_TIMEOUT_MS)
  afterAll(async () => {
    await a?.current.kill("SIGKILL")
    await b?.current.kill("SIGKILL")
    await peer?.close()
    await vhost?.drop()
    await database?.drop()
  }, HOOK_TIMEOUT_MS)

  const variantsOf = async (history: History, prefix: string, onHand = 0) => {
    const variants = Array.from({ length: 4 }, (_, i) => `${prefix}-${i}`)
    for (const id of variants) {
      expect((await change(history, a.target(), "create", "PUT", `/v1/stock-levels/${id}`, {})).outcome).toBe("ok")
      if (onHand > 0) {
        expect((await change(history, a.target(), "adjust", "POST", `/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: onHand })).outcome).toBe("ok")
      }
    }
    return variants
  }

  /** Half purchases, a third reservations (each of its own order), spread over the routable replicas. */
  const write = (history: History, variants: ReadonlyArray<string>, routable: () => ReadonlyArray<Replica>) => (i: number) => {
    const replicas = routable()
    const target = replicas[i % replicas.length]!.target()
    const variantId = variants[i % variants.length]!
    return i % 3 === 0
      ? change(history, target, "reserve", "POST", "/v1/reservations", { orderId: `${history.prefix}-order-${i}`, lines: [{ variantId, quantity: 1 }] })
      : change(history, target, "adjust", "POST", `/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: 1 })
  }

  it("one of two replicas SIGKILLed and restarted mid-stream: 0 lost, order kept, reconcile clean", async () => {
    const sink = await sinkOn(peer)
    const history = new History("kill2")
    const variants = await variantsOf(history, "kill2", 10_000)
    let routable: ReadonlyArray<Replica> = [a, b]
    let stop = false
    const load = stream(6, () => stop, write(history, variants, () => routable))
    await sleep(2000)
    // Killed with requests in flight (their outcome is unknown); the load balancer then sends to b only.
    await a.current.kill("SIGKILL")
    routable = [b]
    await sleep(1500)
    await a.restart()
    const restartedAt = Date.now()
    routable = [a, b]
    await sleep(2000)
    stop = true
    await load
    const drainedAt = await drained(database.url, sink, history, AFTER_KILL_DRAIN_MS)
    const verdict = check(history, sink.events)
    console.log(summary("two replicas, one SIGKILLed", verdict, { drainMs: drainedAt === undefined ? "never" : drainedAt - restartedAt }))
    if (drainedAt === undefined) console.log(await diagnose(database.url, a), "\n", await diagnose(database.url, b))
    await sink.close()
    // Only requests in flight at the kill may have no answer.
    expect(history.list().filter((op) => op.outcome !== "ok" && op.target !== "a").map((op) => `${op.correlationId} ${op.reason}`)).toEqual([])
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
    expect(await brokenInvariants(database.url)).toEqual([])
    const reconciled = await reconcile(database.url)
    expect(reconciled.code, reconciled.output).toBe(0)
  })

  it("a rolling SIGTERM of both replicas under load: no request sent before the signal fails, 0 lost", async () => {
    const sink = await sinkOn(peer)
    const history = new History("roll")
    const variants = await variantsOf(history, "roll", 10_000)
    let routable: ReadonlyArray<Replica> = [a, b]
    let stop = false
    const load = stream(6, () => stop, write(history, variants, () => routable))
    const exits: Array<number | null> = []
    for (const replica of [a, b]) {
      await sleep(1500)
      // As Kubernetes does: the pod stops getting new requests, and gets SIGTERM, at the same moment.
      routable = [replica === a ? b : a]
      exits.push(await replica.current.kill("SIGTERM"))
      await replica.restart()
      routable = [a, b]
    }
    await sleep(1500)
    stop = true
    await load
    const drainedAt = await drained(database.url, sink, history)
    const verdict = check(history, sink.events)
    console.log(summary("rolling SIGTERM", verdict))
    if (drainedAt === undefined) console.log(await diagnose(database.url, a), "\n", await diagnose(database.url, b))
    await sink.close()
    expect(exits).toEqual([0, 0])
    // Every request reached a replica before its signal: each must have succeeded.
    expect(history.list().filter((op) => op.outcome !== "ok").map((op) => `${op.correlationId} ${op.target} ${op.reason}`)).toEqual([])
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
  })

  it("order events redelivered around a SIGKILL: each applied exactly once", async () => {
    const sink = await sinkOn(peer)
    const history = new History("redeliver")
    const [variantId] = await variantsOf(history, "redeliver", 1000)
    const orders = Array.from({ length: 40 }, (_, i) => `redeliver-order-${i}`)
    for (const orderId of orders) {
      const op = await change(history, a.target(), "reserve", "POST", "/v1/reservations", { orderId, lines: [{ variantId, quantity: 1 }] })
      expect(op.status).toBe(201)
    }
    // Even orders are cancelled, odd ones shipped; every message is published twice (a peer's retry).
    const messages = orders.map((orderId, i) => {
      const eventType = i % 2 === 0 ? "OrderCancelledEvent" : "OrderShippedEvent"
      const eventId = randomUUID()
      const body = { eventId, eventType, eventVersion: 1, occurredAt: new Date().toISOString(), aggregateType: "Order", aggregateId: orderId, correlationId: `redeliver-${i}`, data: { orderId } }
      return { routingKey: i % 2 === 0 ? "order.cancelled" : "order.shipped", body }
    })
    const publishAll = async () => {
      for (const m of messages) await peer.publish("order.events", m.routingKey, m.body, { messageId: m.body.eventId, type: m.body.eventType })
    }
    await publishAll()
    await publishAll()
    // Killed while it holds unacknowledged deliveries (prefetch): the broker redelivers them to b, or to a again.
    await eventually(async () => {
      const [row] = await query(database.url, "SELECT count(*)::int AS n FROM inbox WHERE message_id = ANY($1)", [messages.map((m) => m.body.eventId)])
      return row!.n >= 5 ? true : undefined
    }, 30_000, "consumption started")
    await a.current.kill("SIGKILL")
    await a.restart()
    await publishAll() // and a redelivery after the restart
    await eventually(async () => {
      const [row] = await query(database.url, "SELECT count(*)::int AS n FROM reservations WHERE order_id = ANY($1) AND status = 'ACTIVE'", [orders])
      const { messageCount } = await peer.channel.checkQueue("inventory-service.order-events")
      return row!.n === 0 && messageCount === 0 ? true : undefined
    }, 60_000, "every order event applied")
    await sleep(1000) // let any late redelivery land before counting

    const statuses = await query<{ order_id: string; status: string }>(database.url, "SELECT order_id, status FROM reservations WHERE order_id = ANY($1)", [orders])
    const expected = new Map(orders.map((o, i) => [o, i % 2 === 0 ? "RELEASED" : "COMMITTED"]))
    expect(statuses.filter((r) => r.status !== expected.get(r.order_id))).toEqual([])
    const applied = await query<{ order_id: string; n: number }>(
      database.url,
      "SELECT order_id, count(*)::int AS n FROM inventory_history WHERE order_id = ANY($1) AND type IN ('RELEASE','COMMIT') GROUP BY order_id",
      [orders]
    )
    expect(applied.length).toBe(orders.length)
    expect(applied.filter((r) => r.n !== 1)).toEqual([])
    const [level] = await query(database.url, "SELECT on_hand, reserved FROM stock_levels WHERE variant_id = $1", [variantId])
    expect(level).toEqual({ on_hand: 1000 - orders.length / 2, reserved: 0 })
    expect((await peer.channel.checkQueue("inventory.dead-letter")).messageCount).toBe(0)
    // The broker sees one release or commit event per order (copies of one eventId allowed).
    await drained(database.url, sink, history, AFTER_KILL_DRAIN_MS)
    await eventually(() => {
      const ends = new Set(sink.events.filter((e) => e.eventType === "InventoryReservationReleasedEvent" || e.eventType === "InventoryReservationCommittedEvent").map((e) => e.eventId))
      return ends.size >= orders.length ? true : undefined
    }, 30_000, "every release and commit event").catch(() => undefined)
    const ends = new Map<string, Set<string>>()
    for (const e of sink.events) {
      if (e.eventType !== "InventoryReservationReleasedEvent" && e.eventType !== "InventoryReservationCommittedEvent") continue
      ends.set(e.aggregateId, (ends.get(e.aggregateId) ?? new Set()).add(e.eventId))
    }
    await sink.close()
    expect(orders.filter((o) => ends.get(o)?.size !== 1)).toEqual([])
    expect(await brokenInvariants(database.url)).toEqual([])
  })
})
