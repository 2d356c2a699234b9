// The service against the real PostgreSQL reached through a TCP proxy the test controls: while the
// proxy is cut the API answers 503 problem+json with Retry-After (never 500, never hangs), readiness
// is 503 and liveness 200; once it is restored, requests succeed again without a restart.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { ADMIN_URL } from "../support/database.js"
import { type CutMode, startTcpProxy, type TcpProxy } from "../support/tcpProxy.js"

/** Far above the service's own bounds (connect timeout 1 s, readiness check 2 s): a hang fails the test. */
const NO_HANG_MS = 15_000

interface Answer {
  readonly status: number
  readonly contentType: string | null
  readonly retryAfter: string | null
  readonly body: any
}

describe("database outage", () => {
  let proxy: TcpProxy
  let app: TestApp

  const call = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const response = await fetch(app.baseUrl + path, {
      method,
      signal: AbortSignal.timeout(NO_HANG_MS),
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } })
    })
    const text = await response.text()
    return {
      status: response.status,
      contentType: response.headers.get("content-type"),
      retryAfter: response.headers.get("retry-after"),
      body: text === "" ? null : JSON.parse(text)
    }
  }

  /** Every kind of request the API serves: reads, a write in a transaction, an idempotent write, history. */
  const apiRequests = (n: number) => [
    () => call("GET", "/v1/stock-levels/outage-a"),
    () => call("GET", "/v1/stock-levels?variantId=outage-a&variantId=nope"),
    () => call("GET", "/v1/stock-levels?limit=10"),
    () => call("GET", "/v1/stock-levels/outage-a/history"),
    () => call("PUT", `/v1/stock-levels/outage-new-${n}`, { lowStockThreshold: 1 }),
    () => call("POST", "/v1/stock-levels/outage-a/adjustments", { type: "PURCHASE", quantity: 1 })
  ]

  const expectUnavailable = (answer: Answer) => {
    expect(answer.status, JSON.stringify(answer.body)).toBe(503)
    expect(answer.contentType).toContain("application/problem+json")
    expect(Number(answer.retryAfter)).toBeGreaterThan(0)
    expect(answer.body).toMatchObject({ status: 503, code: "unavailable" })
  }

  beforeAll(async () => {
    const admin = new URL(ADMIN_URL)
    proxy = await startTcpProxy({ host: admin.hostname, port: Number(admin.port || 5432) })
    app = await startTestApp({
      label: "outage",
      env: { DB_CONNECT_TIMEOUT_MS: "1000", DB_POOL_MAX: "4" },
      databaseUrl: (database) => {
        const url = new URL(database.url)
        url.host = `127.0.0.1:${proxy.port}`
        return url.toString()
      }
    })
    expect((await call("PUT", "/v1/stock-levels/outage-a", {})).status).toBe(201)
  })
  afterAll(async () => {
    await proxy?.restore()
    await app?.close()
    await proxy?.close()
  })

  it.each<CutMode>(["refuse", "reset", "silent"])(
    "answers 503 with Retry-After while the database is away (%s), and recovers by itself",
    async (mode) => {
      const before = await call("GET", "/v1/stock-levels/outage-a")
      expect(before.status).toBe(200)

      await proxy.cut(mode)
      for (const request of apiRequests(0)) expectUnavailable(await request())
      const ready = await call("GET", "/health/ready")
      expect(ready.status).toBe(503)
      expect(ready.body).toMatchObject({ status: "not-ready", checks: { database: { status: "down" } } })
      expect((await call("GET", "/health/live")).status).toBe(200)

      await proxy.restore()
      // The pool reconnects on demand: the first requests after the restore already succeed.
      expect((await call("GET", "/health/ready")).status).toBe(200)
      const after = await call("POST", "/v1/stock-levels/outage-a/adjustments", { type: "PURCHASE", quantity: 2 })
      expect(after.status, JSON.stringify(after.body)).toBe(200)
      expect(after.body.stockLevel.onHand).toBe(before.body.onHand + 2)
      for (const request of apiRequests(1)) expect([200, 201]).toContain((await request()).status)
    }
  )

  it("answers requests in flight when the database goes away with 200 or 503, never 500, and loses no committed write", async () => {
    const start = (await call("GET", "/v1/stock-levels/outage-a")).body.onHand as number
    const inFlight = Array.from({ length: 24 }, () =>
      call("POST", "/v1/stock-levels/outage-a/adjustments", { type: "PURCHASE", quantity: 1 })
    )
    await new Promise((resolve) => setTimeout(resolve, 5))
    await proxy.cut("reset")
    const answers = await Promise.all(inFlight)
    for (const answer of answers) {
      expect([200, 503], JSON.stringify(answer.body)).toContain(answer.status)
      if (answer.status === 503) expectUnavailable(answer)
    }
    await proxy.restore()
    // Every 200 is a committed purchase; a 503 may or may not have committed (the client retries with
    // an Idempotency-Key for exactly that reason), so the level is between the two bounds.
    const ok = answers.filter((a) => a.status === 200).length
    const now = (await call("GET", "/v1/stock-levels/outage-a")).body.onHand as number
    expect(now).toBeGreaterThanOrEqual(start + ok)
    expect(now).toBeLessThanOrEqual(start + answers.length)
  })
})
