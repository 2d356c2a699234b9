import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { createTestDatabase, query, type TestDatabase } from "../support/database.js"
import { bearer } from "../support/auth.js"
import { client } from "../support/http.js"
import { runToExit, startService } from "../support/process.js"

describe("process lifecycle", () => {
  let database: TestDatabase
  beforeAll(async () => {
    database = await createTestDatabase("lifecycle")
  })
  afterAll(() => database?.drop())

  it("finishes every in-flight request on SIGTERM, turns unready first, and exits 0", async () => {
    // This is about draining, not the request deadline: a loaded CI machine may take longer than the
    // default 10 s to work through 60 queued adjustments on one row, which would answer 503.
    const service = await startService({ DATABASE_URL: database.url, DB_POOL_MAX: "2", REQUEST_TIMEOUT_MS: "60000" })
    const api = client(service.baseUrl, await bearer())
    await api.put("/v1/stock-levels/drain-1", {})
    // Hold the variant's row lock so that every request is received and then kept in flight.
    const blocker = new pg.Client({ connectionString: database.url })
    await blocker.connect()
    await blocker.query("BEGIN")
    await blocker.query("SELECT 1 FROM stock_levels WHERE variant_id = 'drain-1' FOR UPDATE")
    const requests = Array.from({ length: 60 }, (_, i) =>
      api.post("/v1/stock-levels/drain-1/adjustments", { type: "PURCHASE", quantity: 1, reference: `r-${i}` })
    )
    await new Promise((resolve) => setTimeout(resolve, 1000)) // let all 60 arrive and queue
    const exit = service.kill("SIGTERM")
    await new Promise((resolve) => setTimeout(resolve, 300))
    await blocker.query("COMMIT")
    await blocker.end()
    const responses = await Promise.all(requests)
    expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200))
    // Answered while draining: each tells its keep-alive client to stop reusing the socket.
    expect(responses.map((r) => r.headers.get("connection"))).toEqual(responses.map(() => "close"))
    expect(responses.map((r) => r.headers.get("x-frame-options"))).toEqual(responses.map(() => "DENY"))
    expect(await exit).toBe(0)
    const [row] = await query(database.url, "SELECT on_hand FROM stock_levels WHERE variant_id = 'drain-1'")
    expect(row!.on_hand).toBe(60)
    const unready = service.output.findIndex((line) => line.includes("readiness is 503"))
    const drained = service.output.findIndex((line) => line.includes("HTTP drained"))
    expect(unready).toBeGreaterThan(-1)
    expect(drained).toBeGreaterThan(unready)
  })

  it("refuses an invalid configuration with one line naming the variable", async () => {
    const result = await runToExit({ DATABASE_URL: database.url, PORT: "eighty" })
    expect(result.code).toBe(1)
    const lines = result.output.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Invalid configuration: PORT: /)
  })

  it("refuses to start in production without a database URL", async () => {
    const result = await runToExit({ NODE_ENV: "production", DATABASE_URL: "" })
    expect(result.code).toBe(1)
    expect(result.output.trim().split("\n")[0]).toMatch(/^Invalid configuration: .*DATABASE_URL/)
  })
})
