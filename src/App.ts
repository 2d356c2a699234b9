import { NodeContext } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpLive } from "./http/Server.js"
import { DatabaseCheckLive } from "./http/HealthHttp.js"
import { Lifecycle } from "./layers/Lifecycle.js"
import { MigrationsLive } from "./layers/Migrations.js"
import { ProcessMetricsLive } from "./layers/ProcessMetrics.js"
import { ShutdownLive } from "./layers/Shutdown.js"
import { SqlLive } from "./layers/Sql.js"
import { TelemetryLive } from "./layers/Telemetry.js"
import { Adjustments } from "./services/Adjustments.js"
import { ExpiryLive } from "./services/Expiry.js"
import { History } from "./services/History.js"
import { Reservations } from "./services/Reservations.js"
import { Retention, RetentionSweeperLive } from "./services/Retention.js"
import { StockLevels } from "./services/StockLevels.js"

/** The inventory programs, over SQL. */
const ServicesLive = Layer.mergeAll(StockLevels.Default, Adjustments.Default, History.Default, Retention.Default, Reservations.Default)

/** Background fibers of the same runtime: retention sweep, reservation expiry sweeper. */
const WorkersLive = Layer.mergeAll(RetentionSweeperLive, ExpiryLive)

/**
 * Telemetry first (every later span and metric goes through it, and it flushes last), then the
 * database (migrated before anything serves), then services, then the HTTP server.
 */
const InfrastructureLive = Layer.mergeAll(MigrationsLive, DatabaseCheckLive, ProcessMetricsLive).pipe(
  Layer.provideMerge(SqlLive),
  Layer.provideMerge(Lifecycle.Default),
  Layer.provideMerge(TelemetryLive)
)

/** Built last, closed first: on SIGTERM readiness turns 503 before the server stops accepting. */
export const MainLive = ShutdownLive.pipe(
  Layer.provideMerge(HttpLive),
  Layer.provideMerge(WorkersLive),
  Layer.provideMerge(ServicesLive),
  Layer.provideMerge(InfrastructureLive),
  Layer.provide(NodeContext.layer)
)
