// Retention against the real PostgreSQL: data made through the API (history, outbox rows, idempotency
// keys) and inbox rows written directly, then aged by moving their timestamps back in SQL.
import { Effect, Metric } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { reconcile } from "../../src/services/Reconcile.js"
import { historyDrift, Retention } from "../../src/services/Retention.js"
import { retentionRemovedRows } from "../../src/services/RetentionMetrics.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"
import { client } from "../support/http.js"

const BATCH = 7

const removedCounter = (table: string) =>
  Effect.map(Metric.value(Metric.withAttributes(retentionRemovedRows, { table })), (state) => state.count)

describe("retention sweep", () => {
  let app: TestApp
  let api: ReturnType<typeof client>
  const sql = <R extends Record<string, unknown>>(text: string, values: ReadonlyArray<unknown> = []) =>
    query<R>(app.database.url, text, values)
  const count = async (table: string, where = "true") =>
    Number((await sql<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${where}`))[0]!.n)

  const adjust = async (variantId: string, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const res = await api.post(`/v1/stock-levels/${variantId}/adjustments`, body, headers)
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    return res.body
  }

  /** All history pages of a variant, newest first, through the API. */
  const historyOf = async (variantId: string) => {
    const items: Array<{ id: string; onHandChange: number }> = []
    let cursor: string | null = null
    do {
      const res: { status: number; body: any } = await api.get(`/v1/stock-levels/${variantId}/history?limit=5${cursor ? `&cursor=${cursor}` : ""}`)
      expect(res.status).toBe(200)
      items.push(...res.body.items)
      cursor = res.body.nextCursor
    } while (cursor !== null)
    return items
  }

  beforeAll(async () => {
    app = await startTestApp({
      label: "retention",
      env: {
        RETENTION_SWEEP_INTERVAL_MS: String(24 * 3_600_000), // the test sweeps by hand
        RETENTION_BATCH_SIZE: String(BATCH),
        OUTBOX_RETENTION_HOURS: "24",
        INBOX_RETENTION_DAYS: "7",
        IDEMPOTENCY_KEY_RETENTION_HOURS: "48",
        HISTORY_RETENTION_DAYS: "30"
      }
    })
    api = app.api
  })
  afterAll(() => app?.close())

  it("purges old rows of every table, keeps recent ones, and history still reconciles exactly", async () => {
    // Three variants; "a" and "b" get 12 changes each (more than one batch), "c" a single one.
    for (const id of ["ret-a", "ret-b", "ret-c"]) expect((await api.put(`/v1/stock-levels/${id}`, {})).status).toBe(201)
    for (let i = 1; i <= 12; i++) {
      await adjust("ret-a", { type: "PURCHASE", quantity: i })
      await adjust("ret-b", i % 3 === 0 ? { type: "RECOUNT", quantity: 5 * i } : { type: "PURCHASE", quantity: 2 }, { "idempotency-key": `b-${i}` })
    }
    await adjust("ret-c", { type: "PURCHASE", quantity: 9 })
    await adjust("ret-a", { type: "SALE", quantity: 3 })

    const levelsBefore = (await api.get("/v1/stock-levels?variantId=ret-a&variantId=ret-b&variantId=ret-c")).body.items
    const historyIds = (await sql<{ id: string; variant_id: string }>(
      "SELECT id, variant_id FROM inventory_history ORDER BY id"
    )).map((r) => ({ id: Number(r.id), variantId: r.variant_id }))
    // Age: every entry of "c" and the first 10 of "a" and "b" are 40 days old; the rest stay recent.
    const old = historyIds.filter((h, i) => h.variantId === "ret-c" || historyIds.slice(0, i).filter((o) => o.variantId === h.variantId).length < 10)
    await sql("UPDATE inventory_history SET created_at = now() - interval '40 days' WHERE id = ANY($1)", [old.map((h) => h.id)])
    // Outbox: the relay (log publisher here) publishes every row; then some are made old (purged) and
    // two parked, never published (kept).
    for (let i = 0; i < 100 && (await count("outbox", "published_at IS NULL")) > 0; i++) await new Promise((r) => setTimeout(r, 100))
    await sql(`UPDATE outbox SET published_at = now() - interval '30 hours' WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 20)`)
    await sql(`UPDATE outbox SET published_at = NULL, parked_at = now() - interval '30 days', created_at = now() - interval '30 days'
                WHERE id IN (SELECT id FROM outbox ORDER BY id DESC LIMIT 2)`)
    const outboxTotal = await count("outbox")
    // Inbox: 9 processed 10 days ago (purged), 2 yesterday (kept).
    await sql(`INSERT INTO inbox (message_id, consumer, event_type, processed_at)
               SELECT 'old-' || g, 'orders', 'OrderCancelled', now() - interval '10 days' FROM generate_series(1, 9) g
               UNION ALL
               SELECT 'new-' || g, 'orders', 'OrderCancelled', now() - interval '1 day' FROM generate_series(1, 2) g`)
    // Idempotency keys: b-1..b-8 three days old (purged), b-9..b-12 recent (kept).
    await sql(`UPDATE idempotency_keys SET created_at = now() - interval '3 days'
                WHERE key = ANY($1)`, [Array.from({ length: 8 }, (_, i) => `b-${i + 1}`)])

    const metricBefore = await app.run(Effect.all([removedCounter("outbox"), removedCounter("inventory_history")]))
    const result = await app.run(Effect.flatMap(Retention, (r) => r.sweepOnce()))

    // History: old entries archived except each variant's newest ("c" keeps its only entry).
    expect(result.inventory_history).toBe(20)
    expect(await count("inventory_history_archive")).toBe(20)
    expect(await count("inventory_history", "variant_id = 'ret-c'")).toBe(1)
    expect(await count("inventory_history", "created_at < now() - interval '30 days' AND variant_id <> 'ret-c'")).toBe(0)
    expect(await count("inventory_history", "created_at > now() - interval '1 day'")).toBe(historyIds.length - old.length)
    const archivedIds = (await sql<{ id: string }>("SELECT id FROM inventory_history_archive ORDER BY id")).map((r) => Number(r.id))
    expect(archivedIds).toEqual(old.filter((h) => h.variantId !== "ret-c").map((h) => h.id))
    // The API: same stock levels, history pages only show what remains.
    expect((await api.get("/v1/stock-levels?variantId=ret-a&variantId=ret-b&variantId=ret-c")).body.items).toEqual(levelsBefore)
    expect((await historyOf("ret-a")).map((e) => Number(e.id))).toEqual(
      historyIds.filter((h) => h.variantId === "ret-a" && !archivedIds.includes(h.id)).map((h) => h.id).reverse()
    )
    // Reconciliation with the baseline is clean; summing the remaining history alone would not be.
    expect(await app.run(historyDrift)).toEqual([])
    const naive = await sql<{ variant_id: string }>(`
      SELECT s.variant_id FROM stock_levels s JOIN inventory_history h USING (variant_id)
       GROUP BY s.variant_id, s.on_hand HAVING s.on_hand <> sum(h.on_hand_change)`)
    expect(naive.map((r) => r.variant_id).sort()).toEqual(["ret-a", "ret-b"])

    // Outbox: exactly the rows published more than 24 h ago went.
    expect(result.outbox).toBe(20)
    expect(await count("outbox")).toBe(outboxTotal - 20)
    expect(await count("outbox", "published_at < now() - interval '24 hours'")).toBe(0)
    expect(await count("outbox", "parked_at IS NOT NULL")).toBe(2)
    expect(await count("outbox", "published_at IS NOT NULL")).toBe(outboxTotal - 20 - 2)
    // Inbox and idempotency keys.
    expect(result.inbox).toBe(9)
    expect((await sql<{ message_id: string }>("SELECT message_id FROM inbox ORDER BY message_id")).map((r) => r.message_id)).toEqual(["new-1", "new-2"])
    expect(result.idempotency_keys).toBe(8)
    expect((await sql<{ key: string }>("SELECT key FROM idempotency_keys ORDER BY created_at, key")).map((r) => r.key).sort()).toEqual(
      ["b-10", "b-11", "b-12", "b-9"]
    )
    // A kept key still replays; nothing changed.
    const replay = await api.post("/v1/stock-levels/ret-b/adjustments", { type: "RECOUNT", quantity: 60 }, { "idempotency-key": "b-12" })
    expect(replay.body.stockLevel.version).toBe(levelsBefore[1].version)

    const metricAfter = await app.run(Effect.all([removedCounter("outbox"), removedCounter("inventory_history")]))
    expect(metricAfter[0] - metricBefore[0]).toBe(20)
    expect(metricAfter[1] - metricBefore[1]).toBe(20)

    // A second sweep finds nothing left to do.
    expect(await app.run(Effect.flatMap(Retention, (r) => r.sweepOnce()))).toEqual({
      outbox: 0,
      inbox: 0,
      idempotency_keys: 0,
      inventory_history: 0
    })
  })

  it("keeps reconciliation exact across further changes and archiving, and still detects real drift", async () => {
    await adjust("ret-a", { type: "RECOUNT", quantity: 500 })
    await adjust("ret-c", { type: "SALE", quantity: 4 })
    await sql("UPDATE inventory_history SET created_at = now() - interval '31 days' WHERE variant_id = 'ret-c'")
    await app.run(Effect.flatMap(Retention, (r) => r.sweepOnce()))
    // "c" now has its old first entry archived, its newest kept.
    expect(await count("inventory_history", "variant_id = 'ret-c'")).toBe(1)
    const [baselineC] = await sql<{ on_hand: string; archived_entries: string }>(
      "SELECT on_hand::text, archived_entries::text FROM inventory_history_baseline WHERE variant_id = 'ret-c'"
    )
    expect(baselineC).toEqual({ on_hand: "9", archived_entries: "1" })
    expect(await app.run(historyDrift)).toEqual([])

    // A change that bypassed the history is found (the location row: the totals only follow it).
    await sql("UPDATE location_stock SET on_hand = on_hand + 1 WHERE variant_id = 'ret-a' AND location_id = 'default'")
    expect(await app.run(historyDrift)).toEqual([
      { variantId: "ret-a", locationId: "default", onHand: 501, reserved: 0, expectedOnHand: 500, expectedReserved: 0 }
    ])
    await sql("UPDATE location_stock SET on_hand = on_hand - 1 WHERE variant_id = 'ret-a' AND location_id = 'default'")
  })

  it("archives each entry exactly once when several replicas sweep at the same time", async () => {
    await api.put("/v1/stock-levels/ret-many", {})
    for (let i = 0; i < 40; i++) await adjust("ret-many", { type: "PURCHASE", quantity: 1 + (i % 4) })
    await sql("UPDATE inventory_history SET created_at = now() - interval '60 days' WHERE variant_id = 'ret-many'")
    const archivedBefore = await count("inventory_history_archive")
    // Four concurrent sweeps (each batch in its own transaction on its own connection), then one more
    // to finish whatever the try-locks made the others skip.
    const results = await app.run(
      Effect.flatMap(Retention, (r) => Effect.all(Array.from({ length: 4 }, () => r.sweepOnce()), { concurrency: "unbounded" }))
    )
    const last = await app.run(Effect.flatMap(Retention, (r) => r.sweepOnce()))
    const total = results.reduce((sum, r) => sum + r.inventory_history, 0) + last.inventory_history
    expect(total).toBe(39)
    expect(await count("inventory_history_archive") - archivedBefore).toBe(39)
    expect(await count("inventory_history", "variant_id = 'ret-many'")).toBe(1)
    expect(await app.run(historyDrift)).toEqual([])
  })
})

describe("history retention per location", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({
      label: "retentionloc",
      env: { RETENTION_SWEEP_INTERVAL_MS: String(24 * 3_600_000), HISTORY_RETENTION_DAYS: "30" }
    })
  })
  afterAll(() => app?.close())
  const sql = <R extends Record<string, unknown>>(text: string, values: ReadonlyArray<unknown> = []) =>
    query<R>(app.database.url, text, values)

  it("keeps one baseline per (variant, location), archives location_id and keeps each location's newest entry", async () => {
    expect((await app.api.put("/v1/stock-levels/ret-loc", {})).status).toBe(201)
    for (let i = 1; i <= 3; i++) {
      expect((await app.api.post("/v1/stock-levels/ret-loc/adjustments", { type: "PURCHASE", quantity: i })).status).toBe(200)
    }
    // A second location (no endpoint yet): stocked and changed as the service does it, variant row first.
    await sql("INSERT INTO locations (location_id, name, priority) VALUES ('store-1', 'Store 1', 10)")
    await sql("INSERT INTO location_stock (variant_id, location_id) VALUES ('ret-loc', 'store-1')")
    for (const quantity of [5, 7]) {
      await sql(`
        WITH v AS (SELECT 1 FROM stock_levels WHERE variant_id = 'ret-loc' FOR UPDATE),
             s AS (UPDATE location_stock SET on_hand = on_hand + $1
                    WHERE variant_id = 'ret-loc' AND location_id = 'store-1' AND EXISTS (SELECT 1 FROM v)
                   RETURNING on_hand, reserved)
        INSERT INTO inventory_history (variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after)
        SELECT 'ret-loc', 'store-1', 'PURCHASE', $1, 0, on_hand, reserved FROM s`, [quantity])
    }
    expect((await app.api.get("/v1/stock-levels/ret-loc")).body).toMatchObject({ onHand: 18 })
    expect(await app.run(historyDrift)).toEqual([])
    // Every entry is old; each location keeps its newest.
    await sql("UPDATE inventory_history SET created_at = now() - interval '40 days' WHERE variant_id = 'ret-loc'")
    const result = await app.run(Effect.flatMap(Retention, (r) => r.sweepOnce()))
    expect(result.inventory_history).toBe(3)
    expect(await sql("SELECT location_id, on_hand_change FROM inventory_history WHERE variant_id = 'ret-loc' ORDER BY id")).toEqual([
      { location_id: "default", on_hand_change: 3 },
      { location_id: "store-1", on_hand_change: 7 }
    ])
    expect(await sql("SELECT location_id, on_hand_change FROM inventory_history_archive WHERE variant_id = 'ret-loc' ORDER BY id")).toEqual([
      { location_id: "default", on_hand_change: 1 },
      { location_id: "default", on_hand_change: 2 },
      { location_id: "store-1", on_hand_change: 5 }
    ])
    const kept = await sql<{ location_id: string; id: string }>(
      "SELECT location_id, min(id)::text AS id FROM inventory_history WHERE variant_id = 'ret-loc' GROUP BY location_id ORDER BY location_id"
    )
    expect(await sql(
      "SELECT location_id, on_hand::int, reserved::int, archived_through_id::text, archived_entries::int FROM inventory_history_baseline WHERE variant_id = 'ret-loc' ORDER BY location_id"
    )).toEqual([
      { location_id: "default", on_hand: 3, reserved: 0, archived_through_id: String(Number(kept[0]!.id) - 1), archived_entries: 2 },
      { location_id: "store-1", on_hand: 5, reserved: 0, archived_through_id: String(Number(kept[1]!.id) - 1), archived_entries: 1 }
    ])
    expect(await app.run(historyDrift)).toEqual([])
    expect((await app.run(reconcile)).drifts).toEqual([])

    // A later sweep folds into the same (variant, location) baseline.
    for (const quantity of [1, 1]) {
      expect((await app.api.post("/v1/stock-levels/ret-loc/adjustments", { type: "PURCHASE", quantity })).status).toBe(200)
    }
    await sql("UPDATE inventory_history SET created_at = now() - interval '40 days' WHERE variant_id = 'ret-loc'")
    expect((await app.run(Effect.flatMap(Retention, (r) => r.sweepOnce()))).inventory_history).toBe(2)
    expect(await sql(
      "SELECT location_id, on_hand::int, archived_entries::int FROM inventory_history_baseline WHERE variant_id = 'ret-loc' ORDER BY location_id"
    )).toEqual([
      { location_id: "default", on_hand: 7, archived_entries: 4 },
      { location_id: "store-1", on_hand: 5, archived_entries: 1 }
    ])
    expect(await app.run(historyDrift)).toEqual([])

    // Drift at one location is found there, and only there.
    await sql("UPDATE location_stock SET on_hand = on_hand - 2 WHERE variant_id = 'ret-loc' AND location_id = 'store-1'")
    expect(await app.run(historyDrift)).toEqual([
      { variantId: "ret-loc", locationId: "store-1", onHand: 10, reserved: 0, expectedOnHand: 12, expectedReserved: 0 }
    ])
    await sql("UPDATE location_stock SET on_hand = on_hand + 2 WHERE variant_id = 'ret-loc' AND location_id = 'store-1'")
  })
})

describe("retention fiber", () => {
  let app: TestApp
  beforeAll(async () => {
    // Defaults except a short interval: history is kept forever (HISTORY_RETENTION_DAYS=0).
    app = await startTestApp({ label: "retentionfiber", env: { RETENTION_SWEEP_INTERVAL_MS: "200" } })
  })
  afterAll(() => app?.close())

  it("runs by itself on the interval and leaves history alone when its retention is 0", async () => {
    const api = app.api
    await api.put("/v1/stock-levels/fiber-a", {})
    for (let i = 0; i < 3; i++) await api.post("/v1/stock-levels/fiber-a/adjustments", { type: "PURCHASE", quantity: 1 })
    await query(app.database.url, "UPDATE inventory_history SET created_at = now() - interval '10 years'")
    await query(app.database.url, "UPDATE outbox SET published_at = now() - interval '30 days'")
    await query(app.database.url, "INSERT INTO inbox (message_id, consumer, event_type, processed_at) VALUES ('m-1', 'orders', 'OrderCancelled', now() - interval '31 days')")
    // Wait (bounded) for the sweeper to purge the outbox and inbox.
    for (let i = 0; i < 100; i++) {
      const [row] = await query<{ n: string }>(app.database.url, "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM inbox) AS n")
      if (Number(row!.n) === 0) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(await query(app.database.url, "SELECT id FROM outbox")).toEqual([])
    expect(await query(app.database.url, "SELECT message_id FROM inbox")).toEqual([])
    expect(await query(app.database.url, "SELECT id FROM inventory_history")).toHaveLength(3)
    expect(await query(app.database.url, "SELECT id FROM inventory_history_archive")).toEqual([])
  })
})

describe("history retention with interleaved transactions", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({
      label: "retentionorder",
      env: { RETENTION_SWEEP_INTERVAL_MS: String(24 * 3_600_000), HISTORY_RETENTION_DAYS: "30" }
    })
  })
  afterAll(() => app?.close())

  it("never claims an entry archived (archived_through_id) that is still in the history", async () => {
    expect((await app.api.put("/v1/stock-levels/ret-order", {})).status).toBe(201)
    // Two writers of one variant: the first begins (its entries' created_at is its start), the second
    // begins later, takes the row first and commits; the first then writes. The later-started entry
    // gets the lower id.
    const first = new pg.Client({ connectionString: app.database.url })
    const second = new pg.Client({ connectionString: app.database.url })
    await Promise.all([first.connect(), second.connect()])
    // As the service writes: the variant's row locked first, then its location row (the totals follow by trigger).
    const write = async (client: pg.Client) => {
      await client.query("SELECT 1 FROM stock_levels WHERE variant_id = 'ret-order' FOR UPDATE")
      await client.query(`
        WITH s AS (UPDATE location_stock SET on_hand = on_hand + 1 WHERE variant_id = 'ret-order' AND location_id = 'default'
                   RETURNING on_hand, reserved)
        INSERT INTO inventory_history (variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after)
        SELECT 'ret-order', 'default', 'PURCHASE', 1, 0, on_hand, reserved FROM s`)
    }
    try {
      await first.query("BEGIN")
      await first.query("SELECT now()")
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      await second.query("BEGIN")
      await write(second)
      await second.query("COMMIT")
      await write(first)
      await first.query("COMMIT")
    } finally {
      await Promise.all([first.end(), second.end()])
    }
    // A newer entry, so neither is the variant's newest (never archived).
    expect((await app.api.post("/v1/stock-levels/ret-order/adjustments", { type: "PURCHASE", quantity: 1 })).status).toBe(200)
    const entries = await query<{ id: string; started: Date }>(app.database.url, "SELECT id, created_at AS started FROM inventory_history WHERE variant_id = 'ret-order' ORDER BY id")
    expect(entries).toHaveLength(3)
    const [lower, higher] = entries as [{ id: string; started: Date }, { id: string; started: Date }]
    expect(higher.started.getTime()).toBeLessThan(lower.started.getTime())
    // Aged in the same order: the higher id (the earlier start) past the 30 days, the lower one not.
    await query(app.database.url, "UPDATE inventory_history SET created_at = now() - interval '40 days' WHERE id = $1", [higher.id])
    await query(app.database.url, "UPDATE inventory_history SET created_at = now() - interval '20 days' WHERE id = $1", [lower.id])

    const result = await app.run(Effect.flatMap(Retention, (r) => r.sweepOnce()))
    expect(result.inventory_history).toBe(1)
    expect(await query(app.database.url, "SELECT id FROM inventory_history_archive WHERE variant_id = 'ret-order'")).toEqual([{ id: higher.id }])
    const [baseline] = await query<{ archived_through_id: string }>(
      app.database.url,
      "SELECT archived_through_id FROM inventory_history_baseline WHERE variant_id = 'ret-order'"
    )
    // Every entry up to archived_through_id is archived: none of them is still in the history.
    const claimedButKept = await query(
      app.database.url,
      "SELECT id FROM inventory_history WHERE variant_id = 'ret-order' AND id <= $1",
      [baseline!.archived_through_id]
    )
    expect(claimedButKept).toEqual([])
    expect(await app.run(historyDrift)).toEqual([])
  })
})
