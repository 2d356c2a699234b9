import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { client } from "../support/http.js"
import { startService } from "../support/process.js"

/** The embedded default: no DATABASE_URL, PGlite under DATA_DIR, served through the same SQL client. */
describe("embedded PostgreSQL default", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "inventory-embedded-"))
  const env = { DATA_DIR: dataDir, DATABASE_URL: "", AMQP_URL: "" }
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

  it("starts with nothing installed, answers concurrent requests each correctly, and keeps data across a restart", async () => {
    const first = await startService(env)
    try {
      const api = client(first.baseUrl)
      expect((await api.get("/health/ready")).status).toBe(200)
      const ids = Array.from({ length: 20 }, (_, i) => `emb-${i}`)
      // Create, stock and read many variants at once: reads interleave with transactions on the one
      // PGlite backend, and every answer must be the caller's own.
      await Promise.all(ids.map((id, i) => api.put(`/v1/stock-levels/${id}`, { sku: `SKU-${i}`, lowStockThreshold: i })))
      const adjusted = await Promise.all(
        ids.map((id, i) => api.post(`/v1/stock-levels/${id}/adjustments`, { type: "PURCHASE", quantity: i + 1, reference: id }))
      )
      adjusted.forEach((res, i) => {
        expect(res.status).toBe(200)
        expect(res.body.stockLevel).toMatchObject({ variantId: ids[i], onHand: i + 1 })
        expect(res.body.entry).toMatchObject({ variantId: ids[i], reference: ids[i], onHandChange: i + 1 })
      })
      const mixed = await Promise.all(
        ids.flatMap((id, i) => [
          api.get(`/v1/stock-levels/${id}`),
          api.post(`/v1/stock-levels/${id}/adjustments`, { type: "SALE", quantity: 1 }),
          api.get(`/v1/stock-levels/${id}/history`),
          api.get(`/v1/stock-levels?variantId=${id}&variantId=missing-${i}`)
        ])
      )
      ids.forEach((id, i) => {
        const [get, sale, history, batch] = mixed.slice(i * 4, i * 4 + 4)
        expect(get!.body.variantId).toBe(id)
        expect(get!.body.sku).toBe(`SKU-${i}`)
        expect(sale!.status).toBe(200)
        expect(sale!.body.stockLevel).toMatchObject({ variantId: id, onHand: i })
        expect(history!.body.items.every((e: any) => e.variantId === id)).toBe(true)
        expect(batch!.body.items.map((l: any) => l.variantId)).toEqual([id])
        expect(batch!.body.missing).toEqual([`missing-${i}`])
      })
    } finally {
      expect(await first.kill("SIGTERM")).toBe(0)
    }

    const second = await startService(env)
    try {
      const api = client(second.baseUrl)
      const level = await api.get("/v1/stock-levels/emb-7")
      expect(level.body).toMatchObject({ variantId: "emb-7", sku: "SKU-7", onHand: 7, version: 3 })
      const history = await api.get("/v1/stock-levels/emb-7/history")
      expect(history.body.items.map((e: any) => e.type)).toEqual(["SALE", "PURCHASE"])
    } finally {
      expect(await second.kill("SIGTERM")).toBe(0)
    }
  })
})
