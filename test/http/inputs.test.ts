// Client text and request lines PostgreSQL or the router would choke on (issue 10, items 3, 8b, 11):
// control characters and lone surrogates are refused by the schemas with 400, data exceptions and
// resource exhaustion the database raises anyway map to 400 and 503 (never 500), an invalid
// percent-encoding is 400, and a known path with a method it does not serve is 405 with Allow.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { client, request } from "../support/http.js"
import { query } from "../support/database.js"

const expectProblem = (res: { status: number; headers: Headers; body: any }, status: number, code: string) => {
  expect(res.status, JSON.stringify(res.body)).toBe(status)
  expect(res.headers.get("content-type")).toBe("application/problem+json")
  expect(res.body).toMatchObject({ status, code, correlationId: expect.any(String) })
}

const expectFieldRefused = (res: { status: number; headers: Headers; body: any }, path: string) => {
  expectProblem(res, 400, "validation-failed")
  expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path, message: expect.any(String) })]))
}

describe("free text and SQL errors", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "inputs", env: { RATE_LIMIT_RPS: "0" } })
    expect((await app.api.put("/v1/stock-levels/in-1", { sku: "SKU-1" })).status).toBe(201)
    // Stand-ins for what the schemas cannot rule out: the database itself raising a data exception
    // (class 22) or running out of shared memory (53200) on a write.
    await query(
      app.database.url,
      `CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.sku = 'poison-22' THEN RAISE EXCEPTION 'invalid input syntax' USING ERRCODE = '22P02'; END IF;
         IF NEW.sku = 'poison-53' THEN RAISE EXCEPTION 'out of shared memory' USING ERRCODE = '53200'; END IF;
         RETURN NEW;
       END $$`
    )
    await query(app.database.url, "CREATE TRIGGER test_poison BEFORE INSERT OR UPDATE ON stock_levels FOR EACH ROW EXECUTE FUNCTION test_poison()")
  })
  afterAll(() => app?.close())

  it("refuses a sku with a NUL or another control character with 400, and stores nothing", async () => {
    for (const sku of ["a\u0000b", "tab\there", "bell\u0007", "del\u007f", "line\nbreak"]) {
      expectFieldRefused(await app.api.put("/v1/stock-levels/in-2", { sku }), "/sku")
    }
    expectFieldRefused(await app.api.put("/v1/stock-levels/in-1", { sku: "a\u0000b" }), "/sku")
    expect((await app.api.get("/v1/stock-levels/in-2")).status).toBe(404)
    expect((await app.api.get("/v1/stock-levels/in-1")).body.sku).toBe("SKU-1")
  })

  it("refuses a lone surrogate in free text with 400 instead of storing U+FFFD", async () => {
    expectFieldRefused(await app.api.raw("PUT", "/v1/stock-levels/in-2", '{"sku":"a\\ud800b"}', { "content-type": "application/json" }), "/sku")
    expectFieldRefused(await app.api.raw("PUT", "/v1/stock-levels/in-2", '{"sku":"\\udc00"}', { "content-type": "application/json" }), "/sku")
    // A well-formed pair (an emoji) is printable text.
    const res = await app.api.raw("PUT", "/v1/stock-levels/in-3", '{"sku":"gift \\ud83c\\udf81"}', { "content-type": "application/json" })
    expect(res.status).toBe(201)
    expect(res.body.sku).toBe("gift 🎁")
  })

  it("accepts free text of 1-512 characters and refuses empty or longer text", async () => {
    const longest = "ü".repeat(512)
    expect((await app.api.put("/v1/stock-levels/in-3", { sku: longest })).body.sku).toBe(longest)
    expectFieldRefused(await app.api.put("/v1/stock-levels/in-3", { sku: "x".repeat(513) }), "/sku")
    expectFieldRefused(await app.api.put("/v1/stock-levels/in-3", { sku: "" }), "/sku")
    const ok = await app.api.post("/v1/stock-levels/in-1/adjustments", { type: "PURCHASE", quantity: 1, reason: "r".repeat(512), reference: "f".repeat(512) })
    expect(ok.status).toBe(200)
    expect(ok.body.entry).toMatchObject({ reason: "r".repeat(512), reference: "f".repeat(512) })
  })

  it("refuses a NUL in an adjustment's reason or reference with 400 and changes nothing", async () => {
    const before = (await app.api.get("/v1/stock-levels/in-1")).body
    expectFieldRefused(await app.api.post("/v1/stock-levels/in-1/adjustments", { type: "PURCHASE", quantity: 1, reason: "a\u0000b" }), "/reason")
    expectFieldRefused(await app.api.post("/v1/stock-levels/in-1/adjustments", { type: "PURCHASE", quantity: 1, reference: "\u0000" }), "/reference")
    const both = await app.api.post("/v1/stock-levels/in-1/adjustments", { type: "PURCHASE", quantity: 1, reason: "\u001b[31m", reference: "x\u0000" })
    expectFieldRefused(both, "/reason")
    expectFieldRefused(both, "/reference")
    expect((await app.api.get("/v1/stock-levels/in-1")).body).toMatchObject({ onHand: before.onHand, version: before.version })
  })

  it("refuses an Idempotency-Key with a control character with 400", async () => {
    const res = await app.api.post("/v1/stock-levels/in-1/adjustments", { type: "PURCHASE", quantity: 1 }, { "idempotency-key": "key\twith-tab" })
    expectProblem(res, 400, "validation-failed")
  })

  it("answers 400 validation-failed, not 500, when the database refuses a value as data (class 22)", async () => {
    const res = await app.api.put("/v1/stock-levels/in-1", { sku: "poison-22" })
    expectProblem(res, 400, "validation-failed")
    expect(res.body.errors).toEqual([{ path: "/", message: expect.any(String) }])
    expect(JSON.stringify(res.body)).not.toMatch(/22P02|syntax|SqlError/)
    const logged = app.logs().filter((line) => line.includes(res.body.correlationId) && line.includes("invalid data"))
    expect(logged).toHaveLength(1)
    expect(logged[0]).toContain("22P02")
  })

  it("answers 503 with Retry-After, not 500, when the database runs out of shared memory (53200)", async () => {
    const res = await app.api.put("/v1/stock-levels/in-1", { sku: "poison-53" })
    expectProblem(res, 503, "unavailable")
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    expect((await app.api.get("/v1/stock-levels/in-1")).status).toBe(200)
  })
})

describe("request lines the router cannot serve", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "routes", env: { RATE_LIMIT_RPS: "0" } })
  })
  afterAll(() => app?.close())

  it("answers 400 validation-failed to a path whose percent-encoding is not valid", async () => {
    for (const path of ["/v1/reservations/%ZZ", "/v1/stock-levels/a%", "/v1/stock-levels/%E0%A4%A/history", "/v1/stock-levels/%C0%AF"]) {
      const res = await app.api.get(path)
      expectProblem(res, 400, "validation-failed")
      expect(res.body.errors).toEqual([{ path: "/", message: expect.any(String) }])
    }
    // Also without a token: the request line is refused before authentication.
    expectProblem(await client(app.baseUrl).get("/v1/reservations/%ZZ"), 400, "validation-failed")
  })

  it("answers 405 method-not-allowed with Allow to a known path and a method it does not serve", async () => {
    const cases: Array<[string, string, string]> = [
      ["DELETE", "/v1/stock-levels/x", "GET, HEAD, PUT"],
      ["POST", "/v1/stock-levels/x", "GET, HEAD, PUT"],
      ["PATCH", "/v1/stock-levels", "GET, HEAD"],
      ["GET", "/v1/stock-levels/x/adjustments", "POST"],
      ["DELETE", "/v1/reservations", "POST"],
      ["PUT", "/v1/reservations/o-1", "GET, HEAD"],
      ["GET", "/v1/reservations/o-1/release", "POST"],
      ["POST", "/health/live", "GET, HEAD"],
      ["DELETE", "/openapi.json", "GET, HEAD"],
      ["POST", "/metrics", "GET, HEAD"]
    ]
    for (const [method, path, allow] of cases) {
      const res = await request(app.baseUrl, method, path, { headers: app.authHeaders })
      expectProblem(res, 405, "method-not-allowed")
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow)
      expect(res.body.detail).toContain(method)
    }
    // Without a token too: it says nothing a 404 would not.
    const anonymous = await request(app.baseUrl, "DELETE", "/v1/stock-levels/x")
    expectProblem(anonymous, 405, "method-not-allowed")
  })

  it("still answers 404 not-found to a path the service does not have", async () => {
    for (const path of ["/v1/nothing", "/v1/stock-levels/x/y/z", "/"]) {
      const res = await request(app.baseUrl, "DELETE", path, { headers: app.authHeaders })
      expectProblem(res, 404, "not-found")
      expect(res.headers.get("allow")).toBeNull()
    }
  })
})
