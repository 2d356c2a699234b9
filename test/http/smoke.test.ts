import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { client } from "../support/http.js"

describe("smoke", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "smoke" })
  })
  afterAll(() => app?.close())

  it("is ready once migrated against PostgreSQL", async () => {
    const res = await client(app.baseUrl).get("/health/ready")
    expect(res.status).toBe(200)
    expect(res.body.checks.database.status).toBe("up")
  })
})
