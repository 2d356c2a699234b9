import { Effect, Metric, Option, type Scope } from "effect"
import type { SqlConnection } from "effect/sql"
import { Metrics } from "./Telemetry.js"

const poolConnections = Metric.gauge("inventory_db_pool_connections", {
  description: "Database pool connections by state: in_use (checked out), idle, waiting (callers queued for one)"
})
const poolMax = Metric.gauge("inventory_db_pool_max_connections", {
  description: "Size limit of the database pool (DB_POOL_MAX; 1 for the embedded database)"
})

export const queryDuration = Metric.histogram("inventory_db_query_duration_seconds", {
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  description: "Round trip of one SQL statement, from sending it to its result (or error)"
})

/**
 * What the pool's gauges show. @effect/sql-pg 4 has no `pg.Pool` and its pool exposes no counts, so
 * Sql.ts's one checkout path (`checkout` there) keeps them: `waiting` callers queued for a
 * connection, `inUse` connections checked out, `checkedOut` their backends (process ids), and
 * `seen`, every backend given back, with when (epoch ms). The pool closes a connection unused for
 * its idle timeout, so `idle` is an estimate: backends given back within that window and not
 * checked out again (a connection the pool dropped early still counts until the window ends).
 */
export interface PoolStats {
  /** Checkouts waiting for a connection now (ConnectionGate). */
  readonly waiting: () => number
  inUse: number
  readonly checkedOut: Set<number>
  readonly seen: Map<number, number>
  readonly idleTimeoutMs: number
}

export const makePoolStats = (idleTimeoutMs: number, waiting: () => number): PoolStats => ({
  waiting,
  inUse: 0,
  checkedOut: new Set(),
  seen: new Map(),
  idleTimeoutMs
})

/** Backends given back within the idle timeout and not checked out now. */
const idleCount = (stats: PoolStats, now: number): number => {
  let idle = 0
  for (const [pid, at] of stats.seen) {
    if (now - at > stats.idleTimeoutMs) stats.seen.delete(pid)
    else if (!stats.checkedOut.has(pid)) idle += 1
  }
  return idle
}

/**
 * Times every statement a checked-out connection runs (the `Connection` the SQL client executes
 * on). Streams (cursors) are not timed: they have no single round trip.
 */
export const timeStatements = (connection: SqlConnection.Connection): SqlConnection.Connection => {
  const timed = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => {
      const started = process.hrtime.bigint()
      return Effect.onExit(effect, () => Metric.update(queryDuration, Number(process.hrtime.bigint() - started) / 1e9))
    })
  return {
    execute: (sql, params, transformRows) => timed(connection.execute(sql, params, transformRows)),
    executeRaw: (sql, params) => timed(connection.executeRaw(sql, params)),
    executeStream: (sql, params, transformRows) => connection.executeStream(sql, params, transformRows),
    executeValues: (sql, params) => timed(connection.executeValues(sql, params)),
    executeValuesUnprepared: (sql, params) => timed(connection.executeValuesUnprepared(sql, params)),
    executeUnprepared: (sql, params, transformRows) => timed(connection.executeUnprepared(sql, params, transformRows))
  }
}

/**
 * Pool gauges sampled at each scrape, from the counts Sql.ts keeps. Registers only when the
 * service runs with metrics (the migrate tool does not).
 */
export const instrumentPool = (stats: PoolStats, max: number): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const metrics = yield* Effect.serviceOption(Metrics)
    if (Option.isNone(metrics)) return
    const [inUse, idle, waiting] = (["in_use", "idle", "waiting"] as const).map((state) => Metric.withAttributes(poolConnections, { state }))
    yield* Metric.update(poolMax, max)
    // Suspended: the counts are read at each scrape, not once here.
    yield* metrics.value.addSampler(
      Effect.suspend(() =>
        Effect.all(
          [Metric.update(inUse!, stats.inUse), Metric.update(idle!, idleCount(stats, Date.now())), Metric.update(waiting!, stats.waiting())],
          { discard: true }
        )
      )
    )
  })
