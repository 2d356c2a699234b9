import { Schema } from "effect"
import { LocationId, MAX_QUANTITY, VariantId } from "./Ids.js"
import { LocationStock } from "./StockLevel.js"
import { FreeText } from "./Text.js"

/** Defined beside the other opaque ids (Ids.ts: StockLevel.ts and History.ts need it too); re-exported here. */
export { LocationId } from "./Ids.js"

/** Lower is used first (ties by locationId); the `default` location has 0. Bounded to the `integer` column. */
export const LocationPriority = Schema.Int.check(Schema.isBetween({ minimum: -2_147_483_648, maximum: 2_147_483_647 })).annotate({
  identifier: "LocationPriority"
})

/** Priority of a location created without one (API.md). */
export const DEFAULT_PRIORITY = 100

/**
 * A warehouse or store (API.md "Locations"). `active: false`: new reservations never draw on it and
 * its rows add nothing to their variants' `available`; its stock, history and held reservations stay.
 * Locations are never deleted.
 */
export class Location extends Schema.Class<Location>("Location")({
  locationId: LocationId,
  name: Schema.String,
  priority: Schema.Int,
  active: Schema.Boolean,
  createdAt: Schema.DateTimeUtcFromString,
  updatedAt: Schema.DateTimeUtcFromString
}) {}

/** Body of `PUT /v1/locations/{locationId}`: on create absent fields take their defaults, on update they keep their value. */
export class LocationSettings extends Schema.Class<LocationSettings>("LocationSettings")({
  name: FreeText,
  priority: Schema.optionalKey(LocationPriority),
  active: Schema.optionalKey(Schema.Boolean)
}) {}

export class LocationList extends Schema.Class<LocationList>("LocationList")({
  items: Schema.Array(Location)
}) {}

/** Units held back at a location from new reservations (API.md LocationStock.safetyStock). */
export const SafetyStock = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: MAX_QUANTITY })).annotate({
  identifier: "SafetyStock"
})

/** Body of `PUT /v1/stock-levels/{variantId}/locations/{locationId}`: an absent safetyStock keeps its value (0 on create). */
export class LocationStockSettings extends Schema.Class<LocationStockSettings>("LocationStockSettings")({
  safetyStock: Schema.optionalKey(SafetyStock)
}) {}

/** One item of `GET /v1/locations/{locationId}/stock`: a `LocationStock` with its variant. */
export class VariantLocationStock extends Schema.Class<VariantLocationStock>("VariantLocationStock")({
  variantId: VariantId,
  ...LocationStock.fields
}) {}
