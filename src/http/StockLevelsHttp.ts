import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect, Option, Schema } from "effect"
import { DEFAULT_PAGE_LIMIT } from "../domain/Pagination.js"
import { StockLevel } from "../domain/StockLevel.js"
import { Adjustments } from "../services/Adjustments.js"
import { History } from "../services/History.js"
import { StockLevels } from "../services/StockLevels.js"
import { databaseFailures } from "./Problem.js"
import { HistoryPage, InventoryApi, StockLevelBatch, StockLevelPage } from "./Api.js"

const encodeStockLevel = Schema.encode(StockLevel)

export const StockLevelsHttpLive = HttpApiBuilder.group(InventoryApi, "stockLevels", (handlers) =>
  Effect.gen(function* () {
    const stockLevels = yield* StockLevels
    const adjustments = yield* Adjustments
    const history = yield* History
    return handlers
      .handle("configure", ({ path, payload }) =>
        Effect.gen(function* () {
          const { level, created } = yield* stockLevels.configure(path.variantId, payload)
          if (!created) return level
          return HttpServerResponse.unsafeJson(yield* encodeStockLevel(level).pipe(Effect.orDie), { status: 201 })
        }).pipe(databaseFailures)
      )
      .handle("get", ({ path }) => databaseFailures(stockLevels.get(path.variantId)))
      .handle("list", ({ urlParams }) =>
        databaseFailures<StockLevelBatch | StockLevelPage, never, never>(
          urlParams.variantId !== undefined
          ? Effect.map(stockLevels.getMany(urlParams.variantId), (batch) => new StockLevelBatch(batch))
          : Effect.map(
              stockLevels.list({
                status: Option.fromNullable(urlParams.status),
                limit: urlParams.limit ?? DEFAULT_PAGE_LIMIT,
                after: Option.fromNullable(urlParams.cursor)
              }),
              (page) => new StockLevelPage({ items: page.items, nextCursor: Option.getOrNull(page.nextAfter) })
            )
        )
      )
      .handle("adjust", ({ path, payload, headers }) =>
        databaseFailures(adjustments.adjust(path.variantId, payload, Option.fromNullable(headers["idempotency-key"])))
      )
      .handle("history", ({ path, urlParams }) =>
        Effect.map(
          history.list(path.variantId, {
            limit: urlParams.limit ?? DEFAULT_PAGE_LIMIT,
            before: Option.fromNullable(urlParams.cursor)
          }),
          (page) => new HistoryPage({ items: page.items, nextCursor: Option.getOrNull(page.nextAfter) })
        ).pipe(databaseFailures)
      )
  })
)
