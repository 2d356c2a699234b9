import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { LocationNotFound, VariantNotFound } from "../domain/Errors.js"
import { VariantId } from "../domain/Ids.js"
import { Location, LocationId, LocationList, LocationSettings, LocationStockSettings, VariantLocationStock } from "../domain/Location.js"
import { Cursor, PageLimit } from "../domain/Pagination.js"
import { LocationStock } from "../domain/StockLevel.js"
import { Authentication, RequiredScope } from "./Security.js"

const LocationPath = { locationId: LocationId }

/** A location's stock pages continue after a variant id, in the same opaque `Cursor` as the stock-level listing. */
const VariantCursor = Cursor.pipe(Schema.decodeTo(VariantId)).annotate({ identifier: "Cursor" })

export class LocationStockPage extends Schema.Class<LocationStockPage>("LocationStockPage")({
  items: Schema.Array(VariantLocationStock),
  nextCursor: Schema.NullOr(VariantCursor)
}) {}

/**
 * The locations endpoints of API.md "Locations" that manage locations and where variants are
 * stocked (handlers: http/LocationsHttp.ts). `disableCodecs: true` as in Api.ts: an optional field
 * sent as `null` is a 400.
 */
export class LocationsApi extends HttpApiGroup.make("locations")
  .add(
    HttpApiEndpoint.put("upsert", "/v1/locations/:locationId", {
      disableCodecs: true,
      params: LocationPath,
      payload: LocationSettings,
      success: [
        Location.annotate({ description: "Updated (or unchanged)" }),
        Location.pipe(HttpApiSchema.status(201)).annotate({ description: "Created (priority default 100, active true)" })
      ]
    })
      .annotate(RequiredScope, "inventory:adjust")
      .annotate(OpenApi.Summary, "Create a location, or change its name / priority / active")
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/locations", {
      disableCodecs: true,
      success: LocationList
    })
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "Every location, by priority, then locationId")
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/locations/:locationId", {
      disableCodecs: true,
      params: LocationPath,
      success: Location,
      error: LocationNotFound
    })
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "One location")
  )
  .add(
    HttpApiEndpoint.get("stock", "/v1/locations/:locationId/stock", {
      disableCodecs: true,
      params: LocationPath,
      query: { limit: Schema.optionalKey(PageLimit), cursor: Schema.optionalKey(VariantCursor) },
      success: LocationStockPage,
      error: LocationNotFound
    })
      .annotate(RequiredScope, "inventory:read")
      .annotate(OpenApi.Summary, "The variants stocked at a location, by variantId, with keyset pagination")
  )
  .add(
    HttpApiEndpoint.put("stockAt", "/v1/stock-levels/:variantId/locations/:locationId", {
      disableCodecs: true,
      params: { variantId: VariantId, locationId: LocationId },
      payload: LocationStockSettings,
      success: [
        LocationStock.annotate({ description: "Updated (or unchanged)" }),
        LocationStock.pipe(HttpApiSchema.status(201)).annotate({ description: "Stocked there, with onHand 0" })
      ],
      error: [VariantNotFound, LocationNotFound]
    })
      .annotate(RequiredScope, "inventory:adjust")
      .annotate(OpenApi.Summary, "Stock a variant at a location, or change its safetyStock there")
  )
  .middleware(Authentication) {}
