// The relay's wake-up by LISTEN/NOTIFY (migration 0082, Relay.ts `listenForCommits`): rows another
// process commits are published at once although polling is effectively off, they are not without the
// trigger, and a killed listener connection is replaced while events keep flowing in order.
import type { ConsumeMessage } from "amqplib"
import pg from "pg"
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { query } from "../support/database.js"

/** Ten minutes: within a test, only a wake-up makes the relay claim. */
const POLL_OFF_MS = "600000"
/** How long a NOTIFY-woken publish may take on a loaded test machine (typically a few ms). */
const WOKEN_WITHIN_MS = 3_000

const LISTENER_APP = "inventory-service-relay-listen"

describe("outbox relay woken by NOTIFY", () => {
  let vhost: TestVhost
  let app: TestApp
  let peer: Peer
  let messages: Array<ConsumeMessage>
  /** Another process's connection: its commits never reach the relay's in-process signal. */
  let writer: pg.Client

  /** Commits one outbox row per id in `aggregates` (in that order) in one transaction of `writer`. */
  const commitEvents = async (aggregates: ReadonlyArray<string>, workBeforeSeconds = 0) => {
    const ids = aggregates.map(() => randomUUID())
    await writer.query("BEGIN")
    // The transaction's own work before it writes its events (a long lock wait, a large statement).
    if (workBeforeSeconds > 0) await writer.query("SELECT pg_sleep($1)", [workBeforeSeconds])
    for (const [i, aggregateId] of aggregates.entries()) {
      const envelope = {
        eventId: ids[i],
        eventType: "InventoryReservationCommittedEvent",
        eventVersion: 1,
        occurredAt: new Date().toISOString(),
        aggregateType: "Reservation",
        aggregateId,
        correlationId: "notify-test",
        data: { orderId: aggregateId, lines: [] }
      }
      await writer.query(
        `INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, correlation_id)
         VALUES ($1, 'InventoryReservationCommittedEvent', 'inventory.reservation_committed', 'Reservation', $2, $3, 'notify-test')`,
        [ids[i], aggregateId, JSON.stringify(envelope)]
      )
    }
    await writer.query("COMMIT")
    return ids
  }

  const arrived = (ids: ReadonlyArray<string>) => ids.every((id) => messages.some((m) => m.properties.messageId === id))

  const listenerBackends = async () =>
    (
      await query<{ pid: number }>(
        app.database.url,
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        [LISTENER_APP]
      )
    ).map((row) => row.pid)

  const listening = (count: number) =>
    eventually(
      () => (app.logs().filter((line) => line.includes("outbox: listening for commits")).length >= count ? true : undefined),
      20_000,
      `listener connection #${count}`
    )

  beforeAll(async () => {
    vhost = await createTestVhost("relaynotify")
    app = await startTestApp({
      label: "relaynotify",
      // The expiry sweep's transactions ring the in-process signal (Transactions.run) every second: off too.
      env: { AMQP_URL: vhost.url(), OUTBOX_POLL_INTERVAL_MS: POLL_OFF_MS, RESERVATION_SWEEP_INTERVAL_MS: POLL_OFF_MS }
    })
    await eventually(async () => {
      const res = await app.api.get("/health/ready")
      return res.body?.checks?.broker?.status === "up" ? true : undefined
    }, 30_000, "broker connection")
    await listening(1)
    peer = await connectPeer(vhost.url())
    ;({ messages } = await peer.collect("inventory.events"))
    writer = new pg.Client({ connectionString: app.database.url })
    await writer.connect()
  })
  afterAll(async () => {
    await writer?.end()
    await peer?.close()
    await app?.close()
    await vhost?.drop()
  })

  it("publishes an event another connection commits within moments, with polling every 10 minutes", async () => {
    const started = Date.now()
    const ids = await commitEvents(["notify-order-1"])
    await eventually(() => (arrived(ids) ? true : undefined), WOKEN_WITHIN_MS, "the NOTIFY-woken publish")
    expect(Date.now() - started).toBeLessThan(WOKEN_WITHIN_MS)
    const [row] = await query<{ published: boolean }>(app.database.url, "SELECT published_at IS NOT NULL AS published FROM outbox WHERE event_id = $1", [ids[0]])
    expect(row?.published).toBe(true)
  })

  it("counts an event's publish latency from its write, not from its transaction's start (migration 0090)", async () => {
    const [id] = await commitEvents(["notify-order-slow"], 2)
    await eventually(() => (arrived([id!]) ? true : undefined), WOKEN_WITHIN_MS, "the publish")
    const [row] = await eventually(async () => {
      const rows = await query<{ latency: number }>(
        app.database.url,
        "SELECT EXTRACT(EPOCH FROM published_at - created_at)::float8 AS latency FROM outbox WHERE event_id = $1 AND published_at IS NOT NULL",
        [id]
      )
      return rows.length === 1 ? rows : undefined
    }, 10_000, "the mark")
    // From the transaction's start it would be at least the 2 s of work before the write.
    expect(row!.latency).toBeLessThan(1.5)
  })

  it("does not publish it within that window when the trigger is absent (so the NOTIFY is what woke it)", async () => {
    await query(app.database.url, "DROP TRIGGER outbox_notify ON outbox")
    try {
      const unheard = await commitEvents(["notify-order-2"])
      await new Promise((resolve) => setTimeout(resolve, WOKEN_WITHIN_MS))
      expect(arrived(unheard)).toBe(false)
      const [row] = await query<{ published: boolean }>(app.database.url, "SELECT published_at IS NOT NULL AS published FROM outbox WHERE event_id = $1", [unheard[0]])
      expect(row?.published).toBe(false)

      // With the trigger back, the next commit wakes the relay, which takes the waiting row too.
      await query(app.database.url, "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()")
      const heard = await commitEvents(["notify-order-3"])
      await eventually(() => (arrived([...unheard, ...heard]) ? true : undefined), WOKEN_WITHIN_MS, "both events")
    } finally {
      await query(
        app.database.url,
        `DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'outbox_notify') THEN
             CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
           END IF;
         END $$`
      )
    }
  })

  it("replaces a killed listener connection and keeps publishing, per aggregate in commit order", async () => {
    const [before] = await listenerBackends()
    expect(before).toBeDefined()
    await query(app.database.url, "SELECT pg_terminate_backend($1)", [before])
    await listening(2)
    const [after] = await eventually(async () => {
      const pids = await listenerBackends()
      return pids.length === 1 && pids[0] !== before ? pids : undefined
    }, 10_000, "a new listener backend")
    expect(after).not.toBe(before)
    expect(app.logs().some((line) => line.includes("outbox: listener connection lost"))).toBe(true)

    // Twenty transactions over three aggregates, from the other connection; only NOTIFY wakes the relay.
    const aggregates = ["notify-agg-a", "notify-agg-b", "notify-agg-c"]
    const committed: Array<{ readonly aggregateId: string; readonly eventId: string }> = []
    for (let t = 0; t < 20; t++) {
      const batch = [aggregates[t % 3]!, aggregates[(t + 1) % 3]!]
      const ids = await commitEvents(batch)
      batch.forEach((aggregateId, i) => committed.push({ aggregateId, eventId: ids[i]! }))
    }
    await eventually(() => (arrived(committed.map((c) => c.eventId)) ? true : undefined), WOKEN_WITHIN_MS * 2, "every event after the kill")
    for (const aggregateId of aggregates) {
      const expected = committed.filter((c) => c.aggregateId === aggregateId).map((c) => c.eventId)
      const seen = messages
        .filter((m) => JSON.parse(m.content.toString()).aggregateId === aggregateId)
        .map((m) => m.properties.messageId as string)
      expect(seen).toEqual(expected)
    }
  })
})
