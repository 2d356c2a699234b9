import { NodeServices } from "@effect/platform-node"
import { Layer } from "effect"
import { ConsumersLive } from "./consumers/Consumers.js"
import { HttpLive } from "./http/Server.js"
import { DatabaseCheckLive } from "./http/HealthHttp.js"
import { Lifecycle } from "./layers/Lifecycle.js"
import { Messaging } from "./layers/Messaging.js"
import { MigrationsLive } from "./layers/Migrations.js"
import { ProcessMetricsLive } from "./layers/ProcessMetrics.js"
import { ShutdownLive } from "./layers/Shutdown.js"
import { RelaySqlLive, SqlLive } from "./layers/Sql.js"
import { TelemetryLive } from "./layers/Telemetry.js"
import { Outbox } from "./outbox/Outbox.js"
import { RelayLive } from "./outbox/Relay.js"
import { Adjustments } from "./services/Adjustments.js"
import { BulkAdjustments } from "./services/BulkAdjustments.js"
import { ExpiryLive } from "./services/Expiry.js"
import { History } from "./services/History.js"
import { Locations } from "./services/Locations.js"
import { Reservations } from "./services/Reservations.js"
import { Retention, RetentionSweeperLive } from "./services/Retention.js"
import { StockLevels } from "./services/StockLevels.js"

/** The inventory programs, over SQL. */
const ServicesLive = Layer.mergeAll(
  StockLevels.layer,
  Locations.layer,
  Adjustments.layer,
  BulkAdjustments.layer,
  History.layer,
  Reservations.layer,
  Retention.layer
)

/** Background fibers of the same runtime: the reservation expiry sweeper and the retention sweep. */
const WorkersLive = Layer.mergeAll(ExpiryLive, RetentionSweeperLive)

/**
 * The outbox relay and the event consumers over one broker connection (or the log publisher). The
 * relay gets the very `Outbox.layer` the services use (layers are memoised by reference), so it
 * hears their commit signal.
 */
const MessagingLive = Layer.mergeAll(RelayLive.pipe(Layer.provide(RelaySqlLive)), ConsumersLive).pipe(
  Layer.provideMerge(Messaging.layer),
  Layer.provideMerge(Outbox.layer)
)

/**
 * Telemetry first (every later span and metric goes through it, and it flushes last), then the
 * database (migrated before anything serves), then services, then the HTTP server.
 */
const InfrastructureLive = Layer.mergeAll(MigrationsLive, DatabaseCheckLive, ProcessMetricsLive).pipe(
  Layer.provideMerge(SqlLive),
  Layer.provideMerge(Lifecycle.layer),
  Layer.provideMerge(TelemetryLive)
)

/**
 * Built last, closed first: on SIGTERM readiness turns 503 before the server stops accepting; then
 * the relay and consumers finish their current batch/message and the broker connection closes.
 */
export const MainLive = ShutdownLive.pipe(
  Layer.provideMerge(HttpLive),
  Layer.provideMerge(MessagingLive),
  Layer.provideMerge(WorkersLive),
  Layer.provideMerge(ServicesLive),
  Layer.provideMerge(InfrastructureLive),
  Layer.provide(NodeServices.layer)
)
