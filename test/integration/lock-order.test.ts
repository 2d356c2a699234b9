import { Effect, Schema } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ReservationRequest } from "../../src/domain/Reservation.js"
import { reconcile } from "../../src/services/Reconcile.js"
import { Reservations } from "../../src/services/Reservations.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query, untilWaitingForLock } from "../support/database.js"

const decodeRequest = Schema.decodeUnknownSync(ReservationRequest)
const ROUNDS = 6
const VARIANTS = 6

/** A small deterministic generator: the same mix every run. */
const random = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return seed / 2_147_483_648
}

/**
 * ADR 0005: no writer deadlocks, because every transaction takes the stock rows it touches in one
 * ordered statement, or extra rows only with SKIP LOCKED. Creates that must expire due reservations
 * first (lazy expiry) race commits, releases and sweep batches over overlapping variants against the
 * real PostgreSQL; a deadlock would show as a retried transaction (40P01), invisible to clients.
 */
describe("lock order under lazy expiry, commits, releases and sweeps", () => {
  let app: TestApp
  beforeAll(async () => {
    // The background sweeper stays out of the way; the test fires sweep batches itself.
    app = await startTestApp({ label: "lockorder", env: { RESERVATION_SWEEP_INTERVAL_MS: String(3_600_000), RATE_LIMIT_RPS: "0" } })
  })
  afterAll(() => app?.close())

  const retries = async (code: string) => {
    const text = await (await fetch(`${app.baseUrl}/metrics`)).text()
    const line = text.split("\n").find((l) => l.startsWith("inventory_db_transaction_retries_total{") && l.includes(`code="${code}"`))
    return line === undefined ? 0 : Number(line.split(" ").pop())
  }

  const reserve = (orderId: string, lines: ReadonlyArray<{ variantId: string; quantity: number }>, ttlSeconds = 900) =>
    app.run(
      Effect.flatMap(Reservations, (r) => r.create(decodeRequest({ orderId, lines, ttlSeconds }))).pipe(
        Effect.result
      )
    )

  it("never deadlocks (inventory_db_transaction_retries_total{code=\"40P01\"} stays 0) and the records add up", async () => {
    const next = random(42)
    const pick = (round: number, n: number) => {
      const ids = new Set<string>()
      while (ids.size < n) ids.add(`lo${round}-v${Math.floor(next() * VARIANTS)}`)
      return [...ids].map((variantId) => ({ variantId, quantity: 1 }))
    }
    const deadlocksBefore = await retries("40P01")
    for (let round = 0; round < ROUNDS; round++) {
      const variants = Array.from({ length: VARIANTS }, (_, i) => `lo${round}-v${i}`)
      await Promise.all(
        variants.map(async (id) => {
          expect((await app.api.put(`/v1/stock-levels/${id}`, {})).status).toBe(201)
          expect((await app.api.post(`/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: 8 })).status).toBe(200)
        })
      )
      // Reservations over 2-3 variants each: most soon due (made due below), some live ones to commit or release.
      const due = Array.from({ length: 14 }, (_, i) => ({ orderId: `lo${round}-due-${i}`, lines: pick(round, 2 + Math.floor(next() * 2)) }))
      const live = Array.from({ length: 8 }, (_, i) => ({ orderId: `lo${round}-live-${i}`, lines: pick(round, 2) }))
      await Promise.all([...due, ...live].map((r) => reserve(r.orderId, r.lines)))
      await query(app.database.url, "UPDATE reservations SET expires_at = now() - interval '1 second' WHERE order_id LIKE $1", [`lo${round}-due-%`])

      // Creates short of stock (they expire due reservations first), commits, releases and small sweep batches, all at once.
      const creates = Array.from({ length: 16 }, (_, i) => () => reserve(`lo${round}-new-${i}`, pick(round, 3).map((l) => ({ ...l, quantity: 2 }))))
      const settles = live.map((r, i) => () =>
        app.run(Effect.flatMap(Reservations, (s) => (i % 2 === 0 ? s.commit(r.orderId) : s.release(r.orderId))).pipe(Effect.result))
      )
      const sweeps = Array.from({ length: 4 }, () => () => app.run(Effect.flatMap(Reservations, (s) => s.expireDue(2))))
      const all = [...creates, ...settles, ...sweeps].sort(() => next() - 0.5)
      await Promise.all(all.map((run) => run()))
    }
    expect((await app.run(reconcile)).drifts).toEqual([])
    const [{ n }] = (await query<{ n: string }>(
      app.database.url,
      "SELECT count(*) AS n FROM stock_levels WHERE reserved < 0 OR reserved > on_hand"
    )) as [{ n: string }]
    expect(Number(n)).toBe(0)
    expect((await retries("40P01")) - deadlocksBefore).toBe(0)
  })

  // A batch of creates claims its orderIds and locks its stock rows in one statement; the claim must
  // come first, as in every writer (reservation rows before stock rows), or a batch waiting for a
  // concurrent claim of one of its orderIds would hold stock rows meanwhile and could deadlock.
  it.each([
    ["rolls back: the batch then claims the order and reserves", "ROLLBACK", 201],
    ["commits: the batch answers the stored reservation's conflict", "COMMIT", 409]
  ])("a batch of creates waiting for a concurrent claim of its orderId holds no stock row; the other claim %s", async (_, end, status) => {
    const variantId = `lo-claim-${end.toLowerCase()}`
    const orderId = `lo-claim-order-${end.toLowerCase()}`
    expect((await app.api.put(`/v1/stock-levels/${variantId}`, {})).status).toBe(201)
    expect((await app.api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: 5 })).status).toBe(200)
    const claimer = new pg.Client({ connectionString: app.database.url })
    const other = new pg.Client({ connectionString: app.database.url })
    await claimer.connect()
    await other.connect()
    try {
      await claimer.query("BEGIN")
      await claimer.query("INSERT INTO reservations (order_id, status, expires_at) VALUES ($1, 'ACTIVE', now() + interval '1 hour')", [orderId])
      const answer = app.api.post("/v1/reservations", { orderId, lines: [{ variantId, quantity: 2 }] })
      await untilWaitingForLock(app.database.url, "INSERT INTO reservations")
      // The variant's row is free while the batch waits: NOWAIT would fail (55P03) if the batch held it.
      await other.query("BEGIN")
      expect((await other.query("SELECT variant_id FROM stock_levels WHERE variant_id = $1 FOR UPDATE NOWAIT", [variantId])).rowCount).toBe(1)
      await other.query("ROLLBACK")
      await claimer.query(end)
      expect((await answer).status).toBe(status)
    } finally {
      await claimer.end()
      await other.end()
    }
    expect((await app.api.get(`/v1/stock-levels/${variantId}`)).body).toMatchObject({ onHand: 5, reserved: status === 201 ? 2 : 0 })
  })
})
