import { Effect, Schema } from "effect"
import { Location } from "../domain/Location.js"
import { DEFAULT_LOCATION } from "../domain/StockLevel.js"
import { Locations } from "../services/Locations.js"
import { UsageError } from "./Args.js"
import { type Command, logChange, type Outcome } from "./Command.js"

const encodeLocation = Schema.encodeSync(Location)

const list: Command<Locations> = {
  name: "locations list",
  usage: "",
  summary: "every location: id, priority, active, name (by priority, then id)",
  help: "Reads through the service's own Locations.list, as GET /v1/locations does.",
  options: [],
  changes: false,
  needsReason: false,
  run: ({ args }) =>
    Effect.gen(function* () {
      if (args.positionals.length > 0) return yield* new UsageError({ message: "locations list takes no arguments" })
      const items = (yield* (yield* Locations).list()).map((location) => encodeLocation(location))
      return {
        problem: false,
        json: { items },
        lines: items.map((l) => `${l.locationId} priority=${l.priority} ${l.active ? "active" : "INACTIVE"} ${JSON.stringify(l.name)}`)
      } satisfies Outcome
    })
}

const DEFAULT_WARNING =
  `warning: ${DEFAULT_LOCATION} is the location of every v1 call: while it is inactive, reservations without a ` +
  "location draw only on the other active locations (none: every such reservation is refused)"

const deactivate: Command<Locations> = {
  name: "locations deactivate",
  usage: "<locationId>",
  summary: "stop new reservations drawing on a location (exit 1 when there is no such location)",
  help:
    "Sets active = false through the service's own Locations.setActive, as PUT /v1/locations/{id} with\n" +
    "active false does: its rows stop counting in their variants' available, the status changes are\n" +
    "published, and a LocationUpsertedEvent is written. Its stock, history and held reservations stay\n" +
    "(release and commit still work). The dry run shows what the location holds. docs/runbooks/deactivating-a-location.md",
  options: [],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.gen(function* () {
      if (args.positionals.length !== 1) return yield* new UsageError({ message: "give exactly one location id" })
      const locationId = args.positionals[0]!
      const locations = yield* Locations
      const warnings = locationId === DEFAULT_LOCATION ? [DEFAULT_WARNING] : []
      const notFound = (): Outcome => ({ problem: true, json: { locationId, found: false }, lines: [`no location ${locationId}`] })
      return yield* Effect.gen(function* () {
        const summary = yield* locations.summary(locationId)
        const holds =
          `${locationId} holds ${summary.variants} variant(s): onHand ${summary.onHand}, reserved ${summary.reserved}, ` +
          `available ${summary.available}, ${summary.activeReservations} ACTIVE reservation(s)`
        if (!change.apply) {
          const current = yield* locations.get(locationId)
          yield* logChange("locations deactivate", change, { locationId, ...summary })
          return {
            problem: false,
            json: { applied: false, location: encodeLocation(current), summary, warnings },
            lines: [
              holds,
              ...warnings,
              current.active ? `dry run: would deactivate ${locationId} (add --yes to apply)` : `dry run: ${locationId} is already inactive`
            ]
          } satisfies Outcome
        }
        const { location, changed } = yield* locations.setActive(locationId, false)
        yield* logChange("locations deactivate", change, { locationId, changed, ...summary })
        return {
          problem: false,
          json: { applied: true, changed, location: encodeLocation(location), summary, warnings },
          lines: [holds, ...warnings, changed ? `deactivated ${locationId}` : `${locationId} was already inactive: nothing changed`]
        } satisfies Outcome
      }).pipe(Effect.catchTag("LocationNotFound", () => Effect.succeed(notFound())))
    })
}

export const locationCommands = [list, deactivate] as const
