import * as fc from "fast-check"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import type { client, JsonResponse } from "../support/http.js"
import { startHarness, type Answer, type Harness } from "./harness.js"
import { type BulkItem, DEFAULT_LOCATION, type HttpAnswer, Model, type ModelEvent, type ModelHistory, type ModelLine } from "./model.js"

/**
 * Model-based tests of the stock and reservation logic against the real PostgreSQL: random sequences
 * of create-variant / adjust / reserve / release / commit / get / move-the-clock / sweep (the services,
 * on a manual clock) and, over HTTP on the same database, create or change a location (priority,
 * deactivate), stock a variant at a location with safety stock, adjust at a location, transfer and
 * bulk adjustments; each compared with the model's answer, and after every step the database compared
 * with the model: totals (available = Σ over active locations of max(0, onHand − reserved −
 * safetyStock)), every location row, locations, reservations with their allocations (PRIORITY, the
 * rule of src/domain/Allocation.ts), exactly the history entries and outbox events the step should
 * write, and reconciliation (reserved = Σ ACTIVE allocations, counters = Σ history). Bursts of
 * concurrent reservations (duplicates of one orderId; different orders on different variants) go
 * through group commit's shared batches and still answer what the model says.
 */
const RUNS = Number(process.env["PROPERTY_RUNS"] ?? 60)
const VARIANTS = ["v0", "v1", "v2", "v3", "v4"]
const ORDERS = ["o0", "o1", "o2", "o3", "o4", "o5"]
const LOCATIONS = [DEFAULT_LOCATION, "wA", "wB"]

interface Real {
  readonly harness: Harness
  /** The HTTP API on the same database (locations calls). */
  readonly api: ReturnType<typeof client>
  readonly db: pg.Client
  lastHistoryId: number
  lastOutboxId: number
}

const groupBy = <A>(items: ReadonlyArray<A>, key: (a: A) => string) => {
  const groups: Record<string, Array<A>> = {}
  for (const item of items) (groups[key(item)] ??= []).push(item)
  return groups
}

/** The database agrees with the model, and the step wrote exactly the expected history and events. */
const checkAgainstModel = async (model: Model, real: Real) => {
  const sorted = <V>(map: ReadonlyMap<string, V>) => [...map.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
  const { rows: levels } = await real.db.query(
    "SELECT variant_id, on_hand, reserved, available, status, version, low_stock_threshold FROM stock_levels ORDER BY variant_id"
  )
  expect(levels).toEqual(
    sorted(model.variants).map(([id, v]) => {
      const t = model.totals(id)
      return { variant_id: id, on_hand: t.onHand, reserved: t.reserved, available: t.available, status: t.status, version: v.version, low_stock_threshold: v.threshold }
    })
  )
  const { rows: locations } = await real.db.query("SELECT location_id, name, priority, active FROM locations ORDER BY location_id")
  expect(locations).toEqual(sorted(model.locations).map(([id, l]) => ({ location_id: id, name: l.name, priority: l.priority, active: l.active })))
  // Every (variant, location) row, with its own version; 0 <= reserved <= onHand holds per row.
  const { rows: stock } = await real.db.query(
    "SELECT variant_id, location_id, on_hand, reserved, safety_stock, version FROM location_stock ORDER BY variant_id, location_id"
  )
  expect(stock).toEqual(
    sorted(model.variants).flatMap(([id, v]) =>
      sorted(v.rows).map(([locationId, row]) => ({
        variant_id: id,
        location_id: locationId,
        on_hand: row.onHand,
        reserved: row.reserved,
        safety_stock: row.safetyStock,
        version: row.version
      }))
    )
  )
  for (const row of stock) expect(0 <= row.reserved && row.reserved <= row.on_hand).toBe(true)

  const { rows: reservations } = await real.db.query(`
    SELECT r.order_id, r.status, r.expires_at, json_agg(json_build_object('variantId', l.variant_id, 'quantity', l.quantity) ORDER BY l.variant_id) AS lines
      FROM reservations r JOIN reservation_lines l USING (order_id) GROUP BY r.order_id ORDER BY r.order_id`)
  expect(reservations.map((r) => ({ ...r, expires_at: r.expires_at.getTime() }))).toEqual(
    [...model.reservations.values()]
      .sort((a, b) => (a.orderId < b.orderId ? -1 : 1))
      .map((r) => ({ order_id: r.orderId, status: r.status, expires_at: r.expiresAt, lines: r.lines.map((l) => ({ variantId: l.variantId, quantity: l.quantity })) }))
  )
  // Where each line is held, as the allocation rule decided.
  const { rows: allocations } = await real.db.query(
    `SELECT order_id, variant_id, location_id, quantity FROM reservation_allocations ORDER BY order_id, variant_id, location_id COLLATE "C"`
  )
  expect(allocations).toEqual(
    [...model.reservations.values()]
      .sort((a, b) => (a.orderId < b.orderId ? -1 : 1))
      .flatMap((r) =>
        r.lines.flatMap((l) => l.allocations.map((a) => ({ order_id: r.orderId, variant_id: l.variantId, location_id: a.locationId, quantity: a.quantity })))
      )
  )

  const { rows: history } = await real.db.query(
    `SELECT id, variant_id, location_id, type, on_hand_change, reserved_change, on_hand_after, reserved_after, order_id
       FROM inventory_history WHERE id > $1 ORDER BY id`,
    [real.lastHistoryId]
  )
  const written = history.map(
    (h): ModelHistory => ({
      variantId: h.variant_id,
      locationId: h.location_id,
      type: h.type,
      onHandChange: h.on_hand_change,
      reservedChange: h.reserved_change,
      onHandAfter: h.on_hand_after,
      reservedAfter: h.reserved_after,
      orderId: h.order_id
    })
  )
  expect(groupBy(written, (h) => h.variantId)).toEqual(groupBy(model.history, (h) => h.variantId))
  real.lastHistoryId = Math.max(real.lastHistoryId, ...history.map((h) => Number(h.id)))
  model.history = []

  const { rows: outbox } = await real.db.query("SELECT id, event_type, aggregate_id, payload FROM outbox WHERE id > $1 ORDER BY id", [real.lastOutboxId])
  const published = outbox.map((e): ModelEvent => ({ eventType: e.event_type, aggregateId: e.aggregate_id, data: e.payload.data }))
  // Per aggregate, in commit order: what consumers see.
  expect(groupBy(published, (e) => e.aggregateId)).toEqual(groupBy(model.events, (e) => e.aggregateId))
  real.lastOutboxId = Math.max(real.lastOutboxId, ...outbox.map((e) => Number(e.id)))
  model.events = []

  expect((await real.harness.ops.reconcile()).drifts).toEqual([])
}

type Cmd = fc.AsyncCommand<Model, Real>
const step = (label: string, canRun: (m: Readonly<Model>) => boolean, run: (m: Model, r: Real) => Promise<void>): Cmd => ({
  check: canRun,
  run: async (m, r) => {
    await run(m, r)
    await checkAgainstModel(m, r)
  },
  toString: () => label
})
const sameAnswer = (real: Answer, expected: Answer) => expect(real).toEqual(expected)

/** What a client notices of an HTTP answer, in the model's terms (timestamps, ids and free text left out). */
type Json = Readonly<Record<string, unknown>>
const field = (value: unknown, key: string): unknown => (typeof value === "object" && value !== null ? (value as Json)[key] : undefined)
const items = (value: unknown): ReadonlyArray<unknown> => (Array.isArray(value) ? value : [])
const pick = (value: unknown, keys: ReadonlyArray<string>) => Object.fromEntries(keys.map((key) => [key, field(value, key)]))
const stripLocationStock = (stock: unknown) => pick(stock, ["locationId", "onHand", "reserved", "safetyStock", "available", "version"])
const stripStockLevel = (level: unknown) => ({
  ...pick(level, ["variantId", "onHand", "reserved", "available", "lowStockThreshold", "status", "version"]),
  locations: items(field(level, "locations")).map(stripLocationStock)
})
const stripEntry = (entry: unknown) =>
  pick(entry, ["variantId", "locationId", "type", "onHandChange", "reservedChange", "onHandAfter", "reservedAfter"])
const stripLocation = (location: unknown) => pick(location, ["locationId", "name", "priority", "active"])
const observed = (res: JsonResponse<unknown>, shape: (body: unknown) => unknown): HttpAnswer => {
  if (res.status >= 400) {
    expect(res.headers.get("content-type")).toContain("application/problem+json")
    const failures = field(res.body, "failures")
    return {
      status: res.status,
      body: { code: field(res.body, "code"), ...(failures === undefined ? {} : { failures: items(failures).map((f) => pick(f, ["index", "code"])) }) }
    }
  }
  return { status: res.status, body: shape(res.body) }
}
const sameHttp = (real: HttpAnswer, expected: HttpAnswer) => expect(real).toEqual(expected)

const variantId = fc.constantFrom(...VARIANTS)
const orderId = fc.constantFrom(...ORDERS)
const locationId = fc.constantFrom(...LOCATIONS)
/** Two different locations (a transfer's from and to). */
const pairs = LOCATIONS.flatMap((from) => LOCATIONS.filter((to) => to !== from).map((to) => [from, to] as const))
const line = fc.record({ variantId, quantity: fc.integer({ min: 1, max: 4 }) })
/** PURCHASE / SALE take a quantity > 0; RECOUNT the counted onHand (0 included). */
const adjustItem = fc
  .tuple(variantId, fc.constantFrom("PURCHASE" as const, "SALE" as const, "RECOUNT" as const), fc.integer({ min: 0, max: 8 }), fc.option(locationId, { nil: undefined }))
  .map(([id, type, quantity, at]): BulkItem => ({ variantId: id, type, quantity: type === "RECOUNT" ? quantity : Math.max(1, quantity), ...(at === undefined ? {} : { locationId: at }) }))

const reserveCommand = fc
  .tuple(orderId, fc.array(line, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 60 }))
  .map(([order, lines, ttl]) => step(`reserve(${order}, ${JSON.stringify(lines)}, ttl ${ttl})`, () => true, async (m, r) => {
    sameAnswer(await r.harness.ops.reserve(order, lines as ReadonlyArray<ModelLine>, ttl), m.reserve(order, lines, ttl))
  }))

/**
 * Group commit: the same reservation sent 2-5 times at once. The requests can land in one batch;
 * the batcher decides one per orderId per batch, so whatever the batching the answers are the model's
 * for that many requests one after another (in some order: they are compared as a multiset).
 */
const duplicateBurstCommand = fc
  .tuple(orderId, fc.array(line, { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 60 }), fc.integer({ min: 2, max: 5 }))
  .map(([order, lines, ttl, copies]) => step(`duplicates(${order}, ${JSON.stringify(lines)}, ttl ${ttl}, x${copies})`, () => true, async (m, r) => {
    const real = await Promise.all(Array.from({ length: copies }, () => r.harness.ops.reserve(order, lines as ReadonlyArray<ModelLine>, ttl)))
    const expected = Array.from({ length: copies }, () => m.reserve(order, lines, ttl))
    const asSet = (answers: ReadonlyArray<Answer>) => answers.map((a) => JSON.stringify(a)).sort()
    expect(asSet(real)).toEqual(asSet(expected))
  }))

/**
 * Group commit: reservations of different orders on different variants sent at once (after a sweep,
 * so no lazy expiry couples them): they land in shared batches with mixed outcomes, and each answer
 * is the model's for that request alone.
 */
const disjointBurstCommand = fc
  .tuple(fc.shuffledSubarray(ORDERS, { minLength: 2, maxLength: 4 }), fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 4, maxLength: 4 }))
  .map(([orders, quantities]) => {
    const requests = orders.map((order, i) => ({ order, lines: [{ variantId: VARIANTS[i]!, quantity: quantities[i]! }] }))
    return step(`burst(${JSON.stringify(requests)})`, () => true, async (m, r) => {
      expect(await r.harness.ops.sweep()).toBe(m.sweep())
      const real = await Promise.all(requests.map(({ order, lines }) => r.harness.ops.reserve(order, lines, 60)))
      requests.forEach(({ order, lines }, i) => sameAnswer(real[i]!, m.reserve(order, lines, 60)))
    })
  })

/** Which of the locations endpoints this build serves (found out once, in beforeAll). */
interface Served {
  readonly adjustAtLocation: boolean
  readonly transfers: boolean
  readonly bulk: boolean
}

const commandsFor = (served: Served) => [
  // Reservations are what is tested: weighted up.
  reserveCommand,
  reserveCommand,
  reserveCommand,
  duplicateBurstCommand,
  disjointBurstCommand,
  fc
    .tuple(variantId, fc.integer({ min: 0, max: 3 }))
    .map(([id, threshold]) => step(`configure(${id}, ${threshold})`, () => true, async (m, r) => {
      await r.harness.ops.configure(id, threshold)
      m.configure(id, threshold)
    })),
  fc
    .tuple(variantId, fc.constantFrom("PURCHASE" as const, "SALE" as const), fc.integer({ min: 1, max: 8 }))
    .map(([id, type, quantity]) => step(`adjust(${id}, ${type}, ${quantity})`, () => true, async (m, r) => {
      sameAnswer(await r.harness.ops.adjust(id, type, quantity), m.adjust(id, type, quantity))
    })),
  // Create or change a location: priorities reorder allocation, `active: false` deactivates it.
  fc
    .tuple(locationId, fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }), fc.option(fc.boolean(), { nil: undefined }))
    .map(([id, priority, active]) => {
      const body = { name: id === DEFAULT_LOCATION ? "Default" : `Location ${id}`, ...(priority === undefined ? {} : { priority }), ...(active === undefined ? {} : { active }) }
      return step(`putLocation(${id}, ${JSON.stringify(body)})`, () => true, async (m, r) => {
        const res = await r.api.put(`/v1/locations/${id}`, body)
        sameHttp(observed(res, stripLocation), m.putLocation(id, body))
      })
    }),
  fc.tuple(locationId, fc.constant(false)).map(([id, active]) => step(`deactivate(${id})`, (m) => m.locations.has(id), async (m, r) => {
    const body = { name: id === DEFAULT_LOCATION ? "Default" : `Location ${id}`, active }
    const res = await r.api.put(`/v1/locations/${id}`, body)
    sameHttp(observed(res, stripLocation), m.putLocation(id, body))
  })),
  fc
    .tuple(variantId, locationId, fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }))
    .map(([id, at, safetyStock]) => step(`stockAt(${id}, ${at}, safety ${safetyStock})`, () => true, async (m, r) => {
      const res = await r.api.put(`/v1/stock-levels/${id}/locations/${at}`, safetyStock === undefined ? {} : { safetyStock })
      sameHttp(observed(res, stripLocationStock), m.stockAt(id, at, safetyStock))
    })),
  ...(served.adjustAtLocation
    ? [
        adjustItem.map((item) => step(`adjustAt(${JSON.stringify(item)})`, () => true, async (m, r) => {
          const { variantId: id, ...adjustment } = item
          const res = await r.api.post(`/v1/stock-levels/${id}/adjustments`, adjustment)
          sameHttp(observed(res, (b) => ({ stockLevel: stripStockLevel(field(b, "stockLevel")), entry: stripEntry(field(b, "entry")) })), m.adjustAt(item))
        }))
      ]
    : []),
  ...(served.transfers
    ? [
        // A fixed quantity, or the source's available (+1: just refused), where safety stock decides.
        fc.tuple(variantId, fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...pairs) }, fc.constantFrom(...LOCATIONS.map((at) => [at, at] as const))), fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constantFrom("available" as const, "available+1" as const))).map(([id, [from, to], asked]) =>
          step(`transfer(${id}, ${from} -> ${to}, ${asked})`, () => true, async (m, r) => {
            const source = m.variants.get(id)?.rows.get(from)
            const available = source === undefined ? 0 : Math.max(0, source.onHand - source.reserved - source.safetyStock)
            const quantity = typeof asked === "number" ? asked : Math.max(1, available + (asked === "available" ? 0 : 1))
            const res = await r.api.post(`/v1/stock-levels/${id}/transfers`, { fromLocationId: from, toLocationId: to, quantity })
            sameHttp(
              observed(res, (b) => ({ stockLevel: stripStockLevel(field(b, "stockLevel")), entries: items(field(b, "entries")).map(stripEntry) })),
              m.transfer(id, from, to, quantity)
            )
          }))
      ]
    : []),
  ...(served.bulk
    ? [
        fc.tuple(fc.array(adjustItem, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([batch, atomic]) =>
          step(`bulk(${JSON.stringify(batch)}, atomic ${atomic})`, () => true, async (m, r) => {
            const res = await r.api.post("/v1/adjustments", { items: batch, atomic })
            sameHttp(
              observed(res, (b) => ({
                results: items(field(b, "results")).map((x) => {
                  const problem = field(x, "problem")
                  const level = field(x, "stockLevel")
                  return {
                    ...pick(x, ["index", "status"]),
                    ...(level === undefined ? {} : { stockLevel: stripStockLevel(level) }),
                    ...(problem === undefined ? {} : { problem: pick(problem, ["code"]) })
                  }
                })
              })),
              m.bulk(batch, atomic)
            )
          }))
      ]
    : []),
  orderId.map((order) => step(`release(${order})`, () => true, async (m, r) => {
    sameAnswer(await r.harness.ops.release(order), m.release(order))
  })),
  orderId.map((order) => step(`commit(${order})`, () => true, async (m, r) => {
    sameAnswer(await r.harness.ops.commit(order), m.commit(order))
  })),
  orderId.map((order) => step(`get(${order})`, () => true, async (m, r) => {
    sameAnswer(await r.harness.ops.get(order), m.get(order))
  })),
  fc.integer({ min: 1, max: 90 }).map((seconds) => step(`advanceClock(${seconds}s)`, () => true, async (m, r) => {
    await r.harness.clock.advance(seconds * 1000)
    m.now += seconds * 1000
  })),
  fc.constant(null).map(() => step("sweep()", () => true, async (m, r) => {
    expect(await r.harness.ops.sweep()).toBe(m.sweep())
  }))
]

/** wA and wB with their priorities; per variant (v4 stays unknown), units and safety stock at each location. */
const initialState = fc.record({
  priorities: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })),
  stock: fc.tuple(
    ...VARIANTS.slice(0, 4).map((id) =>
      fc.tuple(fc.constant(id), fc.tuple(...LOCATIONS.map((at) => fc.record({ at: fc.constant(at), onHand: fc.integer({ min: 0, max: 5 }), safetyStock: fc.integer({ min: 0, max: 2 }) }))))
    )
  )
})

describe("reservation and location logic against a model (fast-check, real PostgreSQL)", () => {
  let harness: Harness
  let app: TestApp
  let db: pg.Client
  let served: Served
  beforeAll(async () => {
    harness = await startHarness("resvmodel")
    // The HTTP app on the harness's database, for the locations calls; its own sweepers stay idle
    // (they would expire reservations on the test's clock behind the model's back).
    app = await startTestApp({
      database: harness.database,
      env: { RESERVATION_SWEEP_INTERVAL_MS: "2000000000", RETENTION_SWEEP_INTERVAL_MS: "2000000000" }
    })
    db = new pg.Client({ connectionString: harness.database.url })
    await db.connect()
    // Endpoints still being built answer 404 for their route: their commands are left out until served.
    await app.api.put("/v1/locations/probe", { name: "probe" })
    await harness.ops.configure("probe", 0)
    const adjusted = await app.api.post("/v1/stock-levels/probe/adjustments", { type: "PURCHASE", quantity: 1, locationId: "probe" })
    served = {
      adjustAtLocation: adjusted.status === 200 && adjusted.body?.entry?.locationId === "probe",
      transfers: (await app.api.post("/v1/stock-levels/probe/transfers", {})).status === 400,
      bulk: (await app.api.post("/v1/adjustments", {})).status === 400
    }
    console.info(`model test: commands for ${JSON.stringify(served)}`)
  })
  afterAll(async () => {
    await db?.end()
    await app?.close()
    await harness?.close()
  })

  it("answers and stores exactly what the model says, step by step", async () => {
    const commands = commandsFor(served)
    await fc.assert(
      fc.asyncProperty(initialState, fc.commands(commands, { maxCommands: 40, size: "+1" }), async (initial, cmds) => {
        await harness.ops.truncate()
        // Locations are not truncated (history references them): back to `default` alone.
        await db.query("DELETE FROM locations WHERE location_id <> 'default'")
        await db.query("UPDATE locations SET name = 'Default', priority = 0, active = true WHERE location_id = 'default'")
        const start = Date.parse("2030-01-01T00:00:00.000Z")
        await harness.clock.set(start)
        const model = new Model(start)
        const real: Real = { harness, api: app.api, db, lastHistoryId: 0, lastOutboxId: 0 }
        const http = async (expected: HttpAnswer, res: Promise<JsonResponse<unknown>>, shape: (body: unknown) => unknown) =>
          sameHttp(observed(await res, shape), expected)
        // wA and wB exist from the start; most variants are stocked at several locations, some with
        // safety stock, so reservations split and safety stock matters from the first step.
        for (const [i, at] of ["wA", "wB"].entries()) {
          const body = { name: `Location ${at}`, priority: initial.priorities[i]! }
          await http(model.putLocation(at, body), app.api.put(`/v1/locations/${at}`, body), stripLocation)
        }
        for (const [id, rows] of initial.stock) {
          await harness.ops.configure(id, 1)
          model.configure(id, 1)
          for (const { at, onHand, safetyStock } of rows) {
            if (at !== DEFAULT_LOCATION && !served.adjustAtLocation) continue
            await http(model.stockAt(id, at, safetyStock), app.api.put(`/v1/stock-levels/${id}/locations/${at}`, { safetyStock }), stripLocationStock)
            if (onHand === 0) continue
            if (at === DEFAULT_LOCATION) sameAnswer(await harness.ops.adjust(id, "PURCHASE", onHand), model.adjust(id, "PURCHASE", onHand))
            else {
              await http(
                model.adjustAt({ variantId: id, type: "PURCHASE", quantity: onHand, locationId: at }),
                app.api.post(`/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: onHand, locationId: at }),
                (b) => ({ stockLevel: stripStockLevel(field(b, "stockLevel")), entry: stripEntry(field(b, "entry")) })
              )
            }
          }
        }
        await checkAgainstModel(model, real)
        await fc.asyncModelRun(() => ({ model, real }), cmds)
      }),
      { numRuns: RUNS }
    )
    // 60 runs take ~40 s alone on the 2-core machine: room for a busy one.
  }, 240_000)
})
