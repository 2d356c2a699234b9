import { Effect, Metric, MetricBoundaries, Option, type Scope } from "effect"
import type pg from "pg"
import { Metrics } from "./Telemetry.js"

const poolConnections = Metric.gauge("inventory_db_pool_connections", {
  description: "Database pool connections by state: in_use (checked out), idle, waiting (callers queued for one)"
})
const poolMax = Metric.gauge("inventory_db_pool_max_connections", {
  description: "Size limit of the database pool (DB_POOL_MAX; 1 for the embedded database)"
})

export const queryDuration = Metric.histogram(
  "inventory_db_query_duration_seconds",
  MetricBoundaries.fromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]),
  "Round trip of one SQL statement, from sending it to its result (or error)"
)

type AnyFunction = (...args: Array<unknown>) => unknown

/**
 * Times every statement a pooled connection runs. @effect/sql-pg always passes a callback; promise
 * callers are timed too. Cursors (no callback, no promise) are not: they have no single round trip.
 */
const timeQueries = (client: pg.PoolClient) => {
  const query = client.query.bind(client) as AnyFunction
  const timed: AnyFunction = (...args) => {
    const started = process.hrtime.bigint()
    const observe = () => queryDuration.unsafeUpdate(Number(process.hrtime.bigint() - started) / 1e9, [])
    const callback = args[args.length - 1]
    if (typeof callback === "function") {
      args[args.length - 1] = (...results: Array<unknown>) => {
        observe()
        return (callback as AnyFunction)(...results)
      }
      return query(...args)
    }
    const result = query(...args)
    if (result instanceof Promise) result.then(observe, observe)
    return result
  }
  client.query = timed as typeof client.query
}

/**
 * Pool gauges sampled at each scrape, and statement timing on every new connection. Registers only
 * when the service runs with metrics (the migrate tool does not).
 */
export const instrumentPool = (pool: pg.Pool, max: number): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    pool.on("connect", timeQueries)
    const metrics = yield* Effect.serviceOption(Metrics)
    if (Option.isNone(metrics)) return
    const [inUse, idle, waiting] = (["in_use", "idle", "waiting"] as const).map((state) => Metric.tagged(poolConnections, "state", state))
    yield* Metric.set(poolMax, max)
    // Suspended: the counts are read at each scrape, not once here.
    yield* metrics.value.addSampler(
      Effect.suspend(() =>
        Effect.all(
          [
            Metric.set(inUse!, pool.totalCount - pool.idleCount),
            Metric.set(idle!, pool.idleCount),
            Metric.set(waiting!, pool.waitingCount)
          ],
          { discard: true }
        )
      )
    )
  })
