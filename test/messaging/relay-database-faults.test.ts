// The outbox relay under database faults: the service reaches PostgreSQL through a TCP proxy the
// test cuts, flaps and slows while a stream of writes goes on. Whatever happens, every committed
// change's events reach RabbitMQ within 15 s of the database's return, in per-aggregate order, and
// the relay's loop is still alive (no restart needed).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ConsumeMessage } from "amqplib"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { ADMIN_URL, query } from "../support/database.js"
import { startTcpProxy, type TcpProxy } from "../support/tcpProxy.js"

const VARIANTS = ["fault-a", "fault-b", "fault-c", "fault-d"]
/** The bound: events of every committed change arrive this long after the database is back. */
const ARRIVAL_MS = 15_000

describe("outbox relay under database faults", () => {
  let proxy: TcpProxy
  let vhost: TestVhost
  let app: TestApp
  let peer: Peer
  let messages: Array<ConsumeMessage>

  const post = (path: string, body: unknown) =>
    fetch(app.baseUrl + path, {
      method: "POST",
      signal: AbortSignal.timeout(15_000),
      headers: { ...app.authHeaders, "content-type": "application/json" },
      body: JSON.stringify(body)
    })
      .then(async (response) => {
        await response.arrayBuffer()
        return response.status
      })
      .catch(() => 0)

  /** About 40 writes a second over a few variants until stopped; answers during a fault may be 503. */
  const writeStream = () => {
    let running = true
    const statuses: Array<number> = []
    const done = (async () => {
      let n = 0
      while (running) {
        const variant = VARIANTS[n++ % VARIANTS.length]!
        statuses.push(await post(`/v1/stock-levels/${variant}/adjustments`, { type: "PURCHASE", quantity: 1 }))
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    })()
    return {
      stop: async () => {
        running = false
        await done
        return statuses
      }
    }
  }

  /**
   * Every row the database committed (read directly, not through the proxy) has arrived; for each
   * aggregate the first arrivals follow commit (id) order.
   */
  const expectAllDeliveredInOrder = async (label: string) => {
    const rows = await query<{ id: string; event_id: string; aggregate_id: string }>(
      app.database.url,
      "SELECT id::text, event_id::text, aggregate_id FROM outbox ORDER BY id"
    )
    const arrived = await eventually(
      () => {
        const seen = new Set(messages.map((m) => m.properties.messageId as string))
        return rows.every((row) => seen.has(row.event_id)) ? seen : undefined
      },
      ARRIVAL_MS,
      `${label}: all ${rows.length} committed events at the broker (${rows.length - new Set(messages.map((m) => m.properties.messageId)).size} missing)`
    ).catch(async (error: unknown) => {
      const pending = await query(app.database.url, "SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL")
      throw new Error(`${String(error)}; pending rows: ${pending[0]!["n"]}`)
    })
    expect(arrived.size).toBeGreaterThanOrEqual(rows.length)
    const position = new Map(rows.map((row) => [row.event_id, BigInt(row.id)]))
    const aggregateOf = new Map(rows.map((row) => [row.event_id, row.aggregate_id]))
    const first = new Set<string>()
    const last = new Map<string, bigint>()
    for (const message of messages) {
      const id = message.properties.messageId as string
      if (first.has(id) || !position.has(id)) continue
      first.add(id)
      const aggregate = aggregateOf.get(id)!
      const at = position.get(id)!
      expect(at > (last.get(aggregate) ?? -1n), `${label}: ${aggregate} event ${id} arrived after a later one`).toBe(true)
      last.set(aggregate, at)
    }
  }

  beforeAll(async () => {
    const admin = new URL(ADMIN_URL)
    proxy = await startTcpProxy({ host: admin.hostname, port: Number(admin.port || 5432) })
    vhost = await createTestVhost("relay-db-faults")
    app = await startTestApp({
      label: "relay-db-faults",
      env: { AMQP_URL: vhost.url(), OUTBOX_POLL_INTERVAL_MS: "100", DB_CONNECT_TIMEOUT_MS: "1000", DB_POOL_MAX: "4" },
      databaseUrl: (database) => {
        const url = new URL(database.url)
        url.host = `127.0.0.1:${proxy.port}`
        return url.toString()
      }
    })
    await eventually(async () => {
      const body = (await (await fetch(`${app.baseUrl}/health/ready`)).json()) as { checks?: { broker?: { status?: string } } }
      return body.checks?.broker?.status === "up" ? true : undefined
    }, 30_000, "broker connection")
    peer = await connectPeer(vhost.url())
    messages = (await peer.collect("inventory.events")).messages
    for (const variant of VARIANTS) {
      const response = await fetch(`${app.baseUrl}/v1/stock-levels/${variant}`, {
        method: "PUT",
        headers: { ...app.authHeaders, "content-type": "application/json" },
        body: "{}"
      })
      expect(response.status).toBe(201)
    }
    await expectAllDeliveredInOrder("start")
  })
  afterAll(async () => {
    await proxy?.restore()
    await peer?.close()
    await app?.close()
    await proxy?.close()
    await vhost?.drop()
  })

  /** Runs `fault` under the write stream, then checks every committed event arrives in order. */
  const underWrites = async (label: string, fault: () => Promise<void>) => {
    const writes = writeStream()
    await new Promise((resolve) => setTimeout(resolve, 500))
    await fault()
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const statuses = await writes.stop()
    // Faults answer 503 (or time out), never 500.
    expect(statuses.filter((s) => s >= 500 && s !== 503), label).toEqual([])
    expect(statuses.filter((s) => s === 200).length, label).toBeGreaterThan(0)
    await expectAllDeliveredInOrder(label)
  }

  it("delivers every committed change after the database path flaps ten times (400 ms cuts)", async () => {
    for (const round of [1, 2, 3]) {
      await underWrites(`flap round ${round}`, () => proxy.flap({ times: 10, downMs: 400, upMs: 400 }))
    }
  }, 120_000)

  it("delivers every committed change after a 5 s cut of the database path", async () => {
    for (const round of [1, 2]) {
      await underWrites(`cut round ${round}`, async () => {
        await proxy.cut("refuse")
        await new Promise((resolve) => setTimeout(resolve, 5_000))
        await proxy.restore()
      })
    }
  }, 120_000)

  it("delivers every committed change while every database round trip is slowed by 300 ms", async () => {
    await underWrites("latency", async () => {
      proxy.setLatency(300)
      await new Promise((resolve) => setTimeout(resolve, 10_000))
      proxy.setLatency(0)
    })
  }, 120_000)
})
