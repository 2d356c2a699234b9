/**
 * The bare floor of `GET /v1/stock-levels/{variantId}` (bench/run.ts): node:http + `pg`, nothing else.
 * Same database, same statement (STOCK_LEVEL_COLUMNS, src/services/StockLevels.ts `levelOf`, sent as
 * a named prepared statement as @effect/sql-pg does by default), same JSON body (the encoded
 * `StockLevel` of src/domain/StockLevel.ts), on a pool of DB_POOL_MAX connections as the service.
 * No auth, no logging, no metrics, no validation beyond the id's pattern: the least any server
 * answering this endpoint on Node must spend.
 *
 * Runtime: bench/run.ts compiles this file with the project's own TypeScript (transpileModule, the
 * tsconfig.json options) into dist/bench/floor-node.js and runs it with the same `node` binary and
 * no loader, exactly as it runs the service (`node dist/src/main.js` after `npm run build`). Under
 * `tsx` the loader's hooks and source maps cost start-up time and memory, not per-request CPU, but
 * compiled on both sides removes the question. Its two imports from dist/src (the column list and the
 * location `available` rule) load at start-up only.
 *
 * Environment: PORT, DATABASE_URL, DB_POOL_MAX (10). Ready when it answers GET /health/ready.
 */
import { createServer } from "node:http"
import pg from "pg"
import { availableAt } from "../src/domain/Allocation.js"
import { STOCK_LEVEL_COLUMNS } from "../src/services/StockRows.js"

interface Row {
  readonly variant_id: string
  readonly sku: string | null
  readonly on_hand: number
  readonly reserved: number
  readonly available: number
  readonly low_stock_threshold: number
  readonly status: string
  readonly version: number
  readonly updated_at: Date
  readonly locations: ReadonlyArray<{
    readonly locationId: string
    readonly onHand: number
    readonly reserved: number
    readonly safetyStock: number
    readonly version: number
    readonly updatedAt: number
  }>
}

const PREFIX = "/v1/stock-levels/"
const VARIANT_ID = /^[A-Za-z0-9._:-]{1,128}$/u
const query = { name: "floor-get", text: `SELECT ${STOCK_LEVEL_COLUMNS} FROM stock_levels s WHERE s.variant_id = $1` }

const pool = new pg.Pool({ connectionString: process.env["DATABASE_URL"], max: Number(process.env["DB_POOL_MAX"] ?? 10) })
pool.on("error", (error) => process.stderr.write(`floor-node: pool error ${error.message}\n`))

/** The encoded StockLevel, fields in the schema's order. */
const body = (row: Row) =>
  JSON.stringify({
    variantId: row.variant_id,
    sku: row.sku,
    onHand: row.on_hand,
    reserved: row.reserved,
    available: row.available,
    lowStockThreshold: row.low_stock_threshold,
    status: row.status,
    version: row.version,
    updatedAt: row.updated_at.toISOString(),
    locations: row.locations.map((l) => ({
      locationId: l.locationId,
      onHand: l.onHand,
      reserved: l.reserved,
      safetyStock: l.safetyStock,
      available: availableAt(l),
      version: l.version,
      updatedAt: new Date(Number(l.updatedAt)).toISOString()
    }))
  })

const server = createServer((request, response) => {
  const send = (status: number, text: string) => {
    response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
    response.end(text)
  }
  const url = request.url ?? "/"
  if (url === "/health/ready") return send(200, `{"status":"ready"}`)
  const variantId = request.method === "GET" && url.startsWith(PREFIX) ? decodeURIComponent(url.slice(PREFIX.length)) : undefined
  if (variantId === undefined) return send(404, `{"status":404}`)
  if (!VARIANT_ID.test(variantId)) return send(400, `{"status":400}`)
  pool.query<Row>({ ...query, values: [variantId] }).then(
    ({ rows }) => (rows[0] === undefined ? send(404, `{"status":404,"code":"variant-not-found"}`) : send(200, body(rows[0]))),
    (error: Error) => send(500, JSON.stringify({ status: 500, detail: error.message }))
  )
})

server.listen(Number(process.env["PORT"] ?? 8080), "127.0.0.1")
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    server.close()
    server.closeAllConnections()
    void pool.end().then(() => process.exit(0))
  })
}
