// Secrets are never printed: after requests with good and bad tokens and failures of every kind, the
// service's own log lines (captured at debug level) hold no token and no database password, while
// they do record who called.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, TEST_DB_PASSWORD, type TestApp } from "../support/app.js"
import { signToken, unsignedToken } from "../support/auth.js"
import { request } from "../support/http.js"
import { findLeaks } from "../support/log-scan.js"

describe("log redaction", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "logredact" })
  })
  afterAll(() => app?.close())

  it("logs callers and failures but never a token or the database password", async () => {
    const expired = await signToken({ sub: "log-client", scope: "inventory:read", expiresIn: -60 })
    const tokens = [app.authHeaders["authorization"]!.slice(7), expired, unsignedToken(), await signToken({ sub: "log-client", scope: "" })]
    for (const token of tokens) {
      for (const path of ["/v1/stock-levels/log-1", "/v1/stock-levels?variantId=a&variantId=b", "/v1/stock-levels/log-1/history?cursor=%00"]) {
        await request(app.baseUrl, "GET", path, { headers: { authorization: `Bearer ${token}`, "x-correlation-id": "log-test" } })
      }
      await request(app.baseUrl, "POST", "/v1/stock-levels/log-1/adjustments", { headers: { authorization: `Bearer ${token}` }, rawBody: "{not json", })
      await request(app.baseUrl, "PUT", "/v1/stock-levels/log-1", { headers: { authorization: `Bearer ${token}` }, body: { sku: token } })
      await request(app.baseUrl, "GET", `/v1/stock-levels/${token}`, { headers: { authorization: `Bearer ${token}` } })
    }
    const dir = process.env["TEST_LOG_DIR"]
    expect(dir, "vitest's globalSetup sets TEST_LOG_DIR").toBeTruthy()
    const text = readFileSync(join(dir!, `worker-${process.pid}.log`), "utf8")
    expect(text).toContain('"actor":"test-client"')
    expect(text).toContain('"status":401')
    for (const token of tokens) expect(text).not.toContain(token)
    expect(text).not.toContain(TEST_DB_PASSWORD)
    expect(findLeaks("worker", text)).toEqual([])
  })
})
