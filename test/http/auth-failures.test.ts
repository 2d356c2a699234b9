// Failed authentications are limited per client address: a flood of bad tokens costs one signature
// check per allowed failure, then 429 problem+json with Retry-After, in bounded memory.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeFailedAuthLimiter } from "../../src/http/FailedAuthLimiter.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { ALL_SCOPES, signToken, unknownKey } from "../support/auth.js"
import { request } from "../support/http.js"

const LIMIT = 5

describe("failed authentications per client address", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "authfail", env: { AUTH_FAILURES_PER_MINUTE: String(LIMIT) } })
  })
  afterAll(() => app?.close())

  const get = (token: string) => request(app.baseUrl, "GET", "/v1/stock-levels/none", { headers: { authorization: `Bearer ${token}` } })

  it("answers 429 problem+json with Retry-After once an address has failed too often, and lets remembered tokens through", async () => {
    // A caller whose token was verified before the flood.
    const good = await signToken({ scope: ALL_SCOPES, sub: "before-the-flood" })
    expect((await get(good)).status).toBe(404)

    const bad = await signToken({ scope: ALL_SCOPES, sub: "attacker", key: unknownKey })
    for (let i = 0; i < LIMIT; i++) expect((await get(bad)).status).toBe(401)
    const limited = await get(bad)
    expect(limited.status).toBe(429)
    expect(limited.headers.get("content-type")).toBe("application/problem+json")
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    expect(limited.body).toMatchObject({ status: 429, code: "rate-limited" })
    expect(limited.body.detail).toMatch(/failed authentications/)

    // No signature check for a token not seen before, even a valid one, until the budget refills…
    expect((await get(await signToken({ scope: ALL_SCOPES, sub: "newcomer" }))).status).toBe(429)
    // …but a token verified before goes on working, and a request without a token is still a 401.
    expect((await get(good)).status).toBe(404)
    expect((await request(app.baseUrl, "GET", "/v1/stock-levels/none")).status).toBe(401)

    const metrics = await (await fetch(`${app.baseUrl}/metrics`)).text()
    expect(metrics).toMatch(/^inventory_auth_failures_limited_total(\{[^}]*\})? [1-9]/m)
  })
})

describe("the failed-authentication budget", () => {
  it("refills over the minute", () => {
    const limiter = makeFailedAuthLimiter(6)
    for (let i = 0; i < 6; i++) limiter.failed("10.0.0.1", 0)
    expect(limiter.retryAfterSeconds("10.0.0.1", 0)).toBe(10)
    expect(limiter.retryAfterSeconds("10.0.0.1", 10_000)).toBe(0)
    expect(limiter.retryAfterSeconds("10.0.0.2", 0)).toBe(0)
  })

  it("keeps at most its bound of addresses, forgetting the least recently failed first", () => {
    const limiter = makeFailedAuthLimiter(1, 100)
    for (let i = 0; i < 10_000; i++) limiter.failed(`10.0.${Math.floor(i / 256)}.${i % 256}`, 0)
    expect(limiter.size()).toBe(100)
    expect(limiter.retryAfterSeconds("10.0.39.15", 0)).toBeGreaterThan(0) // the last one
    expect(limiter.retryAfterSeconds("10.0.0.0", 0)).toBe(0) // forgotten
  })
})
