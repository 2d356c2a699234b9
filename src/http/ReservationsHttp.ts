import { Effect, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Reservation } from "../domain/Reservation.js"
import { Reservations } from "../services/Reservations.js"
import { InventoryApi } from "./Api.js"
import { buildGroupWith } from "./GroupContext.js"
import { databaseFailures, Problems } from "./Problem.js"
import { Authentication } from "./Security.js"

const encodeReservation = Schema.encodeEffect(Reservation)

export const ReservationsHttpLive = HttpApiBuilder.group(InventoryApi, "reservations", (handlers) =>
  Effect.gen(function* () {
    const reservations = yield* Reservations
    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function* () {
          const { reservation, created } = yield* reservations.create(payload)
          if (!created) return reservation
          return HttpServerResponse.jsonUnsafe(yield* encodeReservation(reservation).pipe(Effect.orDie), { status: 201 })
        }).pipe(databaseFailures)
      )
      .handle("get", ({ params }) => databaseFailures(reservations.get(params.orderId)))
      .handle("release", ({ params }) => databaseFailures(reservations.release(params.orderId)))
      .handle("commit", ({ params }) => databaseFailures(reservations.commit(params.orderId)))
  })
).pipe(buildGroupWith(Reservations, Authentication, Problems))
