import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { StockLevel } from "../../src/domain/StockLevel.js"
import { StockLevels } from "../../src/services/StockLevels.js"
import { startTestApp, type TestApp } from "../support/app.js"

/**
 * GET /v1/stock-levels/{id} answers the JSON the database builds (StockLevels.getJson), not the
 * schema's encoding of a decoded row: the two must be the same text, field order included.
 */
describe("GET /v1/stock-levels/{id}: the body the database writes", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "level-json" })
    expect((await app.api.put("/v1/locations/json-east", { name: "East", priority: 10 })).status).toBe(201)
    expect((await app.api.put("/v1/stock-levels/json-1", { sku: 'SKU "q" é </x> \\ ü', lowStockThreshold: 2 })).status).toBe(201)
    expect((await app.api.post("/v1/stock-levels/json-1/adjustments", { type: "PURCHASE", quantity: 7 })).status).toBe(200)
    expect((await app.api.post("/v1/stock-levels/json-1/adjustments", { type: "PURCHASE", quantity: 3, locationId: "json-east" })).status).toBe(200)
    expect((await app.api.put("/v1/stock-levels/json-2", {})).status).toBe(201)
  })
  afterAll(() => app?.close())

  const encoded = (variantId: string) =>
    app.run(
      Effect.gen(function* () {
        const levels = yield* StockLevels
        return JSON.stringify(yield* Schema.encodeEffect(StockLevel)(yield* levels.get(variantId)))
      })
    )

  it.each(["json-1", "json-2"])("answers %s exactly as the StockLevel schema encodes it", async (variantId) => {
    const res = await fetch(`${app.baseUrl}/v1/stock-levels/${variantId}`, { headers: app.authHeaders })
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toBe("application/json")
    expect(await res.text()).toBe(await encoded(variantId))
  })

  it("answers 404 problem+json for a variant that does not exist", async () => {
    const res = await app.api.get("/v1/stock-levels/json-missing")
    expect(res.status).toBe(404)
    expect(res.body).toMatchObject({ code: "variant-not-found", variantId: "json-missing" })
  })
})
