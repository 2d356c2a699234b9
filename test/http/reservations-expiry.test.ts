import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { client } from "../support/http.js"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * With the sweeper far behind (it runs once at start, then once an hour), every answer about a
 * reservation past its expiresAt already says EXPIRED: GET, a repeated create, release and commit
 * agree, whatever the sweeper's timing. The stock follows when a transition (or the sweeper) expires it.
 */
describe("reservations past expiresAt before the sweeper reaches them", () => {
  let app: TestApp
  let api: ReturnType<typeof client>
  const stock = async (variantId: string, onHand: number) => {
    expect((await api.put(`/v1/stock-levels/${variantId}`, {})).status).toBe(201)
    expect((await api.post(`/v1/stock-levels/${variantId}/adjustments`, { type: "PURCHASE", quantity: onHand })).status).toBe(200)
  }
  const reserve = (orderId: string, variantId: string) =>
    api.post("/v1/reservations", { orderId, lines: [{ variantId, quantity: 1 }], ttlSeconds: 1 })

  beforeAll(async () => {
    app = await startTestApp({ label: "resvexp", env: { RESERVATION_SWEEP_INTERVAL_MS: String(3_600_000), RATE_LIMIT_RPS: "0" } })
    api = app.api
  })
  afterAll(() => app?.close())

  it("GET, a repeated create, release and commit all answer EXPIRED once expiresAt has passed", async () => {
    await stock("exp-1", 5)
    const made = await Promise.all(["exp-o1", "exp-o2", "exp-o3"].map((orderId) => reserve(orderId, "exp-1")))
    for (const res of made) expect(res.status).toBe(201)
    const expiresAt = Math.max(...made.map((res) => Date.parse(res.body.expiresAt)))
    await sleep(Math.max(0, expiresAt - Date.now()) + 300)

    const got = await api.get("/v1/reservations/exp-o1")
    expect(got.status).toBe(200)
    expect(got.body.status).toBe("EXPIRED")
    // Nothing swept yet: the stock still holds the units (the sweeper or a transition releases them).
    expect((await api.get("/v1/stock-levels/exp-1")).body).toMatchObject({ reserved: 3 })

    const again = await reserve("exp-o1", "exp-1")
    expect(again.status).toBe(200)
    expect(again.body).toMatchObject({ orderId: "exp-o1", status: "EXPIRED" })

    const released = await api.post("/v1/reservations/exp-o2/release")
    expect(released.status).toBe(200)
    expect(released.body.status).toBe("EXPIRED")

    const committed = await api.post("/v1/reservations/exp-o3/commit")
    expect(committed.status).toBe(409)
    expect(committed.body).toMatchObject({ code: "reservation-not-active", reservationStatus: "EXPIRED" })

    // Release and commit expired theirs (stock follows); GET and the repeat changed nothing.
    expect((await api.get("/v1/stock-levels/exp-1")).body).toMatchObject({ onHand: 5, reserved: 1 })
    for (const orderId of ["exp-o1", "exp-o2", "exp-o3"]) expect((await api.get(`/v1/reservations/${orderId}`)).body.status).toBe("EXPIRED")
  })
})
