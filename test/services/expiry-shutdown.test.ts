import { Effect, Fiber } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Reservations } from "../../src/services/Reservations.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query, untilWaitingForLock } from "../support/database.js"

/**
 * Shutdown interrupts the expiry sweeper. A batch caught inside a query (here: waiting for a stock
 * row another session holds) must finish rather than be cancelled mid-query: interrupting a query
 * makes the driver cancel whatever runs on that connection by then, possibly another's statement.
 */
describe("an expiry sweep batch interrupted at shutdown", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "expirystop", env: { RESERVATION_SWEEP_INTERVAL_MS: String(3_600_000), RATE_LIMIT_RPS: "0" } })
  })
  afterAll(() => app?.close())

  it("finishes the batch it is in (the reservation is expired) before the interrupt completes", async () => {
    expect((await app.api.put("/v1/stock-levels/stop-1", {})).status).toBe(201)
    expect((await app.api.post("/v1/stock-levels/stop-1/adjustments", { type: "PURCHASE", quantity: 3 })).status).toBe(200)
    expect((await app.api.post("/v1/reservations", { orderId: "stop-o1", lines: [{ variantId: "stop-1", quantity: 2 }] })).status).toBe(201)
    await query(app.database.url, "UPDATE reservations SET expires_at = now() - interval '1 second' WHERE order_id = 'stop-o1'")

    const blocker = new pg.Client({ connectionString: app.database.url })
    await blocker.connect()
    try {
      await blocker.query("BEGIN")
      await blocker.query("SELECT 1 FROM stock_levels WHERE variant_id = 'stop-1' FOR UPDATE")
      const batch = await app.run(Effect.forkDetach(Effect.flatMap(Reservations, (r) => r.expireDue(200))))
      // Wait until the batch's query is waiting for the row lock.
      await untilWaitingForLock(app.database.url)
      const interrupted = app.run(Fiber.interrupt(batch))
      await new Promise((resolve) => setTimeout(resolve, 300))
      await blocker.query("COMMIT")
      await interrupted
    } finally {
      await blocker.end()
    }
    // The batch ran to its end: it committed the expiry (not cancelled, not rolled back).
    const [reservation] = await query<{ status: string }>(app.database.url, "SELECT status FROM reservations WHERE order_id = 'stop-o1'")
    expect(reservation!.status).toBe("EXPIRED")
    expect((await app.api.get("/v1/stock-levels/stop-1")).body).toMatchObject({ onHand: 3, reserved: 0 })
  })
})
