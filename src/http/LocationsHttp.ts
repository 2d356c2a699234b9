import { Effect, Option, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Location, LocationList } from "../domain/Location.js"
import { DEFAULT_PAGE_LIMIT } from "../domain/Pagination.js"
import { LocationStock } from "../domain/StockLevel.js"
import { Locations } from "../services/Locations.js"
import { InventoryApi } from "./Api.js"
import { buildGroupWith } from "./GroupContext.js"
import { LocationStockPage } from "./LocationsApi.js"
import { databaseFailures, Problems } from "./Problem.js"
import { Authentication } from "./Security.js"

const encodeLocation = Schema.encodeEffect(Location)
const encodeLocationStock = Schema.encodeEffect(LocationStock)

/** A 201 with the body encoded as the endpoint's schema would (the 200 goes through the endpoint itself). */
const created = <A, I>(encode: (a: A) => Effect.Effect<I, Schema.SchemaError>, value: A) =>
  Effect.map(Effect.orDie(encode(value)), (body) => HttpServerResponse.jsonUnsafe(body, { status: 201 }))

export const LocationsHttpLive = HttpApiBuilder.group(InventoryApi, "locations", (handlers) =>
  Effect.gen(function* () {
    const locations = yield* Locations
    return handlers
      .handle("upsert", ({ params, payload }) =>
        Effect.gen(function* () {
          const { location, created: isNew } = yield* locations.upsert(params.locationId, payload)
          return isNew ? yield* created(encodeLocation, location) : location
        }).pipe(databaseFailures)
      )
      .handle("list", () => databaseFailures(Effect.map(locations.list(), (items) => new LocationList({ items }))))
      .handle("get", ({ params }) => databaseFailures(locations.get(params.locationId)))
      .handle("stock", ({ params, query }) =>
        Effect.map(
          locations.stock(params.locationId, {
            limit: query.limit ?? DEFAULT_PAGE_LIMIT,
            after: Option.fromNullishOr(query.cursor)
          }),
          (page) => new LocationStockPage({ items: page.items, nextCursor: Option.getOrNull(page.nextAfter) })
        ).pipe(databaseFailures)
      )
      .handle("stockAt", ({ params, payload }) =>
        Effect.gen(function* () {
          const { stock, created: isNew } = yield* locations.stockAt(params.variantId, params.locationId, payload)
          return isNew ? yield* created(encodeLocationStock, stock) : stock
        }).pipe(databaseFailures)
      )
  })
).pipe(buildGroupWith(Locations, Authentication, Problems))
