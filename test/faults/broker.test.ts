// Fault cases on the publishing side (test/faults/checker.ts classifies): the broker cut under a
// stream of writes, a one-way partition that swallows confirms, SIGKILL with an outbox backlog, and
// SIGKILL in the middle of draining one. The service runs as a child process, the broker behind a
// TCP proxy; the events are read from a queue of the test's own on `inventory.events`.
import { setTimeout as sleep } from "node:timers/promises"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { connectPeer, createTestVhost, type Peer, type TestVhost } from "../support/broker.js"
import { createTestDatabase, type TestDatabase } from "../support/database.js"
import type { TcpProxy } from "../support/tcpProxy.js"
import { check, History, summary } from "./checker.js"
import { AFTER_KILL_DRAIN_MS, brokerUp, diagnose, change, declareEventsExchange, drained, type EventSink, pendingOutbox, proxyFor, type Replica, sinkOn, startReplica, stream } from "./harness.js"

/** Starting service processes and vhosts is slow on a loaded 2-core machine. */
const HOOK_TIMEOUT_MS = 400_000

const VARIANTS = 4

describe("faults: broker", { timeout: 300_000 }, () => {
  let database: TestDatabase
  let vhost: TestVhost
  let peer: Peer
  let broker: { proxy: TcpProxy; url: string }
  let replica: Replica | undefined
  let sink: EventSink

  const env = () => ({
    DATABASE_URL: database.url,
    AMQP_URL: broker.url,
    DB_POOL_MAX: "4",
    OUTBOX_POLL_INTERVAL_MS: "100",
    OUTBOX_BATCH_SIZE: "50"
  })

  /** Creates the variants of one case, each with plenty of stock. */
  const setup = async (history: History, prefix: string) => {
    const target = replica!.target()
    const variants = Array.from({ length: VARIANTS }, (_, i) => `${prefix}-${i}`)
    for (const id of variants) {
      expect((await change(history, target, "create", "PUT", `/v1/stock-levels/${id}`, {})).outcome).toBe("ok")
    }
    return variants
  }

  const purchase = (history: History, variants: ReadonlyArray<string>) => (i: number) =>
    change(history, replica!.target(), "adjust", "POST", `/v1/stock-levels/${variants[i % variants.length]}/adjustments`, {
      type: "PURCHASE",
      quantity: 1
    })

  beforeAll(async () => {
    database = await createTestDatabase("faultsbroker")
    vhost = await createTestVhost("faultsbroker")
    peer = await connectPeer(vhost.url())
    await declareEventsExchange(peer)
    const base = new URL(vhost.url())
    broker = await proxyFor("broker", base.toString())
    replica = await startReplica("a", env())
    await brokerUp(replica.baseUrl())
  }, HOOK_TIMEOUT_MS)
  afterEach(async () => {
    await sink?.close()
  })
  afterAll(async () => {
    await replica?.current.kill("SIGKILL")
    await broker?.proxy.close()
    await peer?.close()
    await vhost?.drop()
    await database?.drop()
  }, HOOK_TIMEOUT_MS)

  it("broker cut for 10 s under a stream of writes: every write succeeds, 0 lost, 0 unexpected, order kept", async () => {
    sink = await sinkOn(peer)
    const history = new History("cut")
    const variants = await setup(history, "cut")
    let stop = false
    let restoredAt = 0
    const load = stream(4, () => stop, purchase(history, variants))
    await sleep(1500)
    await broker.proxy.cut("refuse")
    await sleep(10_000)
    await broker.proxy.restore()
    restoredAt = Date.now()
    await sleep(1500)
    stop = true
    await load
    const drainedAt = await drained(database.url, sink, history)
    const verdict = check(history, sink.events)
    if (drainedAt === undefined) console.log(await diagnose(database.url, replica!))
    console.log(summary("broker cut 10 s", verdict, { drainMs: drainedAt === undefined ? "never" : drainedAt - restoredAt }))
    // The outbox absorbs the outage: no write is refused or delayed into a 503.
    expect(history.list().filter((op) => op.outcome !== "ok").map((op) => `${op.correlationId} ${op.reason}`)).toEqual([])
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
  })

  it("a one-way partition that swallows confirms: duplicates allowed and counted, nothing lost", async () => {
    sink = await sinkOn(peer)
    const history = new History("swallow")
    const variants = await setup(history, "swallow")
    let stop = false
    const load = stream(4, () => stop, purchase(history, variants))
    await sleep(1000)
    // The broker gets (and routes) every publish, but neither its confirms nor its heartbeats come back.
    broker.proxy.swallowReplies(true)
    await sleep(5000)
    await broker.proxy.restore()
    const restoredAt = Date.now()
    await sleep(1500)
    stop = true
    await load
    const drainedAt = await drained(database.url, sink, history)
    const verdict = check(history, sink.events)
    if (drainedAt === undefined) console.log(await diagnose(database.url, replica!))
    console.log(summary("one-way broker partition", verdict, { drainMs: drainedAt === undefined ? "never" : drainedAt - restoredAt }))
    expect(history.list().filter((op) => op.outcome !== "ok").map((op) => `${op.correlationId} ${op.reason}`)).toEqual([])
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
  })

  /**
   * A backlog quickly, even on a slow machine: reservations of one unit of each of 20 variants, each
   * writing 21 events (InventoryReservedEvent and a StockLevelChangedEvent per variant).
   */
  const backlog = async (history: History, prefix: string, reservations: number) => {
    const variants = Array.from({ length: 20 }, (_, i) => `${prefix}-${i}`)
    for (const id of variants) {
      expect((await change(history, replica!.target(), "create", "PUT", `/v1/stock-levels/${id}`, {})).outcome).toBe("ok")
      expect((await change(history, replica!.target(), "adjust", "POST", `/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: 1000 })).outcome).toBe("ok")
    }
    await broker.proxy.cut("refuse")
    let n = 0
    await stream(4, () => n >= reservations, () => {
      const orderId = `${prefix}-order-${n++}`
      return change(history, replica!.target(), "reserve", "POST", "/v1/reservations", { orderId, lines: variants.map((variantId) => ({ variantId, quantity: 1 })) })
    })
    expect(history.list().filter((op) => op.outcome !== "ok")).toEqual([])
    expect(await pendingOutbox(database.url)).toBeGreaterThanOrEqual(reservations * 21)
  }

  it("SIGKILL with an outbox backlog, then restart: 0 lost", async () => {
    sink = await sinkOn(peer)
    const history = new History("backlog")
    await backlog(history, "backlog", 20)
    await replica!.current.kill("SIGKILL")
    await broker.proxy.restore()
    replica = await startReplica("a", env())
    const restartedAt = Date.now()
    const drainedAt = await drained(database.url, sink, history, AFTER_KILL_DRAIN_MS)
    const verdict = check(history, sink.events)
    if (drainedAt === undefined) console.log(await diagnose(database.url, replica!))
    console.log(summary("SIGKILL with backlog", verdict, { drainMs: drainedAt === undefined ? "never" : drainedAt - restartedAt }))
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
  })

  it("SIGKILL in the middle of draining a backlog, then restart: 0 lost, order kept", async () => {
    sink = await sinkOn(peer)
    const history = new History("middrain")
    await backlog(history, "middrain", 40)
    // A slow path to the broker makes the drain take seconds, so that the kill lands inside it.
    await broker.proxy.restore() // (restore also ends any latency: set it after)
    broker.proxy.setLatency(30)
    const deadline = Date.now() + 60_000
    while (sink.events.length < 60 && Date.now() < deadline) await sleep(10)
    await replica!.current.kill("SIGKILL")
    broker.proxy.setLatency(0)
    const pendingAtKill = await pendingOutbox(database.url)
    replica = await startReplica("a", env())
    const restartedAt = Date.now()
    const drainedAt = await drained(database.url, sink, history, AFTER_KILL_DRAIN_MS)
    const verdict = check(history, sink.events)
    if (drainedAt === undefined) console.log(await diagnose(database.url, replica!))
    console.log(summary("SIGKILL mid-drain", verdict, { pendingAtKill, drainMs: drainedAt === undefined ? "never" : drainedAt - restartedAt }))
    expect(pendingAtKill).toBeGreaterThan(0) // the kill did land in the middle of the drain
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
  })
})
