import { Effect, Layer, Option, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { DEFAULT_PAGE_LIMIT } from "../domain/Pagination.js"
import { StockLevel } from "../domain/StockLevel.js"
import { Adjustments } from "../services/Adjustments.js"
import { History } from "../services/History.js"
import { StockLevels } from "../services/StockLevels.js"
import { Transfers } from "../services/Transfers.js"
import { buildGroupWith } from "./GroupContext.js"
import { databaseFailures, Problems } from "./Problem.js"
import { Authentication } from "./Security.js"
import { HistoryPage, InventoryApi, StockLevelBatch, StockLevelPage } from "./Api.js"

const encodeStockLevel = Schema.encodeEffect(StockLevel)

export const StockLevelsHttpLive = HttpApiBuilder.group(InventoryApi, "stockLevels", (handlers) =>
  Effect.gen(function* () {
    const stockLevels = yield* StockLevels
    const adjustments = yield* Adjustments
    const history = yield* History
    const transfers = yield* Transfers
    return handlers
      .handle("configure", ({ params, payload }) =>
        Effect.gen(function* () {
          const { level, created } = yield* stockLevels.configure(params.variantId, payload)
          if (!created) return level
          return HttpServerResponse.jsonUnsafe(yield* encodeStockLevel(level).pipe(Effect.orDie), { status: 201 })
        }).pipe(databaseFailures)
      )
      // The body as the database wrote it (StockLevels.getJson): the same JSON `StockLevel` encodes to.
      .handle("get", ({ params }) =>
        databaseFailures(
          Effect.map(stockLevels.getJson(params.variantId), (body) => HttpServerResponse.text(body, { contentType: "application/json" }))
        )
      )
      .handle("list", ({ query }) =>
        databaseFailures<StockLevelBatch | StockLevelPage, never, never>(
          query.variantId !== undefined
          ? Effect.map(stockLevels.getMany(query.variantId), (batch) => new StockLevelBatch(batch))
          : Effect.map(
              stockLevels.list({
                status: Option.fromNullishOr(query.status),
                limit: query.limit ?? DEFAULT_PAGE_LIMIT,
                after: Option.fromNullishOr(query.cursor)
              }),
              (page) => new StockLevelPage({ items: page.items, nextCursor: Option.getOrNull(page.nextAfter) })
            )
        )
      )
      .handle("adjust", ({ params, payload, headers }) =>
        databaseFailures(adjustments.adjust(params.variantId, payload, Option.fromNullishOr(headers["idempotency-key"])))
      )
      .handle("transfer", ({ params, payload, headers }) =>
        databaseFailures(transfers.transfer(params.variantId, payload, Option.fromNullishOr(headers["idempotency-key"])))
      )
      .handle("history", ({ params, query }) =>
        Effect.map(
          history.list(params.variantId, {
            limit: query.limit ?? DEFAULT_PAGE_LIMIT,
            before: Option.fromNullishOr(query.cursor)
          }),
          (page) => new HistoryPage({ items: page.items, nextCursor: Option.getOrNull(page.nextAfter) })
        ).pipe(databaseFailures)
      )
  })
  // Transfers are only served here; layers are memoised by reference, so its Transactions and
  // Outbox are the app's own.
).pipe(buildGroupWith(StockLevels, Adjustments, History, Transfers, Authentication, Problems), Layer.provide(Transfers.layer))
