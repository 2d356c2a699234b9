import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { DEFAULT_ALLOCATION } from "../domain/Allocation.js"
import { ReservationConflict, ReservationNotActive, ReservationNotFound, ReservationRefused } from "../domain/Errors.js"
import { DEFAULT_TTL_SECONDS, mergeLines, type ReservationRequest } from "../domain/Reservation.js"
import { ReservationBatcher } from "./ReservationBatcher.js"
import { ReservationBatches } from "./ReservationBatches.js"
import { countReservations, initReservationMetrics } from "./ReservationMetrics.js"
import { RESERVATION_WITH_LINES, toLines, toReservation, type ReservationWithLinesRow } from "./ReservationRows.js"

/**
 * Reservations of API.md: all-or-nothing, idempotent by orderId, never more than `onHand`, expiring.
 * Creates, releases and commits go through group commit (ReservationBatcher): concurrent requests are
 * decided together in one transaction, each as if it had run alone after the ones before it, and
 * answered after COMMIT. Every time (expiresAt, "due", the status of an answer) is the database's
 * `inventory_now()`: one clock for all replicas, whatever their own clocks say.
 */
export class Reservations extends Context.Service<Reservations>()("inventory/Reservations", {
  make: Effect.gen(function* () {
    yield* initReservationMetrics
    const sql = yield* SqlClient.SqlClient
    const batcher = yield* ReservationBatcher
    const batches = yield* ReservationBatches

    /**
     * `POST /v1/reservations`: every line or none, allocated over locations by the request's strategy
     * (lines naming a location only there). The same orderId with the same lines answers the stored
     * reservation (`created: false`) and reserves nothing twice; other lines are a conflict.
     */
    const create = Effect.fn("Reservations.create")(function* (request: ReservationRequest) {
      const lines = mergeLines(request.lines)
      const orderId = request.orderId
      yield* Effect.annotateCurrentSpan({ "inventory.order_id": orderId, "inventory.lines": lines.length })
      // The outcome goes on the span and the log line alike; a refusal also names its typed error.
      const log = (outcome: string, extra: Record<string, unknown> = {}) =>
        Effect.annotateCurrentSpan({
          "inventory.outcome": outcome,
          ...(outcome === "refused" || outcome === "conflict"
            ? { "inventory.refusal": outcome === "refused" ? "ReservationRefused" : "ReservationConflict" }
            : {})
        }).pipe(Effect.andThen(Effect.logInfo("reservation attempt").pipe(Effect.annotateLogs({ orderId, lines, outcome, ...extra }))))
      const outcome = yield* batcher.submit({
        _tag: "Create",
        orderId,
        lines,
        ttlSeconds: request.ttlSeconds ?? DEFAULT_TTL_SECONDS,
        strategy: request.allocation ?? DEFAULT_ALLOCATION
      })
      switch (outcome._tag) {
        case "Created":
          yield* countReservations("created")
          yield* log("created")
          return { reservation: outcome.reservation, created: true }
        case "Existing":
          yield* log("replayed")
          return { reservation: outcome.reservation, created: false }
        case "Refused":
          yield* countReservations("refused")
          yield* log("refused", { failures: outcome.failures })
          return yield* new ReservationRefused({ orderId, failures: outcome.failures })
        case "Conflict":
          yield* log("conflict")
          return yield* new ReservationConflict({ orderId })
        default:
          return yield* Effect.die(new Error(`a create answered ${outcome._tag}`))
      }
    })

    const get = Effect.fn("Reservations.get")(function* (orderId: string) {
      yield* Effect.annotateCurrentSpan("inventory.order_id", orderId)
      const [row] = yield* sql<ReservationWithLinesRow>`
        SELECT ${sql.literal(RESERVATION_WITH_LINES)}
          FROM reservations r
         WHERE order_id = ${orderId}`
      if (!row) return yield* new ReservationNotFound({ orderId })
      return toReservation(row, toLines(row.lines), row.dbNow)
    })

    /** Release or commit through the batcher; a commit found past its expiry expired it instead: that is not a commit. */
    const transition = (orderId: string, kind: "Release" | "Commit") =>
      Effect.gen(function* () {
        const outcome = yield* batcher.submit({ _tag: kind, orderId })
        switch (outcome._tag) {
          case "NotFound":
            return yield* new ReservationNotFound({ orderId })
          case "NotActive":
            return yield* outcome.error
          case "Unchanged":
            yield* Effect.annotateCurrentSpan("inventory.outcome", "unchanged")
            return outcome.reservation
          case "Changed": {
            const done = outcome.change === "release" ? "released" : outcome.change === "commit" ? "committed" : "expired"
            yield* Effect.annotateCurrentSpan("inventory.outcome", done)
            yield* countReservations(done)
            yield* Effect.logInfo(`reservation ${done}`).pipe(Effect.annotateLogs({ orderId, lines: outcome.reservation.lines, outcome: done }))
            if (outcome.change === "expire" && kind === "Commit") return yield* new ReservationNotActive({ orderId, reservationStatus: "EXPIRED" })
            return outcome.reservation
          }
          default:
            return yield* Effect.die(new Error(`a ${kind} answered ${outcome._tag}`))
        }
      })

    /** Frees the reserved units. Again: same answer; already EXPIRED: as is; COMMITTED: not active. */
    const release = Effect.fn("Reservations.release")(function* (orderId: string) {
      yield* Effect.annotateCurrentSpan("inventory.order_id", orderId)
      return yield* transition(orderId, "Release")
    })

    /** The reserved units leave both `reserved` and `onHand`. Again: same answer; RELEASED/EXPIRED: not active. */
    const commit = Effect.fn("Reservations.commit")(function* (orderId: string) {
      yield* Effect.annotateCurrentSpan("inventory.order_id", orderId)
      return yield* transition(orderId, "Commit")
    })

    /** One batch of the expiry sweep (up to `limit` due reservations no other transaction holds). */
    const expireDue = Effect.fn("Reservations.expireDue")(function* (limit: number) {
      const expired = yield* batches.expireDue(limit)
      yield* countReservations("expired", expired)
      return expired
    })

    /** The reservations `expireDue` would expire now (oldest first), for a dry run of the admin CLI. */
    const due = Effect.fn("Reservations.due")(function* (limit: number) {
      return yield* batches.due(limit)
    })

    return { create, get, release, commit, expireDue, due } as const
  })
}) {
  /** The service with its batcher (its workers live in this layer's scope); needs SqlClient and AppConfig. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(ReservationBatcher.layer), Layer.provide(ReservationBatches.layer))
}
