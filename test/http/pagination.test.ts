// Keyset pagination as a client uses it: follow nextCursor until it is null, see everything once.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestApp, type TestApp } from "../support/app.js"
import { client } from "../support/http.js"

describe("pagination", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "pages" })
  })
  afterAll(() => app?.close())

  const follow = async (path: string) => {
    const api = client(app.baseUrl)
    const seen: Array<any> = []
    let cursor: string | null = null
    do {
      const page: { status: number; body: any } = await api.get(path + (cursor === null ? "" : `&cursor=${cursor}`))
      expect(page.status, JSON.stringify(page.body)).toBe(200)
      seen.push(...page.body.items)
      cursor = page.body.nextCursor
    } while (cursor !== null)
    return seen
  }

  it("walks every stock level and every history entry across pages by nextCursor", async () => {
    const api = client(app.baseUrl)
    const ids = Array.from({ length: 11 }, (_, i) => `page-${String(i).padStart(2, "0")}`)
    for (const id of ids) await api.put(`/v1/stock-levels/${id}`, {})
    for (let q = 1; q <= 9; q++) await api.post("/v1/stock-levels/page-03/adjustments", { type: "PURCHASE", quantity: q })

    expect((await follow("/v1/stock-levels?limit=4")).map((l) => l.variantId)).toEqual(ids)
    const history = await follow("/v1/stock-levels/page-03/history?limit=4")
    expect(history.map((e) => e.onHandChange)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1])
  })
})
