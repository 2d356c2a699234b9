// Group commit (issue 13) under a SIGKILL: the service killed while reservation batches are in
// flight, then restarted. Nothing is half-applied, every 201 a client got is persisted with all its
// lines and its events are published, and the records reconcile. Classified by test/faults/checker.ts.
import { setTimeout as sleep } from "node:timers/promises"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { connectPeer, createTestVhost, type Peer, type TestVhost } from "../support/broker.js"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"
import { brokenInvariants } from "../support/snapshot.js"
import { check, History, summary } from "./checker.js"
import { AFTER_KILL_DRAIN_MS, brokerUp, change, declareEventsExchange, diagnose, drained, reconcile, type Replica, sinkOn, startReplica, stream } from "./harness.js"

const HOOK_TIMEOUT_MS = 400_000

describe("faults: group commit", { timeout: 300_000 }, () => {
  let database: TestDatabase
  let vhost: TestVhost
  let peer: Peer
  let replica: Replica

  beforeAll(async () => {
    database = await createTestDatabase("faultsbatches")
    vhost = await createTestVhost("faultsbatches")
    peer = await connectPeer(vhost.url())
    await declareEventsExchange(peer)
    replica = await startReplica("batches", {
      DATABASE_URL: database.url,
      AMQP_URL: vhost.url(),
      DB_POOL_MAX: "6",
      OUTBOX_POLL_INTERVAL_MS: "100",
      REQUEST_TIMEOUT_MS: "30000",
      RESERVATION_BATCH_MAX: "64"
    })
    await brokerUp(replica.baseUrl())
  }, HOOK_TIMEOUT_MS)
  afterAll(async () => {
    await replica?.current.kill("SIGKILL")
    await peer?.close()
    await vhost?.drop()
    await database?.drop()
  }, HOOK_TIMEOUT_MS)

  it("SIGKILL with reservation batches in flight, then restart: nothing half-applied, every 201 persisted and published", async () => {
    const sink = await sinkOn(peer)
    const history = new History("batchkill")
    const variants = ["batchkill-0", "batchkill-1", "batchkill-2"]
    for (const id of variants) {
      expect((await change(history, replica.target(), "create", "PUT", `/v1/stock-levels/${id}`, {})).outcome).toBe("ok")
      expect((await change(history, replica.target(), "adjust", "POST", `/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: 100_000 })).outcome).toBe("ok")
    }
    // 48 clients on three hot variants, half of the reservations over two of them: batches are large
    // and overlap, so the kill lands with several of them between their first statement and COMMIT.
    const lines = (i: number) => [
      { variantId: variants[i % 3]!, quantity: 1 },
      ...(i % 2 === 0 ? [{ variantId: variants[(i + 1) % 3]!, quantity: 2 }] : [])
    ]
    const created: Array<{ readonly orderId: string; readonly index: number }> = []
    let stop = false
    const load = stream(48, () => stop, async (i) => {
      const op = await change(history, replica.target(), "reserve", "POST", "/v1/reservations", { orderId: `batchkill-order-${i}`, lines: lines(i) })
      if (op.status === 201) created.push({ orderId: `batchkill-order-${i}`, index: i })
    })
    await sleep(2500)
    await replica.current.kill("SIGKILL")
    stop = true
    await load
    await replica.restart()
    const restartedAt = Date.now()
    const drainedAt = await drained(database.url, sink, history, AFTER_KILL_DRAIN_MS)
    const verdict = check(history, sink.events)
    console.log(summary("group commit, SIGKILLed", verdict, { drainMs: drainedAt === undefined ? "never" : drainedAt - restartedAt }))
    if (drainedAt === undefined) console.log(await diagnose(database.url, replica))
    await sink.close()

    const reserves = history.list().filter((op) => op.kind === "reserve")
    // The kill did land with requests in flight (their outcome unknown to the client).
    expect(reserves.filter((op) => op.outcome === "info").length).toBeGreaterThan(0)
    // Every 201 is there, whole: the reservation row with each of its lines and allocations.
    expect(created.length).toBeGreaterThan(0)
    const stored = await query<{ order_id: string; lines: number; allocated: number }>(
      database.url,
      `SELECT r.order_id, (SELECT count(*)::int FROM reservation_lines l WHERE l.order_id = r.order_id) AS lines,
              (SELECT coalesce(sum(a.quantity), 0)::int FROM reservation_allocations a WHERE a.order_id = r.order_id) AS allocated
         FROM reservations r`
    )
    const storedBy = new Map(stored.map((r) => [r.order_id, r]))
    for (const { orderId, index } of created) {
      const want = lines(index)
      expect(storedBy.get(orderId), orderId).toEqual({ order_id: orderId, lines: want.length, allocated: want.reduce((s, l) => s + l.quantity, 0) })
    }
    // Nothing half-applied: no reservation without lines, stock and history agree, reconcile is clean.
    expect(stored.filter((r) => r.lines === 0)).toEqual([])
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
    expect(await brokenInvariants(database.url)).toEqual([])
    const reconciled = await reconcile(database.url)
    expect(reconciled.code, reconciled.output).toBe(0)
    // And they were batches: several reservations committed by one transaction (one xmin).
    const [largest] = await query<{ n: number }>(
      database.url,
      "SELECT max(n)::int AS n FROM (SELECT count(*) AS n FROM outbox WHERE event_type = 'InventoryReservedEvent' GROUP BY xmin::text) t"
    )
    expect(largest!.n).toBeGreaterThan(1)
  })
})
