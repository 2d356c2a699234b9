import * as fc from "fast-check"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startHarness, type Answer, type Harness } from "./harness.js"
import { DEFAULT_LOCATION, Model, type ModelEvent, type ModelHistory, type ModelLine } from "./model.js"

/**
 * Model-based tests of the reservation logic against the real PostgreSQL: random sequences of
 * create-variant / adjust / reserve / release / commit / get / move-the-clock / sweep, each compared
 * with the model's answer, and after every step the database compared with the model: stock levels,
 * their `default` location rows, reservations with their allocations, exactly the history entries
 * and outbox events the step should write, and the invariants (0 <= reserved <= onHand, reserved =
 * Σ ACTIVE lines, counters = Σ history).
 */
const RUNS = Number(process.env["PROPERTY_RUNS"] ?? 60)
const VARIANTS = ["v0", "v1", "v2", "v3", "v4"]
const ORDERS = ["o0", "o1", "o2", "o3", "o4", "o5"]

interface Real {
  readonly harness: Harness
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
  const { rows: levels } = await real.db.query(
    "SELECT variant_id, on_hand, reserved, version, low_stock_threshold FROM stock_levels ORDER BY variant_id"
  )
  expect(levels).toEqual(
    [...model.variants.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, v]) => ({ variant_id: id, on_hand: v.onHand, reserved: v.reserved, version: v.version, low_stock_threshold: v.threshold }))
  )
  for (const level of levels) expect(0 <= level.reserved && level.reserved <= level.on_hand).toBe(true)
  // v1 calls act on `default` only: each variant's stock is all in its one location row there.
  const { rows: locations } = await real.db.query(
    "SELECT variant_id, location_id, on_hand, reserved, version FROM location_stock ORDER BY variant_id, location_id"
  )
  expect(locations).toEqual(
    [...model.variants.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, v]) => ({ variant_id: id, location_id: DEFAULT_LOCATION, on_hand: v.onHand, reserved: v.reserved, version: v.locationVersion }))
  )

  const { rows: reservations } = await real.db.query(`
    SELECT r.order_id, r.status, r.expires_at, json_agg(json_build_object('variantId', l.variant_id, 'quantity', l.quantity) ORDER BY l.variant_id) AS lines
      FROM reservations r JOIN reservation_lines l USING (order_id) GROUP BY r.order_id ORDER BY r.order_id`)
  expect(reservations.map((r) => ({ ...r, expires_at: r.expires_at.getTime() }))).toEqual(
    [...model.reservations.values()]
      .sort((a, b) => (a.orderId < b.orderId ? -1 : 1))
      .map((r) => ({ order_id: r.orderId, status: r.status, expires_at: r.expiresAt, lines: r.lines }))
  )
  // Each line is held whole at `default`.
  const { rows: allocations } = await real.db.query(
    "SELECT order_id, variant_id, location_id, quantity FROM reservation_allocations ORDER BY order_id, variant_id, location_id"
  )
  expect(allocations).toEqual(
    [...model.reservations.values()]
      .sort((a, b) => (a.orderId < b.orderId ? -1 : 1))
      .flatMap((r) => r.lines.map((l) => ({ order_id: r.orderId, variant_id: l.variantId, location_id: DEFAULT_LOCATION, quantity: l.quantity })))
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

const variantId = fc.constantFrom(...VARIANTS)
const orderId = fc.constantFrom(...ORDERS)
const line = fc.record({ variantId, quantity: fc.integer({ min: 1, max: 4 }) })

const reserveCommand = fc
  .tuple(orderId, fc.array(line, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 60 }))
  .map(([order, lines, ttl]) => step(`reserve(${order}, ${JSON.stringify(lines)}, ttl ${ttl})`, () => true, async (m, r) => {
    sameAnswer(await r.harness.ops.reserve(order, lines as ReadonlyArray<ModelLine>, ttl), m.reserve(order, lines, ttl))
  }))

const commands = [
  // Reservations are what is tested: weighted up.
  reserveCommand,
  reserveCommand,
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

const initialStock = fc.tuple(...VARIANTS.slice(0, 4).map((id) => fc.tuple(fc.constant(id), fc.integer({ min: 0, max: 6 }))))

describe("reservation logic against a model (fast-check, real PostgreSQL)", () => {
  let harness: Harness
  let db: pg.Client
  beforeAll(async () => {
    harness = await startHarness("resvmodel")
    db = new pg.Client({ connectionString: harness.database.url })
    await db.connect()
  })
  afterAll(async () => {
    await db?.end()
    await harness?.close()
  })

  it("answers and stores exactly what the model says, step by step", async () => {
    await fc.assert(
      fc.asyncProperty(initialStock, fc.commands(commands, { maxCommands: 40 }), async (stock, cmds) => {
        await harness.ops.truncate()
        const start = Date.parse("2030-01-01T00:00:00.000Z")
        await harness.clock.set(start)
        const model = new Model(start)
        const real: Real = { harness, db, lastHistoryId: 0, lastOutboxId: 0 }
        // Most variants exist with a little stock from the start (v4 stays unknown until configured).
        for (const [id, onHand] of stock) {
          await harness.ops.configure(id, 1)
          model.configure(id, 1)
          if (onHand > 0) sameAnswer(await harness.ops.adjust(id, "PURCHASE", onHand), model.adjust(id, "PURCHASE", onHand))
        }
        await checkAgainstModel(model, real)
        await fc.asyncModelRun(() => ({ model, real }), cmds)
      }),
      { numRuns: RUNS }
    )
  })
})
