// Fault cases on the database side: PostgreSQL cut for 5 s, flapped, and stalled past the request
// deadline under a stream of writes; then a flash sale over 300 ms of database round-trip latency.
// The service runs as a child process with the database behind a TCP proxy; events are read from a
// queue of the test's own on `inventory.events` and classified by test/faults/checker.ts.
import { setTimeout as sleep } from "node:timers/promises"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"
import { brokenInvariants } from "../support/snapshot.js"
import type { TcpProxy } from "../support/tcpProxy.js"
import { check, History, summary } from "./checker.js"
import {
  brokerUp,
  change,
  declareEventsExchange,
  diagnose,
  drained,
  proxyFor,
  readiness,
  type Replica,
  sinkOn,
  startReplica,
  stream,
  violations
} from "./harness.js"

/** Starting service processes and vhosts is slow on a loaded 2-core machine. */
const HOOK_TIMEOUT_MS = 400_000

const REQUEST_TIMEOUT_MS = 2000

describe("faults: database", { timeout: 300_000 }, () => {
  let database: TestDatabase
  let vhost: TestVhost
  let peer: Peer
  let db: { proxy: TcpProxy; url: string }
  let replica: Replica | undefined

  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: db.url,
    AMQP_URL: vhost.url(),
    DB_POOL_MAX: "6",
    DB_CONNECT_TIMEOUT_MS: "1000",
    REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    OUTBOX_POLL_INTERVAL_MS: "100",
    ...extra
  })

  /** Readiness returns to 200 by itself (the same process: no restart). */
  const readyAgain = () =>
    eventually(async () => ((await readiness(replica!.baseUrl()).catch(() => ({ status: 0 }))).status === 200 ? true : undefined), 20_000, "ready again")

  beforeAll(async () => {
    database = await createTestDatabase("faultsdb")
    vhost = await createTestVhost("faultsdb")
    peer = await connectPeer(vhost.url())
    await declareEventsExchange(peer)
    db = await proxyFor("database", database.url)
  }, HOOK_TIMEOUT_MS)
  afterAll(async () => {
    await replica?.current.kill("SIGKILL")
    await db?.proxy.close()
    await peer?.close()
    await vhost?.drop()
    await database?.drop()
  }, HOOK_TIMEOUT_MS)

  it("cut 5 s, flapped, stalled past the deadline: 503 with Retry-After or refused (never 500), ready again without a restart, invariants hold, every committed change's events arrive", async () => {
    replica = await startReplica("a", env())
    await brokerUp(replica.baseUrl())
    const pid = replica.current.child.pid
    const sink = await sinkOn(peer)
    const history = new History("dbfault")
    const target = () => replica!.target()
    const variants = Array.from({ length: 4 }, (_, i) => `dbf-${i}`)
    for (const id of variants) {
      expect((await change(history, target(), "create", "PUT", `/v1/stock-levels/${id}`, {})).outcome).toBe("ok")
      expect((await change(history, target(), "adjust", "POST", `/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: 100_000 })).outcome).toBe("ok")
    }
    violations.length = 0
    let stop = false
    const load = stream(6, () => stop, (i) =>
      i % 3 === 0
        ? change(history, target(), "reserve", "POST", "/v1/reservations", { orderId: `dbf-order-${i}`, lines: [{ variantId: variants[i % 4], quantity: 1 }] })
        : change(history, target(), "adjust", "POST", `/v1/stock-levels/${variants[i % 4]}/adjustments`, { type: "PURCHASE", quantity: 1 })
    )
    await sleep(1500)
    await db.proxy.cut("refuse")
    await sleep(5000)
    await db.proxy.restore()
    await readyAgain()
    await sleep(1000)
    await db.proxy.flap({ times: 4, downMs: 500, upMs: 700, mode: "reset" })
    await readyAgain()
    await sleep(1000)
    // A stall: queries reach PostgreSQL (and may commit) but no answer comes back until after the deadline.
    db.proxy.swallowReplies(true)
    await sleep(2 * REQUEST_TIMEOUT_MS)
    await db.proxy.restore()
    const restoredAt = Date.now()
    await readyAgain()
    await sleep(1500)
    stop = true
    await load

    const drainedAt = await drained(database.url, sink, history)
    const verdict = check(history, sink.events)
    const reasons = [...new Set(history.list().filter((op) => op.outcome === "info").map((op) => op.reason))]
    console.log(summary("database cut/flap/stall", verdict, { reasons: reasons.join("|"), drainMs: drainedAt === undefined ? "never" : drainedAt - restoredAt }))
    if (drainedAt === undefined) console.log(await diagnose(database.url, replica))
    await sink.close()

    expect(replica.current.child.pid).toBe(pid) // never restarted
    expect(violations).toEqual([]) // no 500, no 503 without Retry-After
    // The client saw an answer or a refused connection, never a hang (our own 15 s timeout).
    expect(reasons.filter((r) => r !== "503" && r !== "ECONNREFUSED")).toEqual([])
    expect(history.count("info")).toBeGreaterThan(0) // the faults were felt
    expect(await brokenInvariants(database.url)).toEqual([])
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
  })

  it("flash sale over 300 ms database latency: no oversell, no lost event", async () => {
    // Buyers queue for a connection instead of getting 503s: this case is about the stock rule, not timeouts.
    await replica?.current.kill("SIGTERM")
    replica = await startReplica("flash", env({ REQUEST_TIMEOUT_MS: "30000", DB_CONNECT_TIMEOUT_MS: "25000", DB_POOL_MAX: "10" }))
    await brokerUp(replica.baseUrl())
    const sink = await sinkOn(peer)
    const history = new History("flash")
    const target = replica.target()
    const stock = 20
    expect((await change(history, target, "create", "PUT", "/v1/stock-levels/flash-1", {})).outcome).toBe("ok")
    expect((await change(history, target, "adjust", "POST", "/v1/stock-levels/flash-1/adjustments", { type: "PURCHASE", quantity: stock })).outcome).toBe("ok")
    violations.length = 0
    db.proxy.setLatency(150) // each way: 300 ms per round trip
    let n = 0
    await stream(30, () => n >= 60, () =>
      change(history, target, "reserve", "POST", "/v1/reservations", { orderId: `flash-order-${n++}`, lines: [{ variantId: "flash-1", quantity: 1 }] })
    )
    db.proxy.setLatency(0)
    const drainedAt = await drained(database.url, sink, history)
    const verdict = check(history, sink.events)
    const reserves = history.list().filter((op) => op.kind === "reserve")
    const won = reserves.filter((op) => op.status === 201).length
    console.log(summary("flash sale at 300 ms latency", verdict, { won, refused: reserves.filter((op) => op.status === 409).length }))
    if (drainedAt === undefined) console.log(await diagnose(database.url, replica))
    await sink.close()

    expect(violations).toEqual([])
    const [level] = await query(database.url, "SELECT on_hand, reserved FROM stock_levels WHERE variant_id = 'flash-1'")
    const [active] = await query(database.url, "SELECT count(*)::int AS n FROM reservations WHERE status = 'ACTIVE' AND order_id LIKE 'flash-order-%'")
    expect(won).toBeLessThanOrEqual(stock)
    expect(active!.n).toBe(stock) // 60 buyers for 20 units: every unit sold, none twice
    expect(level!.reserved).toBe(active!.n)
    expect(level!.reserved).toBeLessThanOrEqual(level!.on_hand)
    expect(await brokenInvariants(database.url)).toEqual([])
    expect(verdict.lost).toEqual([])
    expect(verdict.unexpected).toEqual([])
    expect(verdict.outOfOrder).toEqual([])
    expect(drainedAt).toBeDefined()
  })
})
