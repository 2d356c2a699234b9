import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Fiber, Layer, Option, Schema } from "effect"
import { failingLoops, Lifecycle } from "../layers/Lifecycle.js"
import { latestAppliedMigration, readMigrations } from "../layers/Migrations.js"
import { InventoryApi, Readiness } from "./Api.js"

const CHECK_TIMEOUT = Duration.seconds(2)

/**
 * Runs a check on a daemon fiber and stops *waiting* after the timeout without interrupting it:
 * interrupting a query would make the driver cancel whatever the connection runs next.
 */
const bounded = <A>(check: Effect.Effect<A>, onTimeout: A) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkDaemon(check)
    // Requests run uninterruptibly: without `interruptible` the timeout could never stop the wait.
    return yield* Effect.interruptible(Fiber.join(fiber)).pipe(Effect.timeoutTo({ duration: CHECK_TIMEOUT, onTimeout: () => onTimeout, onSuccess: (a) => a }))
  })

/** Registers the database check: it answers and holds every migration this build knows. */
export const DatabaseCheckLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const lifecycle = yield* Lifecycle
    const sql = yield* SqlClient.SqlClient
    const expected = Math.max(0, ...readMigrations().map((m) => m.id))
    yield* lifecycle.register({
      name: "database",
      critical: true,
      check: latestAppliedMigration.pipe(
        Effect.provideService(SqlClient.SqlClient, sql),
        Effect.map((latest) =>
          latest >= expected
            ? { status: "up" as const }
            : { status: "down" as const, detail: `migrations pending: at ${latest}, need ${expected}` }
        ),
        Effect.catchAll((error) => Effect.succeed({ status: "down" as const, detail: error.message }))
      )
    })
  })
)

const encodeReadiness = Schema.encode(Readiness)

export const HealthHttpLive = HttpApiBuilder.group(InventoryApi, "health", (handlers) =>
  Effect.gen(function* () {
    const lifecycle = yield* Lifecycle
    return handlers
      // Live while every background loop runs: a loop that ended or is wedged in one iteration
      // only comes back with a restart (docs/resilience.md), so liveness answers 503.
      .handle("live", () =>
        Effect.gen(function* () {
          const failing = failingLoops(yield* lifecycle.loops, yield* Clock.currentTimeMillis)
          if (failing.length === 0) return { status: "ok" as const }
          return HttpServerResponse.unsafeJson({ status: "failing", loops: failing }, { status: 503 })
        })
      )
      .handle("ready", () =>
        Effect.gen(function* () {
          const draining = yield* lifecycle.isDraining
          const checks = yield* lifecycle.checks
          const results = yield* Effect.forEach(
            checks,
            (c) => Effect.map(bounded(c.check, { status: "down" as const, detail: "check timed out" }), (r) => [c, r] as const),
            { concurrency: "unbounded" }
          )
          const ready = !draining && results.every(([c, r]) => !c.critical || r.status !== "down")
          const body = new Readiness({
            status: ready ? "ready" : "not-ready",
            checks: Object.fromEntries([
              ["shutdown", draining ? { status: "down" as const, detail: "shutting down" } : { status: "up" as const }],
              ...results.map(([c, r]) => [c.name, Option.fromNullable(r.detail).pipe(Option.match({ onNone: () => ({ status: r.status }), onSome: (detail) => ({ status: r.status, detail }) }))])
            ])
          })
          if (ready) return body
          return HttpServerResponse.unsafeJson(yield* encodeReadiness(body).pipe(Effect.orDie), { status: 503 })
        })
      )
  })
)
