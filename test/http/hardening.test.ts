// Hostile-input hardening of the HTTP layer: URL and body limits, security headers, per-caller rate
// limiting and the request deadline. Every refusal is problem+json, none is a 5xx (but the deadline).
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { bearer } from "../support/auth.js"
import { client, request } from "../support/http.js"
import { brokenInvariants } from "../support/snapshot.js"

const expectProblem = (res: { status: number; headers: Headers; body: any }, status: number, code: string) => {
  expect(res.status).toBe(status)
  expect(res.headers.get("content-type")).toBe("application/problem+json")
  expect(res.body).toMatchObject({ status, code })
}

describe("hardening", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "hardening", env: { RATE_LIMIT_RPS: "0" } })
    expect((await app.api.put("/v1/stock-levels/h-1", {})).status).toBe(201)
  })
  afterAll(() => app?.close())

  it("sends security headers fit for a JSON API and no version banner", async () => {
    for (const res of [await app.api.get("/v1/stock-levels/h-1"), await client(app.baseUrl).get("/v1/stock-levels/h-1"), await client(app.baseUrl).get("/health/live")]) {
      expect(res.headers.get("x-content-type-options")).toBe("nosniff")
      expect(res.headers.get("cache-control")).toBe("no-store")
      expect(res.headers.get("x-frame-options")).toBe("DENY")
      expect(res.headers.get("content-security-policy")).toContain("default-src 'none'")
      expect(res.headers.get("referrer-policy")).toBe("no-referrer")
      expect(res.headers.get("x-correlation-id")).toBeTruthy()
      expect(res.headers.get("x-powered-by")).toBeNull()
      expect(res.headers.get("server")).toBeNull()
    }
  })

  it("answers 414 to an over-long path or query, before authentication", async () => {
    expectProblem(await client(app.baseUrl).get(`/v1/stock-levels/${"a".repeat(2000)}`), 414, "uri-too-long")
    expectProblem(await app.api.get(`/v1/stock-levels?cursor=${"a".repeat(15_001)}`), 414, "uri-too-long")
  })

  it("answers 400 to too many query parameters and to more than 100 ids in a batch read", async () => {
    expectProblem(await app.api.get(`/v1/stock-levels?${Array.from({ length: 201 }, (_, i) => `x${i}=1`).join("&")}`), 400, "validation-failed")
    const ids = Array.from({ length: 101 }, (_, i) => `variantId=v-${i}`).join("&")
    expectProblem(await app.api.get(`/v1/stock-levels?${ids}`), 400, "validation-failed")
    const hundred = Array.from({ length: 100 }, (_, i) => `variantId=${String(i).padStart(128, "v")}`).join("&")
    const res = await app.api.get(`/v1/stock-levels?${hundred}`)
    expect(res.status).toBe(200)
    expect(res.body.missing).toHaveLength(100)
  })

  it("answers 413 to a body over 64 KiB", async () => {
    const big = JSON.stringify({ type: "PURCHASE", quantity: 1, reason: "x".repeat(70 * 1024) })
    expectProblem(await app.api.raw("POST", "/v1/stock-levels/h-1/adjustments", big, { "content-type": "application/json" }), 413, "payload-too-large")
  })

  it("answers 415 to a body that is not JSON", async () => {
    expectProblem(await app.api.raw("POST", "/v1/stock-levels/h-1/adjustments", "type=PURCHASE", { "content-type": "application/x-www-form-urlencoded" }), 415, "unsupported-media-type")
  })
})

describe("rate limiting per caller", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "ratelimit", env: { RATE_LIMIT_RPS: "2" } })
  })
  afterAll(() => app?.close())

  it("answers 429 problem+json with Retry-After once a caller spends its budget, without limiting other callers", async () => {
    const greedy = await bearer("inventory:read", "greedy-service")
    const results = await Promise.all(Array.from({ length: 20 }, () => request(app.baseUrl, "GET", "/v1/stock-levels/none", { headers: greedy })))
    const limited = results.filter((r) => r.status === 429)
    expect(limited.length).toBeGreaterThan(0)
    expect(results.some((r) => r.status === 404)).toBe(true)
    expectProblem(limited[0]!, 429, "rate-limited")
    expect(Number(limited[0]!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    const other = await request(app.baseUrl, "GET", "/v1/stock-levels/none", { headers: await bearer("inventory:read", "polite-service") })
    expect(other.status).toBe(404)
  })

  it("tells every caller its quota with RateLimit-Policy and RateLimit (IETF draft), down to r=0 on a 429", async () => {
    const caller = await bearer("inventory:read", "quota-reader")
    const first = await request(app.baseUrl, "GET", "/v1/stock-levels/none", { headers: caller })
    expect(first.status).toBe(404)
    expect(first.headers.get("ratelimit-policy")).toBe('"per-caller";q=2;w=1')
    expect(first.headers.get("ratelimit")).toMatch(/^"per-caller";r=[01];t=[0-9]+$/)
    const burst = await Promise.all(Array.from({ length: 10 }, () => request(app.baseUrl, "GET", "/v1/stock-levels/none", { headers: caller })))
    const limited = burst.find((r) => r.status === 429)!
    expect(limited.headers.get("ratelimit-policy")).toBe('"per-caller";q=2;w=1')
    expect(limited.headers.get("ratelimit")).toMatch(/^"per-caller";r=0;t=[1-9][0-9]*$/)
    // Unlimited endpoints say nothing about a quota.
    expect((await request(app.baseUrl, "GET", "/health/live")).headers.get("ratelimit")).toBeNull()
  })

  it("does not rate-limit the health probes", async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => request(app.baseUrl, "GET", "/health/live")))
    expect(results.every((r) => r.status === 200)).toBe(true)
  })
})

describe("the request deadline", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "deadline", env: { REQUEST_TIMEOUT_MS: "300", RATE_LIMIT_RPS: "0" } })
    expect((await app.api.put("/v1/stock-levels/slow-1", {})).status).toBe(201)
  })
  afterAll(() => app?.close())

  it("answers 503 with Retry-After when the database holds a request up, lets the work finish, and keeps serving", async () => {
    const blocker = new pg.Client({ connectionString: app.database.url })
    await blocker.connect()
    try {
      await blocker.query("BEGIN")
      await blocker.query("LOCK TABLE stock_levels IN ACCESS EXCLUSIVE MODE")
      const slow = app.api.post("/v1/stock-levels/slow-1/adjustments", { type: "PURCHASE", quantity: 3 }, { "idempotency-key": "slow-1" })
      const res = await slow
      expectProblem(res, 503, "unavailable")
      expect(res.headers.get("retry-after")).toBe("2")
    } finally {
      await blocker.query("ROLLBACK")
      await blocker.end()
    }
    // The work was not interrupted: it completes once the lock is gone, and a retry with the same key
    // returns its stored answer instead of applying the purchase twice.
    let level: any
    for (let i = 0; i < 50; i++) {
      level = (await app.api.get("/v1/stock-levels/slow-1")).body
      if (level.onHand === 3) break
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(level.onHand).toBe(3)
    const retry = await app.api.post("/v1/stock-levels/slow-1/adjustments", { type: "PURCHASE", quantity: 3 }, { "idempotency-key": "slow-1" })
    expect(retry.status).toBe(200)
    expect((await app.api.get("/v1/stock-levels/slow-1")).body.onHand).toBe(3)
    expect(await brokenInvariants(app.database.url)).toEqual([])
  })
})
