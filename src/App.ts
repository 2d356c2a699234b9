import { NodeContext } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpLive } from "./http/Server.js"
import { DatabaseCheckLive } from "./http/HealthHttp.js"
import { Lifecycle } from "./layers/Lifecycle.js"
import { MigrationsLive } from "./layers/Migrations.js"
import { ShutdownLive } from "./layers/Shutdown.js"
import { SqlLive } from "./layers/Sql.js"
import { Adjustments } from "./services/Adjustments.js"
import { ExpiryLive } from "./services/Expiry.js"
import { History } from "./services/History.js"
import { Reservations } from "./services/Reservations.js"
import { StockLevels } from "./services/StockLevels.js"

/** The inventory programs, over SQL. */
const ServicesLive = Layer.mergeAll(StockLevels.Default, Adjustments.Default, History.Default, Reservations.Default)

/** Background fibers of the same runtime: the reservation expiry sweeper. */
const WorkersLive = ExpiryLive

/** Database first (migrated before anything serves), then services, then the HTTP server. */
const InfrastructureLive = Layer.mergeAll(MigrationsLive, DatabaseCheckLive).pipe(
  Layer.provideMerge(SqlLive),
  Layer.provideMerge(Lifecycle.Default)
)

/** Built last, closed first: on SIGTERM readiness turns 503 before the server stops accepting. */
export const MainLive = ShutdownLive.pipe(
  Layer.provideMerge(HttpLive),
  Layer.provideMerge(WorkersLive),
  Layer.provideMerge(ServicesLive),
  Layer.provideMerge(InfrastructureLive),
  Layer.provide(NodeContext.layer)
)
