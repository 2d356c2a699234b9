import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startHarness, type Harness } from "../property/harness.js"

const HOUR = 3_600_000
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const okReservation = (answer: unknown) => (answer as { ok: { reservation: { expiresAt: string; status: string } } }).ok.reservation

/**
 * A replica whose clock is wrong by an hour (Effect's Clock of the services) against a database on
 * real time: every expiry decision is taken on the database's clock, so nothing expires early, a
 * commit within the TTL succeeds, and a reservation past its TTL expires however far behind the
 * replica's clock is.
 */
describe("expiry on the database's clock, whatever the replica's clock says", () => {
  let harness: Harness
  beforeAll(async () => {
    harness = await startHarness("clockskew", { databaseClock: "real" })
    await harness.ops.configure("skew-1", 0)
    await harness.ops.adjust("skew-1", "PURCHASE", 10)
  })
  afterAll(() => harness?.close())

  it("a replica an hour ahead neither expires early nor refuses a commit within the TTL", async () => {
    // Made by a replica on the right time; then a replica an hour ahead sweeps, reads and commits.
    await harness.clock.set(Date.now())
    await harness.ops.reserve("skew-ahead-1", [{ variantId: "skew-1", quantity: 2 }], 60)
    await harness.ops.reserve("skew-ahead-2", [{ variantId: "skew-1", quantity: 3 }], 60)
    await harness.clock.set(Date.now() + HOUR)
    expect(await harness.ops.sweep()).toBe(0)
    expect(await harness.ops.get("skew-ahead-1")).toMatchObject({ ok: { status: "ACTIVE" } })
    expect(await harness.ops.commit("skew-ahead-1")).toMatchObject({ ok: { status: "COMMITTED" } })
    expect(await harness.ops.release("skew-ahead-2")).toMatchObject({ ok: { status: "RELEASED" } })
    // What it creates expires at the database's now + TTL, not its own.
    const created = okReservation(await harness.ops.reserve("skew-ahead-3", [{ variantId: "skew-1", quantity: 1 }], 60))
    expect(Math.abs(Date.parse(created.expiresAt) - (Date.now() + 60_000))).toBeLessThan(30_000)
  })

  it("a replica an hour behind still expires a reservation once its TTL has passed on the database", async () => {
    await harness.clock.set(Date.now())
    const created = okReservation(await harness.ops.reserve("skew-behind-1", [{ variantId: "skew-1", quantity: 1 }], 1))
    await harness.clock.set(Date.now() - HOUR)
    await sleep(Math.max(0, Date.parse(created.expiresAt) - Date.now()) + 300)
    expect(await harness.ops.get("skew-behind-1")).toMatchObject({ ok: { status: "EXPIRED" } })
    expect(await harness.ops.sweep()).toBe(1)
    expect(await harness.ops.commit("skew-behind-1")).toMatchObject({ error: "ReservationNotActive", fields: { reservationStatus: "EXPIRED" } })
  })
})
