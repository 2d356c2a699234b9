/**
 * The Effect floor of `GET /v1/stock-levels/{variantId}` (bench/run.ts): the least an Effect 4
 * HttpApi over @effect/sql-pg spends on this endpoint. One HttpApi of one group of one endpoint,
 * declared as src/http/Api.ts declares it (params `VariantId`, success `StockLevel`, error
 * `VariantNotFound`), served by HttpApiBuilder.layer + HttpRouter.serve on NodeHttpServer, with
 * the service's statement (STOCK_LEVEL_COLUMNS, as src/services/StockLevels.ts `levelOf`) and row
 * mapping (`toStockLevel`) on a PgClient pool of DB_POOL_MAX connections with the service's name
 * transforms. No auth, no middleware, no metrics, no request log (`disableLogger`); Effect's own
 * per-request span is left as the platform sets it up by default.
 *
 * Runtime: bench/run.ts compiles this file with the project's own TypeScript (transpileModule, the
 * tsconfig.json options) into dist/bench/floor-effect.js and runs it with the same `node` binary
 * and no loader, exactly as it runs the service (`node dist/src/main.js` after `npm run build`), so
 * both sides run the same emitted JavaScript of the same modules.
 *
 * Environment: PORT, DATABASE_URL, DB_POOL_MAX (10). Ready when GET /v1/stock-levels/{id} answers.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, String as Str } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { createServer } from "node:http"
import { VariantNotFound } from "../src/domain/Errors.js"
import { VariantId } from "../src/domain/Ids.js"
import { StockLevel } from "../src/domain/StockLevel.js"
import { STOCK_LEVEL_COLUMNS, toStockLevel, type StockLevelRow } from "../src/services/StockRows.js"

class FloorApi extends HttpApi.make("floor").add(
  HttpApiGroup.make("stockLevels").add(
    HttpApiEndpoint.get("get", "/v1/stock-levels/:variantId", { params: { variantId: VariantId }, success: StockLevel, error: VariantNotFound })
  )
) {}

const StockLevelsLive = HttpApiBuilder.group(FloorApi, "stockLevels", (handlers) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const columns = sql.literal(STOCK_LEVEL_COLUMNS)
    return handlers.handle("get", ({ params }) =>
      sql<StockLevelRow>`SELECT ${columns} FROM stock_levels s WHERE s.variant_id = ${params.variantId}`.pipe(
        Effect.orDie,
        Effect.flatMap((rows) => (rows[0] === undefined ? Effect.fail(new VariantNotFound({ variantId: params.variantId })) : Effect.succeed(toStockLevel(rows[0]))))
      )
    )
  })
)

const SqlLive = PgClient.layer({
  url: Redacted.make(process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"),
  maxConnections: Number(process.env["DB_POOL_MAX"] ?? 10),
  transformResultNames: Str.snakeToCamel,
  transformQueryNames: Str.camelToSnake
})

const ServerLive = HttpRouter.serve(HttpApiBuilder.layer(FloorApi).pipe(Layer.provide(StockLevelsLive)), { disableLogger: true }).pipe(
  Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env["PORT"] ?? 8080) })),
  Layer.provide(SqlLive)
)

NodeRuntime.runMain(Layer.launch(ServerLive))
