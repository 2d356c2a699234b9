import { Clock, Duration, Effect, Fiber, Layer, Option, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { failingLoops, Lifecycle } from "../layers/Lifecycle.js"
import { latestAppliedMigration, readMigrations } from "../layers/Migrations.js"
import { InventoryApi, Readiness } from "./Api.js"
import { buildGroupWith } from "./GroupContext.js"
import { Problems } from "./Problem.js"

const CHECK_TIMEOUT = Duration.seconds(2)

/**
 * Runs a check on a detached fiber and stops *waiting* after the timeout without interrupting it:
 * with Effect 3's driver, interrupting a query cancelled whatever the connection ran next; the
 * Effect 4 driver confirms its cancels, but a probe still never cancels a query.
 */
const bounded = <A>(check: Effect.Effect<A>, onTimeout: A) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkDetach(check)
    // Requests run uninterruptibly: without `interruptible` the timeout could never stop the wait.
    return yield* Effect.interruptible(Fiber.join(fiber)).pipe(
      Effect.timeoutOrElse({ duration: CHECK_TIMEOUT, orElse: () => Effect.succeed(onTimeout) })
    )
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
        Effect.catch((error) => Effect.succeed({ status: "down" as const, detail: error.message }))
      )
    })
  })
)

const encodeReadiness = Schema.encodeEffect(Readiness)

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
          return HttpServerResponse.jsonUnsafe({ status: "failing", loops: failing }, { status: 503 })
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
              ...results.map(([c, r]) => [c.name, Option.fromNullishOr(r.detail).pipe(Option.match({ onNone: () => ({ status: r.status }), onSome: (detail) => ({ status: r.status, detail }) }))])
            ])
          })
          if (ready) return body
          return HttpServerResponse.jsonUnsafe(yield* encodeReadiness(body).pipe(Effect.orDie), { status: 503 })
        })
      )
  })
).pipe(buildGroupWith(Lifecycle, Problems))
