import { SqlClient } from "effect/sql"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Transactions } from "../../src/services/Transactions.js"
import { startTestApp, type TestApp } from "../support/app.js"
import { query } from "../support/database.js"

describe("transactions against PostgreSQL", () => {
  let app: TestApp
  beforeAll(async () => {
    app = await startTestApp({ label: "txretry" })
  })
  afterAll(() => app?.close())

  const retries = async (code: string) => {
    const text = await (await fetch(`${app.baseUrl}/metrics`)).text()
    const line = text.split("\n").find((l) => l.startsWith(`inventory_db_transaction_retries_total{`) && l.includes(`code="${code}"`))
    return line === undefined ? undefined : Number(line.split(" ").pop())
  }

  it("retries a transaction that lost a serialization race, invisibly to the caller, and counts it", async () => {
    expect((await app.api.put("/v1/stock-levels/tx-1", {})).status).toBe(201)
    const before = (await retries("40001")) ?? 0
    let attempts = 0
    const result = await app.run(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const transactions = yield* Transactions
        return yield* transactions.run(
          Effect.gen(function* () {
            attempts++
            yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`
            yield* sql`SELECT low_stock_threshold FROM stock_levels WHERE variant_id = 'tx-1'`
            if (attempts === 1) {
              // Another session changes the row after this transaction took its snapshot.
              yield* Effect.promise(() => query(app.database.url, "UPDATE stock_levels SET low_stock_threshold = 5 WHERE variant_id = 'tx-1'"))
            }
            const [row] = yield* sql<{ lowStockThreshold: number }>`
              UPDATE stock_levels SET low_stock_threshold = low_stock_threshold + 1 WHERE variant_id = 'tx-1'
              RETURNING low_stock_threshold`
            return row!.lowStockThreshold
          })
        )
      }).pipe(Effect.provide(Transactions.layer))
    )
    expect(attempts).toBe(2)
    expect(result).toBe(6)
    expect(await retries("40001")).toBe(before + 1)
    expect(await retries("40P01")).toBeDefined()
  })
})
