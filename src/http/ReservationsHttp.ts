import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect, Schema } from "effect"
import { Reservation } from "../domain/Reservation.js"
import { Reservations } from "../services/Reservations.js"
import { InventoryApi } from "./Api.js"
import { databaseFailures } from "./Problem.js"

const encodeReservation = Schema.encode(Reservation)

export const ReservationsHttpLive = HttpApiBuilder.group(InventoryApi, "reservations", (handlers) =>
  Effect.gen(function* () {
    const reservations = yield* Reservations
    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function* () {
          const { reservation, created } = yield* reservations.create(payload)
          if (!created) return reservation
          return HttpServerResponse.unsafeJson(yield* encodeReservation(reservation).pipe(Effect.orDie), { status: 201 })
        }).pipe(databaseFailures)
      )
      .handle("get", ({ path }) => databaseFailures(reservations.get(path.orderId)))
      .handle("release", ({ path }) => databaseFailures(reservations.release(path.orderId)))
      .handle("commit", ({ path }) => databaseFailures(reservations.commit(path.orderId)))
  })
)
