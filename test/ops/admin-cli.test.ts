import { ConfigProvider, Effect } from "effect"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runAdmin } from "../../src/cli/Main.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { connectPeer, createTestVhost, eventually, type Peer, type TestVhost } from "../support/broker.js"
import { query } from "../support/database.js"

/**
 * The admin CLI against the real PostgreSQL and RabbitMQ, next to a running service (whose relay and
 * consumers then act on what the CLI changed). Commands run in process through `runAdmin`, with the
 * service's environment; one runs as its own process to check the real exit code and output.
 */
describe("admin CLI", () => {
  let app: TestApp
  let vhost: TestVhost
  let peer: Peer
  let env: Record<string, string>

  const admin = async (...argv: Array<string>) => {
    const out: Array<string> = []
    const err: Array<string> = []
    const code = await Effect.runPromise(
      runAdmin(argv, { out: (l) => out.push(l), err: (l) => err.push(l) }).pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))
      )
    )
    return { code, out: out.join("\n"), err: err.join("\n"), json: () => JSON.parse(out.join("\n")) }
  }
  const sql = <R extends Record<string, unknown> = Record<string, unknown>>(text: string, values: Array<unknown> = []) =>
    query<R>(app.database.url, text, values)

  /** An outbox row the broker kept refusing: parked, as the relay leaves it. */
  const parkedRow = async (aggregateId: string) => {
    const eventId = randomUUID()
    const payload = { eventId, eventType: "StockLevelChangedEvent", eventVersion: 1, occurredAt: new Date().toISOString(), aggregateType: "StockLevel", aggregateId, correlationId: null, data: {} }
    const [row] = await sql<{ id: string }>(
      `INSERT INTO outbox (event_id, event_type, routing_key, aggregate_type, aggregate_id, payload, attempts, last_error, parked_at)
       VALUES ($1, 'StockLevelChangedEvent', 'inventory.stock_level_changed', 'StockLevel', $2, $3, 10, 'nacked', now()) RETURNING id`,
      [eventId, aggregateId, JSON.stringify(payload)]
    )
    return { id: row!.id, eventId }
  }
  const outboxRow = (id: string) => sql<{ parked_at: Date | null; published_at: Date | null; attempts: number }>("SELECT parked_at, published_at, attempts FROM outbox WHERE id = $1", [id]).then((r) => r[0])
  const stock = (variantId: string) => app.api.get(`/v1/stock-levels/${variantId}`).then((r) => r.body)
  const auditLine = (err: string) => err.split("\n").map((l) => JSON.parse(l)).find((l) => l.message === "admin: change applied")

  beforeAll(async () => {
    vhost = await createTestVhost("admin")
    // No sweeps of its own while the test looks at due reservations.
    app = await startTestApp({ label: "admin", env: { AMQP_URL: vhost.url(), RESERVATION_SWEEP_INTERVAL_MS: "3600000", OUTBOX_POLL_INTERVAL_MS: "100" } })
    peer = await connectPeer(vhost.url())
    env = { DATABASE_URL: app.database.url, AMQP_URL: vhost.url(), USER: "alice" }
  }, 60_000)
  afterAll(async () => {
    await peer?.close()
    await app?.close()
    await vhost?.drop()
  })

  describe("outbox", () => {
    it("status counts parked rows per event type and exits 1 while any is parked", async () => {
      const { id } = await parkedRow("status-1")
      const status = await admin("outbox", "status", "--json")
      expect(status.code).toBe(1)
      expect(status.json()).toMatchObject({ parked: 1, byType: [expect.objectContaining({ eventType: "StockLevelChangedEvent", parked: 1 })] })
      const parked = await admin("outbox", "parked")
      expect(parked.out).toContain(`${id} StockLevelChangedEvent status-1 attempts=10`)
      await sql("DELETE FROM outbox WHERE id = $1", [id])
      expect((await admin("outbox", "status")).code).toBe(0)
    })

    it("requeue is a dry run without --yes, needs a reason with it, and then the relay publishes the row", async () => {
      const { id } = await parkedRow("requeue-1")
      const dry = await admin("outbox", "requeue", id)
      expect(dry.code).toBe(0)
      expect(dry.out).toContain("dry run: would requeue 1 row(s)")
      expect((await outboxRow(id))!.parked_at).not.toBeNull()

      expect((await admin("outbox", "requeue", id, "--yes")).code).toBe(2)
      expect((await admin("outbox", "requeue", "--all", id)).code).toBe(2)

      const done = await admin("outbox", "requeue", id, "--yes", "--reason", "INC-1", "--json")
      expect(done.code).toBe(0)
      expect(done.json()).toMatchObject({ applied: true, requeued: [expect.objectContaining({ id })], notParked: [] })
      expect(auditLine(done.err)).toMatchObject({ command: "outbox requeue", actor: "alice", reason: "INC-1", applied: true, rows: [id] })
      await eventually(async () => ((await outboxRow(id))?.published_at ? true : undefined), 20_000, "the requeued row to be published")
    })

    it("discard deletes only parked rows, and exits 1 for an id that is not one", async () => {
      const { id, eventId } = await parkedRow("discard-1")
      const wrong = await admin("outbox", "discard", id, "999999999", "--yes", "--reason", "INC-2", "--actor", "bob")
      expect(wrong.code).toBe(1)
      expect(wrong.out).toContain("not a parked row: 999999999")
      expect(await outboxRow(id)).toBeUndefined()
      // The audit line keeps the discarded payload for the incident record.
      expect(auditLine(wrong.err)).toMatchObject({ actor: "bob", discarded: [expect.objectContaining({ eventId, payload: expect.objectContaining({ aggregateId: "discard-1" }) })] })
    })

    it("release-leases frees the rows of a dead relay so the live one publishes them at once", async () => {
      const { id } = await parkedRow("lease-1")
      await sql("UPDATE outbox SET parked_at = NULL, attempts = 0, claimed_by = 'dead-pod:1:x', claimed_until = now() + interval '1 hour' WHERE id = $1", [id])
      const status = await admin("outbox", "status", "--json")
      expect(status.json().leases).toEqual([expect.objectContaining({ relay: "dead-pod:1:x", rows: 1 })])
      expect((await admin("outbox", "release-leases", "--relay", "dead-pod:1:x")).out).toContain("dry run: would release the leases of 1 row(s)")
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect((await outboxRow(id))!.published_at).toBeNull()
      const done = await admin("outbox", "release-leases", "--relay", "dead-pod:1:x", "--yes", "--reason", "pod deleted")
      expect(done.code).toBe(0)
      await eventually(async () => ((await outboxRow(id))?.published_at ? true : undefined), 20_000, "the released row to be published")
    })
  })

  describe("reconcile", () => {
    it("finds drift made behind the service's back and --repair corrects it through the service's own history and events", async () => {
      expect((await app.api.put("/v1/stock-levels/drift-a", {})).status).toBe(201)
      expect((await app.api.post("/v1/stock-levels/drift-a/adjustments", { type: "PURCHASE", quantity: 10 })).status).toBe(200)
      expect((await app.api.put("/v1/stock-levels/drift-b", {})).status).toBe(201)
      expect((await app.api.post("/v1/stock-levels/drift-b/adjustments", { type: "PURCHASE", quantity: 10 })).status).toBe(200)
      expect((await app.api.post("/v1/reservations", { orderId: "drift-order", lines: [{ variantId: "drift-b", quantity: 4 }] })).status).toBe(201)
      // Hand SQL on the location rows (the totals follow by trigger): a counted box that was never
      // recorded, and reserved units lost.
      await sql("UPDATE location_stock SET on_hand = 15 WHERE variant_id = 'drift-a' AND location_id = 'default'")
      await sql("UPDATE location_stock SET reserved = 1 WHERE variant_id = 'drift-b' AND location_id = 'default'")

      const found = await admin("reconcile")
      expect(found.code).toBe(1)
      expect(found.out).toContain("DRIFT drift-a on-hand-vs-history: stored 15, expected 10 at default")
      expect(found.out).toContain("DRIFT drift-b reserved-vs-active-reservations: stored 1, expected 4 at default")

      const dry = await admin("reconcile", "--repair", "--json")
      expect(dry.code).toBe(1)
      expect(dry.json().repairs).toEqual(
        expect.arrayContaining([
          { variantId: "drift-a", locationId: "default", steps: [{ type: "ADJUSTMENT", onHandChange: 5, reservedChange: 0, movesCounters: false }] },
          {
            variantId: "drift-b",
            locationId: "default",
            steps: [
              { type: "ADJUSTMENT", onHandChange: 0, reservedChange: -3, movesCounters: false },
              { type: "RESERVE", onHandChange: 0, reservedChange: 3, movesCounters: true }
            ]
          }
        ])
      )
      expect(await stock("drift-b")).toMatchObject({ reserved: 1 })

      const repaired = await admin("reconcile", "--repair", "--yes", "--reason", "INC-3")
      expect(repaired.code).toBe(0)
      expect(repaired.out).toContain("0 drift(s) left")
      expect(await stock("drift-a")).toMatchObject({ onHand: 15, reserved: 0 })
      expect(await stock("drift-b")).toMatchObject({ onHand: 10, reserved: 4, available: 6 })
      const history = await sql<{ type: string; on_hand_change: number; actor: string; reason: string; correlation_id: string }>(
        "SELECT type, on_hand_change, actor, reason, correlation_id FROM inventory_history WHERE variant_id = 'drift-a' ORDER BY id DESC LIMIT 1"
      )
      expect(history[0]).toMatchObject({ type: "ADJUSTMENT", on_hand_change: 5, actor: "ops:alice", reason: "INC-3" })
      // Its event, built by the same code as every change: peers learn the counters they never heard of.
      const events = await sql<{ payload: { data: Record<string, unknown>; correlationId: string } }>(
        "SELECT payload FROM outbox WHERE aggregate_id = 'drift-b' AND event_type = 'StockLevelChangedEvent' ORDER BY id DESC LIMIT 1"
      )
      expect(events[0]!.payload.data).toMatchObject({ variantId: "drift-b", reserved: 4, changeType: "RESERVE", reservedChange: 3 })
      expect(events[0]!.payload.correlationId).toMatch(/^admin-/)
      expect((await admin("reconcile")).code).toBe(0)
    })

    it("checks and repairs each location row on its own, with history at that location", async () => {
      expect((await app.api.put("/v1/stock-levels/drift-loc", {})).status).toBe(201)
      expect((await app.api.post("/v1/stock-levels/drift-loc/adjustments", { type: "PURCHASE", quantity: 6 })).status).toBe(200)
      // A second location (no endpoint yet), stocked with 4 as the service would record it.
      await sql("INSERT INTO locations (location_id, name, priority) VALUES ('drift-store', 'Drift store', 10) ON CONFLICT DO NOTHING")
      await sql("INSERT INTO location_stock (variant_id, location_id) VALUES ('drift-loc', 'drift-store')")
      await sql(`
        WITH s AS (UPDATE location_stock SET on_hand = 4 WHERE variant_id = 'drift-loc' AND location_id = 'drift-store' RETURNING on_hand, reserved)
        INSERT INTO inventory_history (variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after)
        SELECT 'drift-loc', 'drift-store', 'PURCHASE', 4, 0, on_hand, reserved FROM s`)
      expect((await admin("reconcile")).code).toBe(0)
      // Behind the service's back, at the store only: 2 units gone unrecorded.
      await sql("UPDATE location_stock SET on_hand = 2 WHERE variant_id = 'drift-loc' AND location_id = 'drift-store'")
      const found = await admin("reconcile", "--json")
      expect(found.code).toBe(1)
      expect(found.json().drifts).toEqual([
        { variantId: "drift-loc", locationId: "drift-store", check: "on-hand-vs-history", stored: 2, expected: 4 }
      ])
      const repaired = await admin("reconcile", "--repair", "--yes", "--reason", "INC-6")
      expect(repaired.code).toBe(0)
      expect(repaired.out).toContain("recorded drift-loc at drift-store ADJUSTMENT onHand -2, reserved 0")
      const [entry] = await sql<{ location_id: string; type: string; on_hand_change: number; on_hand_after: number; reason: string }>(
        "SELECT location_id, type, on_hand_change, on_hand_after, reason FROM inventory_history WHERE variant_id = 'drift-loc' ORDER BY id DESC LIMIT 1"
      )
      expect(entry).toEqual({ location_id: "drift-store", type: "ADJUSTMENT", on_hand_change: -2, on_hand_after: 2, reason: "INC-6" })
      // The counters stay what they were; the default location was not touched.
      expect(await stock("drift-loc")).toMatchObject({ onHand: 8, reserved: 0, available: 8 })
      expect(await sql("SELECT location_id, on_hand FROM location_stock WHERE variant_id = 'drift-loc' ORDER BY location_id")).toEqual([
        { location_id: "default", on_hand: 6 },
        { location_id: "drift-store", on_hand: 2 }
      ])
      const [event] = await sql<{ payload: { data: Record<string, unknown> } }>(
        "SELECT payload FROM outbox WHERE aggregate_id = 'drift-loc' AND event_type = 'StockLevelChangedEvent' ORDER BY id DESC LIMIT 1"
      )
      expect(event!.payload.data).toMatchObject({ variantId: "drift-loc", onHand: 8, changeType: "ADJUSTMENT", locationId: "drift-store", location: { onHand: 2, reserved: 0 } })
      expect((await admin("reconcile")).code).toBe(0)
    })

    it("reports variant totals that differ from their locations and never writes them", async () => {
      expect((await app.api.put("/v1/stock-levels/drift-totals", {})).status).toBe(201)
      expect((await app.api.post("/v1/stock-levels/drift-totals/adjustments", { type: "PURCHASE", quantity: 3 })).status).toBe(200)
      // Only with the triggers off (a superuser's session_replication_role) can the totals move alone.
      await sql(`DO $$ BEGIN
                   SET LOCAL session_replication_role = replica;
                   UPDATE stock_levels SET on_hand = 5, available = 5 WHERE variant_id = 'drift-totals';
                 END $$`)
      const found = await admin("reconcile")
      expect(found.code).toBe(1)
      expect(found.out).toContain("DRIFT drift-totals on-hand-vs-locations: stored 5, expected 3 (variant totals)")
      expect(found.out).toContain("DRIFT drift-totals available-vs-locations: stored 5, expected 3 (variant totals)")
      const repaired = await admin("reconcile", "--repair", "--yes", "--reason", "INC-7")
      expect(repaired.code).toBe(1)
      expect(repaired.out).toContain("could not repair drift-totals: variant totals differ from the sum of its locations")
      expect(await sql("SELECT on_hand FROM stock_levels WHERE variant_id = 'drift-totals'")).toEqual([{ on_hand: 5 }])
      // Put back as the runbook says (triggers off, totals = the sums), so the other tests see no drift.
      await sql(`DO $$ BEGIN
                   SET LOCAL session_replication_role = replica;
                   UPDATE stock_levels SET on_hand = 3, available = 3 WHERE variant_id = 'drift-totals';
                 END $$`)
      expect((await admin("reconcile")).code).toBe(0)
    })
  })

  describe("reservations", () => {
    it("show prints a reservation and expire-due expires the due ones now, as the sweeper would", async () => {
      expect((await app.api.put("/v1/stock-levels/exp-1", {})).status).toBe(201)
      expect((await app.api.post("/v1/stock-levels/exp-1/adjustments", { type: "PURCHASE", quantity: 5 })).status).toBe(200)
      expect((await app.api.post("/v1/reservations", { orderId: "exp-order", ttlSeconds: 1, lines: [{ variantId: "exp-1", quantity: 2 }] })).status).toBe(201)
      const shown = await admin("reservations", "show", "exp-order", "--json")
      expect(shown.code).toBe(0)
      expect(shown.json()).toMatchObject({ orderId: "exp-order", status: "ACTIVE", lines: [{ variantId: "exp-1", quantity: 2 }] })
      expect((await admin("reservations", "show", "no-such-order")).code).toBe(1)
      await new Promise((resolve) => setTimeout(resolve, 1_200))

      const dry = await admin("reservations", "expire-due")
      expect(dry.out).toMatch(/exp-order expired at .*\n.*dry run: would expire 1 reservation/)
      // Past expiresAt every answer says EXPIRED (derived at answer time); the dry run left the stock held.
      expect((await admin("reservations", "show", "exp-order", "--json")).json().status).toBe("EXPIRED")
      expect(await stock("exp-1")).toMatchObject({ onHand: 5, reserved: 2 })

      const done = await admin("reservations", "expire-due", "--yes", "--reason", "sweeper stuck")
      expect(done.out).toContain("expired 1 reservation(s)")
      expect((await admin("reservations", "show", "exp-order", "--json")).json().status).toBe("EXPIRED")
      expect(await stock("exp-1")).toMatchObject({ onHand: 5, reserved: 0 })
    })
  })

  describe("locations", () => {
    it("list prints every location by priority, then id, and --json gives the Location objects", async () => {
      await sql("INSERT INTO locations (location_id, name, priority) VALUES ('cli-store', 'CLI Store', 20)")
      const listed = await admin("locations", "list")
      expect(listed.code).toBe(0)
      expect(listed.out.split("\n")[0]).toBe('default priority=0 active "Default"')
      expect(listed.out).toContain('cli-store priority=20 active "CLI Store"')
      const json = await admin("locations", "list", "--json")
      expect(json.json().items).toEqual(
        expect.arrayContaining([expect.objectContaining({ locationId: "cli-store", name: "CLI Store", priority: 20, active: true })])
      )
      expect((await admin("locations", "list", "extra")).code).toBe(2)
    })

    it("deactivate is a dry run without --yes, needs a reason, then takes the location's stock out of available", async () => {
      expect((await app.api.put("/v1/stock-levels/cli-loc-1", {})).status).toBe(201)
      expect((await app.api.post("/v1/stock-levels/cli-loc-1/adjustments", { type: "PURCHASE", quantity: 4 })).status).toBe(200)
      await sql("INSERT INTO locations (location_id, name) VALUES ('cli-wh', 'CLI WH')")
      await sql("INSERT INTO location_stock (variant_id, location_id, on_hand) VALUES ('cli-loc-1', 'cli-wh', 6)")
      expect(await stock("cli-loc-1")).toMatchObject({ onHand: 10, available: 10 })

      const dry = await admin("locations", "deactivate", "cli-wh")
      expect(dry.code).toBe(0)
      expect(dry.out).toContain("cli-wh holds 1 variant(s): onHand 6, reserved 0, available 6, 0 ACTIVE reservation(s)")
      expect(dry.out).toContain("dry run: would deactivate cli-wh (add --yes to apply)")
      expect(dry.out).not.toContain("warning")
      expect(await stock("cli-loc-1")).toMatchObject({ available: 10 })
      expect((await admin("locations", "deactivate", "cli-wh", "--yes")).code).toBe(2)
      expect((await admin("locations", "deactivate")).code).toBe(2)

      const done = await admin("locations", "deactivate", "cli-wh", "--yes", "--reason", "INC-6", "--json")
      expect(done.code).toBe(0)
      expect(done.json()).toMatchObject({ applied: true, changed: true, location: { locationId: "cli-wh", active: false } })
      expect(auditLine(done.err)).toMatchObject({ command: "locations deactivate", actor: "alice", reason: "INC-6", applied: true, locationId: "cli-wh" })
      expect(await stock("cli-loc-1")).toMatchObject({ onHand: 10, reserved: 0, available: 4 })
      const [event] = await sql<{ payload: any }>("SELECT payload FROM outbox WHERE aggregate_id = 'cli-wh' AND event_type = 'LocationUpsertedEvent'")
      expect(event!.payload).toMatchObject({ aggregateType: "Location", correlationId: expect.stringMatching(/^admin-/) })
      expect(event!.payload.data).toEqual({ locationId: "cli-wh", name: "CLI WH", priority: 100, active: false })

      const again = await admin("locations", "deactivate", "cli-wh", "--yes", "--reason", "INC-6")
      expect(again.code).toBe(0)
      expect(again.out).toContain("cli-wh was already inactive: nothing changed")
      const missing = await admin("locations", "deactivate", "no-such-location", "--yes", "--reason", "INC-6")
      expect(missing.code).toBe(1)
      expect(missing.out).toContain("no location no-such-location")
    })

    it("warns that deactivating default leaves v1 reservations without its stock (dry run)", async () => {
      const dry = await admin("locations", "deactivate", "default", "--json")
      expect(dry.code).toBe(0)
      expect(dry.json()).toMatchObject({ applied: false, location: { locationId: "default", active: true } })
      expect(dry.json().warnings).toEqual([expect.stringContaining("default is the location of every v1 call")])
      expect((await admin("locations", "deactivate", "default")).out).toContain("warning: default is the location of every v1 call")
    })
  })

  describe("dlq", () => {
    const deadLetter = async (orderId: string) => {
      const eventId = randomUUID()
      const body = { eventId, eventType: "OrderCancelledEvent", eventVersion: 1, occurredAt: new Date().toISOString(), aggregateType: "Order", aggregateId: orderId, correlationId: `corr-${orderId}`, data: { orderId } }
      // As the consumer leaves a message it gave up on (Messaging.ts deadLetter).
      await peer.publish("inventory.dlx", "order.cancelled", body, {
        messageId: eventId,
        type: "OrderCancelledEvent",
        headers: { "x-dead-letter-reason": "SqlError: statement timeout", "x-original-queue": "inventory-service.order-events", "x-attempts": "5", "x-correlation-id": `corr-${orderId}` }
      })
      return eventId
    }
    const depth = async () => (await peer.channel.checkQueue("inventory.dead-letter")).messageCount

    it("lists, replays with the original messageId (the consumer handles it once) and purges", async () => {
      expect((await app.api.put("/v1/stock-levels/dlq-1", {})).status).toBe(201)
      expect((await app.api.post("/v1/stock-levels/dlq-1/adjustments", { type: "PURCHASE", quantity: 5 })).status).toBe(200)
      expect((await app.api.post("/v1/reservations", { orderId: "dlq-order", lines: [{ variantId: "dlq-1", quantity: 2 }] })).status).toBe(201)
      const messageId = await deadLetter("dlq-order")
      await eventually(async () => ((await depth()) === 1 ? true : undefined), 10_000, "the dead letter")

      const listed = await admin("dlq", "list", "--json")
      expect(listed.code).toBe(1)
      expect(listed.json()).toMatchObject({ depth: 1, messages: [{ messageId, type: "OrderCancelledEvent", originalQueue: "inventory-service.order-events", reason: "SqlError: statement timeout", attempts: 5 }] })
      expect(await depth()).toBe(1)

      const dry = await admin("dlq", "replay", "--type", "OrderCancelledEvent")
      expect(dry.out).toContain("dry run: would replay 1 message(s)")
      expect(await depth()).toBe(1)
      expect((await admin("dlq", "replay", "--type", "OrderShippedEvent", "--yes", "--reason", "x")).out).toContain("replayed 0 message(s)")

      const done = await admin("dlq", "replay", "--yes", "--reason", "INC-4")
      expect(done.code).toBe(0)
      await eventually(async () => ((await depth()) === 0 ? true : undefined), 10_000, "the dead-letter queue to be empty")
      await eventually(async () => ((await app.api.get("/v1/reservations/dlq-order")).body.status === "RELEASED" ? true : undefined), 20_000, "the replayed cancel to be handled")
      expect(await sql("SELECT 1 FROM inbox WHERE message_id = $1", [messageId])).toHaveLength(1)

      // Replayed again (already handled): the inbox de-duplicates it, nothing changes.
      const historyBefore = await sql("SELECT id FROM inventory_history WHERE variant_id = 'dlq-1'")
      await deadLetter("dlq-order")
      await peer.channel.get("inventory.dead-letter").then((m) => m && peer.channel.nack(m, false, true))
      await eventually(async () => ((await depth()) === 1 ? true : undefined), 10_000, "the second dead letter")

      const purgeDry = await admin("dlq", "purge")
      expect(purgeDry.out).toContain("dry run: would purge 1 message(s)")
      expect((await admin("dlq", "purge", "--yes")).code).toBe(2)
      const purged = await admin("dlq", "purge", "--yes", "--reason", "INC-5")
      expect(purged.out).toContain("purged 1 message(s)")
      expect(await depth()).toBe(0)
      expect(await sql("SELECT id FROM inventory_history WHERE variant_id = 'dlq-1'")).toHaveLength(historyBefore.length)
    })
  })

  it("runs as its own process: --json on stdout, logs on stderr, the exit code of the command", async () => {
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/bin/admin.ts", "outbox", "status", "--json"], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "inherit"]
      })
      let stdout = ""
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()))
      child.on("exit", (code) => resolve({ code, stdout }))
    })
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toMatchObject({ parked: 0 })
    const usage = await new Promise<number | null>((resolve) => {
      spawn(process.execPath, ["--import", "tsx", "src/bin/admin.ts", "outbox", "nope"], { env: { ...process.env, ...env }, stdio: "ignore" }).on("exit", resolve)
    })
    expect(usage).toBe(2)
  }, 120_000)
})
