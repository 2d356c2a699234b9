import { Effect, Schema } from "effect"
import { Reservation } from "../domain/Reservation.js"
import { sweepOnce } from "../services/Expiry.js"
import { Reservations } from "../services/Reservations.js"
import { intOption, UsageError } from "./Args.js"
import { type Command, logChange, type Outcome } from "./Command.js"

const show: Command<Reservations> = {
  name: "reservations show",
  usage: "<orderId>",
  summary: "one order's reservation: status, lines, expiry (exit 1 when there is none)",
  help: "Reads through the service's own Reservations.get, as GET /v1/reservations/{orderId} does.",
  options: [],
  changes: false,
  needsReason: false,
  run: ({ args }) =>
    Effect.gen(function* () {
      if (args.positionals.length !== 1) return yield* new UsageError({ message: "give exactly one order id" })
      const orderId = args.positionals[0]!
      return yield* (yield* Reservations).get(orderId).pipe(
        Effect.map((reservation): Outcome => {
          const json = Schema.encodeSync(Reservation)(reservation)
          return {
            problem: false,
            json,
            lines: [
              `${json.orderId} ${json.status} expires ${json.expiresAt} (created ${json.createdAt}, updated ${json.updatedAt})`,
              ...json.lines.map((line) => `  ${line.variantId} × ${line.quantity}`)
            ]
          }
        }),
        Effect.catchTag("ReservationNotFound", () =>
          Effect.succeed<Outcome>({ problem: true, json: { orderId, found: false }, lines: [`no reservation for order ${orderId}`] })
        )
      )
    })
}

const expireDue: Command<Reservations> = {
  name: "reservations expire-due",
  usage: "[--limit N]",
  summary: "expire every ACTIVE reservation past its expiry now, as the sweeper does",
  help:
    "Runs the sweeper's own batches (services/Expiry.ts): each expired reservation frees its units with its\n" +
    "history entries and events. The dry run lists the due reservations (at most --limit).",
  options: [{ name: "limit", value: "N", description: "dry run: list at most N (default 100)" }],
  changes: true,
  needsReason: true,
  run: ({ args, change }) =>
    Effect.gen(function* () {
      if (args.positionals.length > 0) return yield* new UsageError({ message: "expire-due takes no arguments" })
      if (!change.apply) {
        const due = yield* (yield* Reservations).due(yield* Effect.fromResult(intOption(args, "limit", 100)))
        yield* logChange("reservations expire-due", change, { due: due.length })
        return {
          problem: false,
          json: { applied: false, due },
          lines: [
            ...due.map((r) => `${r.orderId} expired at ${r.expiresAt.toISOString()}`),
            `dry run: would expire ${due.length} reservation(s) (add --yes to apply)`
          ]
        } satisfies Outcome
      }
      const expired = yield* sweepOnce
      yield* logChange("reservations expire-due", change, { expired })
      return { problem: false, json: { applied: true, expired }, lines: [`expired ${expired} reservation(s)`] } satisfies Outcome
    })
}

export const reservationCommands = [show, expireDue] as const
